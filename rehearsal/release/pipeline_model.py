"""The synthesized pipeline, read from a cloud assembly (`cdk.out`): the one source of the pipeline's shape.

`load_pipeline(cdk_out)` finds the stack that holds the `AWS::CodePipeline::Pipeline` resource (through
`manifest.json`), and returns its stages, actions, run orders, artifacts, configurations, the
embedded buildspecs and environments of the CodeBuild projects, the V2 stage conditions and push
triggers, and where each runs: the pipeline stack's account and region (the manifest's
`aws://account/region`), each action's (its `RoleArn`'s account, its `Region`) and each rule's.
Intrinsic functions are resolved only as far as the rehearsal needs: `Ref`/`Fn::GetAtt` become names,
`Fn::Join`/`Fn::Sub` become strings.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from rehearsal.base.aws import DEFAULT_PLACE, AccountRegion, account_of_arn, place_of_cdk_environment
from rehearsal.base.errors import UserError
from rehearsal.cloud.intrinsics import IntrinsicResolver
from rehearsal.release.build_host import ProjectCache


@dataclass(frozen=True)
class EnvironmentVariable:
    name: str
    value: str
    type: str = "PLAINTEXT"


@dataclass(frozen=True)
class BuildProject:
    """A CodeBuild project: its embedded buildspec (or the path of one in the source) and environment."""

    logical_id: str
    buildspec: Mapping[str, Any] | None
    buildspec_path: str | None
    environment_variables: tuple[EnvironmentVariable, ...]
    image: str
    description: str = ""
    timeout_minutes: int = 60  # `TimeoutInMinutes`; CodeBuild's default is 60
    cache: ProjectCache = field(default_factory=ProjectCache)  # `Cache`; none by default


@dataclass(frozen=True)
class ActionType:
    category: str
    owner: str
    provider: str
    version: str = "1"

    def __str__(self) -> str:
        return f"{self.owner}/{self.category}/{self.provider}"


@dataclass(frozen=True)
class Action:
    stage: str
    name: str
    type: ActionType
    run_order: int
    input_artifacts: tuple[str, ...]
    output_artifacts: tuple[str, ...]
    configuration: Mapping[str, str]
    namespace: str | None = None
    project: BuildProject | None = None
    # A Manual approval's `TimeoutInMinutes` (AWS's default: 7 days) and who the template lets answer it.
    timeout_minutes: int | None = None
    approvers: tuple[str, ...] = ()
    # Where the action runs: the account of its `RoleArn` (CodePipeline assumes that role for it) and
    # its `Region`, else the pipeline's own account and region.
    place: AccountRegion = DEFAULT_PLACE

    @property
    def environment_variables(self) -> tuple[EnvironmentVariable, ...]:
        """`EnvironmentVariables` of a CodeBuild action (start-build overrides), from their JSON string."""
        text = self.configuration.get("EnvironmentVariables")
        if not text:
            return ()
        return tuple(
            EnvironmentVariable(str(v["name"]), str(v.get("value", "")), str(v.get("type", "PLAINTEXT")))
            for v in json.loads(text)
        )

    @property
    def parameter_overrides(self) -> dict[str, str]:
        text = self.configuration.get("ParameterOverrides")
        return {str(k): str(v) for k, v in json.loads(text).items()} if text else {}

    @property
    def is_self_mutation(self) -> bool:
        """CDK Pipelines' SelfMutate: a CodeBuild action whose build runs `cdk ... deploy` on the assembly."""
        return self.self_mutation_stack is not None

    @property
    def self_mutation_stack(self) -> str | None:
        if self.project is None or self.project.buildspec is None:
            return None
        build = (self.project.buildspec.get("phases") or {}).get("build") or {}
        for command in build.get("commands") or ():
            words = str(command).split()
            if words and words[0] == "cdk" and "deploy" in words:
                targets = [w for w in words[words.index("deploy") + 1 :] if not w.startswith("-")]
                return targets[0] if targets else ""
        return None


@dataclass(frozen=True)
class Rule:
    name: str
    provider: str
    configuration: Mapping[str, str]
    # RuleDeclaration `region` ("The Region for the condition associated with the rule") and `roleArn`
    # ("The pipeline role ARN associated with the rule"); None when the template leaves them out.
    region: str | None = None
    role_arn: str | None = None


@dataclass(frozen=True, kw_only=True)
class DeployTarget:
    """What a stage's CloudFormation actions deploy: the environment, its stack, its account and region."""

    environment: str
    stack_name: str
    place: AccountRegion


@dataclass(frozen=True)
class Condition:
    result: str | None
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Stage:
    name: str
    actions: tuple[Action, ...]
    before_entry: tuple[Condition, ...] = ()
    on_success: tuple[Condition, ...] = ()
    on_failure: tuple[Condition, ...] = ()
    # `OnFailure.Result` without rules (automatic rollback of a failed stage), e.g. ROLLBACK.
    on_failure_result: str | None = None

    def action_groups(self) -> list[list[Action]]:
        """Actions grouped by runOrder, lowest first: CodePipeline's order of execution."""
        orders = sorted({a.run_order for a in self.actions})
        return [[a for a in self.actions if a.run_order == order] for order in orders]


@dataclass(frozen=True)
class PushFilter:
    """One entry of a V2 push trigger: glob lists for branches and changed file paths."""

    branch_includes: tuple[str, ...] = ()
    branch_excludes: tuple[str, ...] = ()
    path_includes: tuple[str, ...] = ()
    path_excludes: tuple[str, ...] = ()

    def matches(self, branch: str, changed_paths: Sequence[str] | None = None) -> bool:
        if self.branch_includes and not _any_glob(branch, self.branch_includes):
            return False
        if _any_glob(branch, self.branch_excludes):
            return False
        if changed_paths is None or not (self.path_includes or self.path_excludes):
            return True
        relevant = [p for p in changed_paths if not _any_glob(p, self.path_excludes)]
        if self.path_includes:
            relevant = [p for p in relevant if _any_glob(p, self.path_includes)]
        return bool(relevant)


@dataclass(frozen=True)
class PipelineModel:
    stack_name: str
    logical_id: str
    pipeline_type: str
    execution_mode: str
    stages: tuple[Stage, ...]
    push_filters: tuple[PushFilter, ...]
    cloud_assembly: Path = field(compare=False)
    # `RestartExecutionOnUpdate`: after a self-mutation changes the definition, a new execution of the
    # same commit starts on it (true) or the cancelled execution is the end of the release (false).
    restart_on_update: bool = False
    # The pipeline stack's account and region: where the pipeline, its builds and its rules run.
    place: AccountRegion = DEFAULT_PLACE

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def updates_itself(self, action: Action) -> bool:
        """Self-mutation: CDK Pipelines' SelfMutate CodeBuild action (`cdk deploy`), or a CloudFormation
        action that deploys this pipeline's own stack from the synthesized cloud assembly."""
        if action.type.provider == "CloudFormation":
            return action.configuration.get("StackName") == self.stack_name
        return action.is_self_mutation

    def deploy_target(self, stage: Stage, *, before_run_order: int | None = None) -> DeployTarget | None:
        """The environment the stage's CloudFormation actions deploy (the last one before
        `before_run_order`, if given); None when the stage deploys none (self-mutation excluded)."""
        targets = [
            action
            for action in stage.actions
            if action.type.provider == "CloudFormation"
            and action.configuration.get("ActionMode") in _DEPLOYING_MODES
            and not self.updates_itself(action)
            and (before_run_order is None or action.run_order < before_run_order)
        ]
        if not targets:
            return None
        action = max(targets, key=lambda a: a.run_order) if before_run_order is not None else targets[0]
        return DeployTarget(
            environment=action.parameter_overrides.get("Environment") or stage.name.lower(),
            stack_name=action.configuration.get("StackName", ""),
            place=action.place,
        )

    def build_place(self, action: Action) -> AccountRegion:
        """Where a CodeBuild action's AWS calls land: after a deploy action of its stage, that
        environment's account and region (on AWS the build assumes a role there, ADR 0017); else the
        pipeline's own account and region, where the build's project and role live."""
        target = self.deploy_target(self.stage(action.stage), before_run_order=action.run_order)
        return target.place if target is not None else self.place

    def rule_place(self, rule: Rule) -> AccountRegion:
        """Where a rule runs: the pipeline's account, in the rule's `region` if it names one."""
        return AccountRegion(account_id=self.place.account_id, region=rule.region or self.place.region)

    def describe(self) -> list[str]:
        """A stable, human-readable outline of the definition: what `changes_from` compares."""
        restart = "restart on update" if self.restart_on_update else "no restart on update"
        lines = [f"pipeline {self.stack_name} ({self.pipeline_type}, {self.execution_mode}, {restart})"]
        lines.append(f"pipeline account/region {self.place}")
        for stage in self.stages:
            lines.append(f"stage {stage.name}")
            lines += _describe_conditions(stage.name, "before-entry", stage.before_entry)
            for action in sorted(stage.actions, key=lambda a: (a.run_order, a.name)):
                lines += _describe_action(action)
                if action.place != self.place:
                    lines.append(f"  {action.stage}/{action.name} runs in {action.place}")
            lines += _describe_conditions(stage.name, "on-success", stage.on_success)
            lines += _describe_conditions(stage.name, "on-failure", stage.on_failure)
            if stage.on_failure_result:
                lines.append(f"  {stage.name} on-failure {stage.on_failure_result}")
        lines += [f"trigger push {f}" for f in self.push_filters]
        return lines

    def changes_from(self, older: PipelineModel) -> list[str]:
        """What changed from `older` to this definition, as `+`/`-` outline lines (empty: the same)."""
        diff = difflib.unified_diff(older.describe(), self.describe(), lineterm="", n=0)
        return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]

    def accepts_push(self, branch: str, changed_paths: Sequence[str] | None = None) -> bool | None:
        """Whether the V2 push trigger starts a release for this push; None when there is no trigger."""
        if not self.push_filters:
            return None
        return any(f.matches(branch, changed_paths) for f in self.push_filters)


_DEPLOYING_MODES = ("CHANGE_SET_REPLACE", "CHANGE_SET_EXECUTE", "CREATE_UPDATE", "REPLACE_ON_FAILURE")


def _describe_conditions(stage: str, kind: str, conditions: tuple[Condition, ...]) -> list[str]:
    return [
        f"  {stage} {kind} {condition.result or ''} rule {rule.name} {rule.provider} "
        + " ".join(f"{k}={v}" for k, v in sorted(rule.configuration.items()))
        + (f" region={rule.region}" if rule.region else "")
        + (f" role={rule.role_arn}" if rule.role_arn else "")
        for condition in conditions
        for rule in condition.rules
    ]


def _describe_action(action: Action) -> list[str]:
    prefix = f"  {action.stage}/{action.name}"
    config = {
        k: v for k, v in action.configuration.items() if k not in ("EnvironmentVariables", "ProjectName")
    }
    lines = [
        f"{prefix} {action.type} runOrder {action.run_order} "
        f"in {list(action.input_artifacts)} out {list(action.output_artifacts)}",
        *(f"{prefix} config {k}={v}" for k, v in sorted(config.items())),
        *(
            f"{prefix} env {v.name}={v.value}"
            for v in action.environment_variables
            if not v.name.startswith("_")
        ),
    ]
    if action.project is not None:
        spec = json.dumps(action.project.buildspec, sort_keys=True) if action.project.buildspec else ""
        lines.append(f"{prefix} buildspec {spec or action.project.buildspec_path}")
        lines += [f"{prefix} project env {v.name}={v.value}" for v in action.project.environment_variables]
    return lines


def _any_glob(value: str, patterns: Sequence[str]) -> bool:
    return any(_glob_pattern(p).fullmatch(value) for p in patterns)


@functools.cache
def _glob_pattern(glob: str) -> re.Pattern[str]:
    """Git-style globs: `*` and `?` stay within a path segment, `**/` spans any number of folders."""
    parts: list[str] = []
    index = 0
    while index < len(glob):
        if glob.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif glob.startswith("**", index):
            parts.append(".*")
            index += 2
        elif glob[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif glob[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(glob[index]))
            index += 1
    return re.compile("".join(parts))


# ---------------------------------------------------------------- loading


def load_pipeline(cdk_out: Path, stack_name: str | None = None) -> PipelineModel:
    """Read the pipeline from a cloud assembly; `stack_name` picks one when several stacks hold a pipeline."""
    manifest_path = cdk_out / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{cdk_out} is not a cloud assembly (no manifest.json): run `make synth` first")
    candidates: list[tuple[_AssemblyStack, str]] = []
    for stack in _stack_templates(cdk_out, manifest_path):
        for logical_id, resource in (stack.template.get("Resources") or {}).items():
            if resource.get("Type") == "AWS::CodePipeline::Pipeline":
                candidates.append((stack, logical_id))
    if stack_name is not None:
        candidates = [c for c in candidates if c[0].name == stack_name]
    if not candidates:
        wanted = f"stack {stack_name}" if stack_name else "any stack"
        raise UserError(f"no AWS::CodePipeline::Pipeline in {wanted} of {cdk_out}: run `make synth`")
    if len(candidates) > 1:
        names = ", ".join(f"{s.name}/{r}" for s, r in candidates)
        raise UserError(f"{cdk_out} holds several pipelines ({names}): name the pipeline stack to rehearse")
    stack, logical_id = candidates[0]
    return _build_model(stack, logical_id, cdk_out)


@dataclass(frozen=True, kw_only=True)
class _AssemblyStack:
    name: str
    template: dict[str, Any]
    place: AccountRegion  # the manifest's `environment` of the stack


def _stack_templates(cdk_out: Path, manifest_path: Path) -> list[_AssemblyStack]:
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    stacks: list[_AssemblyStack] = []
    for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        properties = artifact.get("properties") or {}
        template_file = cdk_out / str(properties.get("templateFile", f"{artifact_id}.template.json"))
        if template_file.is_file():
            stacks.append(
                _AssemblyStack(
                    name=str(properties.get("stackName") or artifact_id),
                    template=json.loads(template_file.read_text(encoding="utf-8")),
                    place=place_of_cdk_environment(str(artifact.get("environment", ""))),
                )
            )
    return stacks


def _build_model(stack: _AssemblyStack, logical_id: str, cdk_out: Path) -> PipelineModel:
    template = stack.template
    resolver = IntrinsicResolver(template)
    properties = template["Resources"][logical_id].get("Properties") or {}
    stages = tuple(_build_stage(raw, resolver, stack.place) for raw in properties.get("Stages") or ())
    stages = tuple(_with_approvers(stage, resolver, stack.place) for stage in stages)
    return PipelineModel(
        stack_name=stack.name,
        logical_id=logical_id,
        pipeline_type=str(properties.get("PipelineType", "V1")),
        execution_mode=str(properties.get("ExecutionMode", "SUPERSEDED")),
        stages=stages,
        push_filters=tuple(_push_filters(properties.get("Triggers") or ())),
        cloud_assembly=cdk_out,
        restart_on_update=str(properties.get("RestartExecutionOnUpdate", False)).lower() == "true",
        place=stack.place,
    )


def _build_stage(raw: Mapping[str, Any], resolver: IntrinsicResolver, pipeline: AccountRegion) -> Stage:
    name = str(raw["Name"])
    return Stage(
        name=name,
        actions=tuple(_build_action(name, a, resolver, pipeline) for a in raw.get("Actions") or ()),
        before_entry=_conditions(raw.get("BeforeEntry"), resolver),
        on_success=_conditions(raw.get("OnSuccess"), resolver),
        on_failure=_conditions(raw.get("OnFailure"), resolver),
        on_failure_result=(raw.get("OnFailure") or {}).get("Result"),
    )


def _action_place(
    raw: Mapping[str, Any], resolver: IntrinsicResolver, pipeline: AccountRegion
) -> AccountRegion:
    """CodePipeline runs an action as its `RoleArn` ("The ARN of the IAM service role that performs the
    declared action", ActionDeclaration) in its `Region`; a role of the pipeline stack (a `GetAtt`) or
    none means the pipeline's account."""
    role = resolver.text(raw["RoleArn"]) if raw.get("RoleArn") else ""
    return AccountRegion(
        account_id=account_of_arn(role) or pipeline.account_id,
        region=str(raw.get("Region") or pipeline.region),
    )


def _build_action(
    stage: str, raw: Mapping[str, Any], resolver: IntrinsicResolver, pipeline: AccountRegion
) -> Action:
    type_id = raw["ActionTypeId"]
    raw_config = raw.get("Configuration") or {}
    configuration = {str(k): resolver.text(v) for k, v in raw_config.items()}
    project = None
    project_ref = raw_config.get("ProjectName")
    if isinstance(project_ref, Mapping) and "Ref" in project_ref:
        project = _build_project(str(project_ref["Ref"]), resolver)
    elif isinstance(project_ref, str):
        project = _build_project(resolver.project_named(project_ref), resolver)
    return Action(
        stage=stage,
        name=str(raw["Name"]),
        type=ActionType(
            str(type_id["Category"]), str(type_id["Owner"]), str(type_id["Provider"]), str(type_id["Version"])
        ),
        run_order=int(raw.get("RunOrder", 1)),
        input_artifacts=tuple(str(a["Name"]) for a in raw.get("InputArtifacts") or ()),
        output_artifacts=tuple(str(a["Name"]) for a in raw.get("OutputArtifacts") or ()),
        configuration=configuration,
        namespace=str(raw["Namespace"]) if raw.get("Namespace") else None,
        project=project,
        timeout_minutes=int(raw["TimeoutInMinutes"]) if raw.get("TimeoutInMinutes") else None,
        place=_action_place(raw, resolver, pipeline),
    )


def _with_approvers(stage: Stage, resolver: IntrinsicResolver, pipeline: AccountRegion) -> Stage:
    actions = tuple(
        replace(a, approvers=approval_principals(resolver, a.stage, a.name, account_id=pipeline.account_id))
        if a.type.category == "Approval"
        else a
        for a in stage.actions
    )
    return replace(stage, actions=actions)


def approval_principals(
    resolver: IntrinsicResolver, stage: str, action: str, *, account_id: str = DEFAULT_PLACE.account_id
) -> tuple[str, ...]:
    """Who the pipeline stack lets answer `stage/action`: each role granted `codepipeline:PutApprovalResult`
    on it (its ARN, in the pipeline stack's `account_id`) and the principals its trust policy names."""
    principals: list[str] = []
    for resource in resolver.resources.values():
        if resource.get("Type") != "AWS::IAM::Policy":
            continue
        properties = resource.get("Properties") or {}
        statements = (properties.get("PolicyDocument") or {}).get("Statement") or ()
        if not any(_grants_approval(resolver, s, stage, action) for s in statements):
            continue
        for role_ref in properties.get("Roles") or ():
            role_id = role_ref.get("Ref") if isinstance(role_ref, Mapping) else None
            principals += _role_principals(resolver, str(role_id), account_id) if role_id else []
    return tuple(dict.fromkeys(principals))


def _grants_approval(
    resolver: IntrinsicResolver, statement: Mapping[str, Any], stage: str, action: str
) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    actions = statement.get("Action")
    actions = [actions] if isinstance(actions, str) else list(actions or ())
    if not any(a in ("codepipeline:PutApprovalResult", "codepipeline:*", "*") for a in actions):
        return False
    resources = statement.get("Resource")
    resources = [resources] if not isinstance(resources, list) else resources
    texts = [resolver.text(r) for r in resources]
    return any(t == "*" or t.endswith(f"/{stage}/{action}") for t in texts)


def _role_principals(resolver: IntrinsicResolver, role_id: str, account_id: str) -> list[str]:
    role = resolver.resources.get(role_id) or {}
    if role.get("Type") != "AWS::IAM::Role":
        return []
    properties = role.get("Properties") or {}
    name = resolver.text(properties.get("RoleName", role_id))
    principals = [f"arn:aws:iam::{account_id}:role/{name}"]
    for statement in (properties.get("AssumeRolePolicyDocument") or {}).get("Statement") or ():
        if statement.get("Effect") != "Allow":
            continue
        trusted = (
            (statement.get("Principal") or {}).get("AWS")
            if isinstance(statement.get("Principal"), Mapping)
            else None
        )
        trusted = trusted if isinstance(trusted, list) else [trusted] if trusted else []
        principals += [resolver.text(p) for p in trusted]
    return principals


def _build_project(logical_id: str, resolver: IntrinsicResolver) -> BuildProject:
    resource = resolver.resources.get(logical_id) or {}
    if resource.get("Type") != "AWS::CodeBuild::Project":
        raise UserError(f"ProjectName refers to {logical_id}, which is not an AWS::CodeBuild::Project")
    properties = resource.get("Properties") or {}
    environment = properties.get("Environment") or {}
    raw_spec = (properties.get("Source") or {}).get("BuildSpec")
    buildspec: Mapping[str, Any] | None = None
    buildspec_path: str | None = "buildspec.yml"
    if raw_spec is not None:
        text = resolver.text(raw_spec)
        loaded = yaml.safe_load(text)
        if isinstance(loaded, Mapping):
            buildspec, buildspec_path = loaded, None
        else:
            buildspec_path = text.strip()
    return BuildProject(
        logical_id=logical_id,
        buildspec=buildspec,
        buildspec_path=buildspec_path,
        environment_variables=tuple(
            EnvironmentVariable(
                str(v["Name"]), resolver.text(v.get("Value", "")), str(v.get("Type", "PLAINTEXT"))
            )
            for v in environment.get("EnvironmentVariables") or ()
        ),
        image=resolver.text(environment.get("Image", "")),
        description=resolver.text(properties.get("Description", "")),
        timeout_minutes=int(resolver.text(properties.get("TimeoutInMinutes", 60))),
        cache=ProjectCache(
            type=resolver.text((properties.get("Cache") or {}).get("Type", "NO_CACHE")),
            modes=tuple(resolver.text(m) for m in (properties.get("Cache") or {}).get("Modes") or ()),
        ),
    )


def _conditions(raw: Mapping[str, Any] | None, resolver: IntrinsicResolver) -> tuple[Condition, ...]:
    if not raw:
        return ()
    return tuple(
        Condition(
            result=str(c["Result"]) if c.get("Result") else None,
            rules=tuple(
                Rule(
                    name=str(r["Name"]),
                    provider=str((r.get("RuleTypeId") or {}).get("Provider", "")),
                    configuration={
                        str(k): resolver.text(v) for k, v in (r.get("Configuration") or {}).items()
                    },
                    region=str(r["Region"]) if r.get("Region") else None,
                    role_arn=resolver.text(r["RoleArn"]) if r.get("RoleArn") else None,
                )
                for r in c.get("Rules") or ()
            ),
        )
        for c in raw.get("Conditions") or ()
    )


def _push_filters(triggers: Sequence[Mapping[str, Any]]) -> list[PushFilter]:
    filters: list[PushFilter] = []
    for trigger in triggers:
        for push in (trigger.get("GitConfiguration") or {}).get("Push") or ():
            branches = push.get("Branches") or {}
            paths = push.get("FilePaths") or {}
            filters.append(
                PushFilter(
                    branch_includes=tuple(branches.get("Includes") or ()),
                    branch_excludes=tuple(branches.get("Excludes") or ()),
                    path_includes=tuple(paths.get("Includes") or ()),
                    path_excludes=tuple(paths.get("Excludes") or ()),
                )
            )
    return filters
