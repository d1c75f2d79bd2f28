"""One executor per CodePipeline action type: Source, CodeBuild, self-mutation, CloudFormation, Manual.

Each executor gets an `ActionContext` (the action, the release attempt with its artifact store,
variables and change sets, the run record, the environments' state and the action's log) and
returns an `Outcome`; it never raises for a failure a person should read about in the summary
(a `UserError` becomes a failed action).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rehearsal.alarms.evaluator import AlarmEvidence
from rehearsal.base.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from rehearsal.base.clock import timestamp
from rehearsal.base.errors import UserError
from rehearsal.base.layout import StateLayout
from rehearsal.release.approval_inbox import DEFAULT_APPROVAL_TIMEOUT_MINUTES, ApprovalGate, ApprovalInbox
from rehearsal.release.artifact_store import ArtifactStore
from rehearsal.release.build_host import build_host, clean_environment, prepare_home, restore_cache
from rehearsal.release.buildspec import BuildContext, BuildResult, Buildspec, parse_buildspec, run_build
from rehearsal.release.deploy_port import Deployer, DeployRequest, Outcome
from rehearsal.release.fidelity import NotEmulatedLog
from rehearsal.release.pipeline_model import Action, BuildProject, PipelineModel, load_pipeline
from rehearsal.release.run_record import ApprovalEntry, EnvironmentRecord, Progress, ReleaseState, RunRecord
from rehearsal.release.source import SourceRevision, snapshot
from rehearsal.runtime.sandbox import machine_cache

# Snapshot files get one fixed mtime: the same commit gives the same snapshot, older than any output.
SNAPSHOT_MTIME = 946684800  # 2000-01-01
# The first, offline `make deploy` is the developer's: it uses the repository's own tools.
DEVELOPER_TOOLS = (".venv", "node_modules")
# A wait inside a build that lasts pipeline minutes (`make bake`), compressed offline (ADR 0060).
COMPRESSED_WAIT_VARIABLE = "BAKE_MINUTES"
_VARIABLE = re.compile(r"#\{([A-Za-z0-9@\-_]+)\.([A-Za-z0-9@\-_.]+)\}")


@dataclass(frozen=True, kw_only=True)
class ReleaseOptions:
    """What one release runs and how: given once by the command line (or a test)."""

    repo: Path
    revision: SourceRevision
    state_dir: Path
    allow_dirty: bool = False
    out: TextIO | None = None
    stack_name: str | None = None
    max_restarts: int = 2
    # Each CodeBuild project's local cache, kept across runs and repositories (ADR 0058).
    build_cache: Path = field(default_factory=lambda: machine_cache() / "build-cache")


class PipelineChanged(Exception):
    """Self-mutation deployed a different definition: the release restarts on it."""

    def __init__(self, model: PipelineModel, changes: list[str]) -> None:
        super().__init__("pipeline definition changed")
        self.model = model
        self.changes = changes


@dataclass
class PendingChangeSet:
    template: Path
    parameters: dict[str, str]
    capabilities: tuple[str, ...]
    artifacts: dict[str, Path]


@dataclass
class Attempt:
    model: PipelineModel
    store: ArtifactStore
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    change_sets: dict[tuple[str, str, str], PendingChangeSet] = field(default_factory=dict)
    build_number: int = 0
    environments_before: dict[str, EnvironmentRecord] = field(default_factory=dict)
    _numbering: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def next_build_number(self) -> int:
        """CodeBuild's build number; builds of one runOrder ask for it from parallel threads."""
        with self._numbering:
            self.build_number += 1
            return self.build_number


# A rehearsal never reaches a real AWS account: builds get fake credentials and, unless the deployer
# names the local cloud, an endpoint nothing listens on (the discard port), so a call fails fast.
OFFLINE_AWS = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}
_REAL_AWS_SETTINGS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def build_base_environment(environ: Mapping[str, str], cloud: Mapping[str, str]) -> dict[str, str]:
    """This machine's environment without its AWS settings, pointed at the local cloud."""
    base = {k: v for k, v in environ.items() if k not in _REAL_AWS_SETTINGS and not k.startswith("AWS_")}
    return {**base, **OFFLINE_AWS, **cloud}


@dataclass(frozen=True, kw_only=True)
class ActionContext:
    """Everything one action's executor works with: the action, its release attempt, the run record,
    the environments' state (a deploy action updates it) and the action's log."""

    action: Action
    attempt: Attempt
    record: RunRecord
    state: ReleaseState
    log: TextIO
    not_emulated: NotEmulatedLog  # every fact this action only stands in for goes here, not only to the log

    @property
    def where(self) -> str:
        return f"{self.action.stage}/{self.action.name}"

    def note_not_emulated(self, what: str, why: str) -> None:
        self.log.write(f"Not emulated: {what}: {why}\n")
        self.not_emulated.add(what=what, where=self.where, why=why)


Executor = Callable[[ActionContext], Outcome]


class ActionExecutors:
    def __init__(
        self, options: ReleaseOptions, *, deployer: Deployer, approvals: ApprovalGate, progress: Progress
    ) -> None:
        self.options = options
        self.deployer = deployer
        self.approvals = approvals
        self.progress = progress
        self.pipeline_dir = StateLayout(root=options.state_dir).pipeline_assembly

    def executor_for(self, action: Action, model: PipelineModel) -> Executor:
        kind = (action.type.category, action.type.provider)
        if model.updates_itself(action):
            return self._self_mutation
        if action.type.category == "Source":
            return self._source
        if kind in (("Build", "CodeBuild"), ("Test", "CodeBuild")):
            return self._codebuild
        if kind == ("Deploy", "CloudFormation"):
            return self._cloudformation
        if kind == ("Approval", "Manual"):
            return self._approval
        return self._unsupported

    def deploy_pipeline(self, assembly: Path) -> None:
        if self.pipeline_dir.exists():
            shutil.rmtree(self.pipeline_dir)
        shutil.copytree(assembly, self.pipeline_dir, symlinks=True)

    def prepare_source(self, destination: Path) -> None:
        snapshot(self.options.revision, destination)
        for path in [destination, *destination.rglob("*")]:
            os.utime(path, (SNAPSHOT_MTIME, SNAPSHOT_MTIME), follow_symlinks=False)

    def _source(self, context: ActionContext) -> Outcome:
        action, attempt, log = context.action, context.attempt, context.log
        revision = self.options.revision
        for name in action.output_artifacts:
            self.prepare_source(attempt.store.create(name))
        log.write(f"Snapshot of {revision.commit} ({revision.message}) as {list(action.output_artifacts)}\n")
        if action.type.provider != "CodeStarSourceConnection":
            context.note_not_emulated(
                f"source provider {action.type.provider}",
                "the local repository's commit stands in for it; its output variables are not published",
            )
            return Outcome.passed(f"commit {revision.short}")
        context.note_not_emulated(
            "CodeStarSourceConnection connection",
            "the commit comes from the local repository, not through the connection (no connection check)",
        )
        self._publish(action, attempt, source_variables(revision, action.configuration))
        return Outcome.passed(f"commit {revision.short}")

    def _codebuild(self, context: ActionContext) -> Outcome:
        action, attempt, record = context.action, context.attempt, context.record
        project = action.project
        if project is None:
            return Outcome.failed("ProjectName does not refer to a CodeBuild project of the pipeline stack")
        workspace = record.workspaces / f"{action.stage}.{action.name}"
        source_dir = workspace / "src"
        if workspace.exists():
            shutil.rmtree(workspace)
        source_dir.mkdir(parents=True)
        primary = action.configuration.get("PrimarySource") or (action.input_artifacts or (None,))[0]
        if primary:
            attempt.store.copy_to(primary, source_dir)
        secondary = {}
        for name in action.input_artifacts:
            if name != primary:
                secondary[name] = attempt.store.copy_to(name, workspace / f"src_{name}")
        spec = _load_buildspec(project, source_dir)
        with build_host(self.options.build_cache / project.logical_id) as host:
            self._prepare_home(context, project, spec, host, source_dir)
            result, evidence = self._run_build(
                context, project, spec, home=host / "home", workspace=workspace, secondary=secondary
            )
        for note in result.notes:  # each note starts with the buildspec key it is about
            context.not_emulated.add(what=f"buildspec {note.split()[0]}", where=context.where, why=note)
        if result.succeeded:
            self._publish(action, attempt, result.exported_variables)
            shutil.rmtree(workspace)  # kept only when the build failed, to look into
        return Outcome(succeeded=result.succeeded, message=result.message, alarm_evidence=tuple(evidence))

    def _build_cloud(self, context: ActionContext) -> Mapping[str, str]:
        """The one account and region a build reaches: after a deploy action of its stage, that
        environment's (on AWS the build assumes the role the stack creates there, ADR 0017); else the
        pipeline's own. Nothing else is reachable from it, so a read across accounts fails as on AWS."""
        model = context.attempt.model
        place = model.build_place(context.action)
        if place != model.place:
            context.note_not_emulated(
                f"role assumption into {place}",
                "the build's AWS calls reach that account's local cloud directly, as if it had assumed "
                "a role there; the pipeline account's resources are not reachable from it",
            )
        context.log.write(f"AWS calls of this build reach account {place.account_id} in {place.region}\n")
        return self.deployer.build_environment(place)

    def _run_build(
        self,
        context: ActionContext,
        project: BuildProject,
        spec: Buildspec,
        *,
        home: Path,
        workspace: Path,
        secondary: dict[str, Path],
    ) -> tuple[BuildResult, tuple[AlarmEvidence, ...]]:
        action, attempt, record, log = context.action, context.attempt, context.record, context.log
        overrides = self._build_variables(context)
        cloud = self._build_cloud(context)
        build = BuildContext(
            source_dir=workspace / "src",
            base_environment=clean_environment(
                build_base_environment(os.environ, cloud), home=home, repo=self.options.repo
            ),
            overrides=overrides,
            log=log,
            work_dir=workspace / "tmp",
            build_id=f"{project.logical_id}:{record.run_id}",
            build_number=attempt.next_build_number(),
            source_version=self.options.revision.commit,
            secondary_sources=secondary,
            output_artifacts={name: attempt.store.create(name) for name in action.output_artifacts},
            reports_dir=record.reports / f"{action.stage}.{action.name}",
            timeout_seconds=project.timeout_minutes * 60,
            compressed_minutes=_number(overrides.get(COMPRESSED_WAIT_VARIABLE, "0")),
            minute_seconds=_number(cloud.get("PIPELINE_MINUTE_SECONDS", "60")),
            image=project.image,
        )
        # A build after a deploy action may read its environment's alarms (`make bake`).
        with self.deployer.alarms_published(log=log) as evidence:
            result = run_build(spec, build)
        return result, tuple(evidence)  # the evidence is filled when the alarms' publication ends

    def _prepare_home(
        self, context: ActionContext, project: BuildProject, spec: Buildspec, host: Path, source_dir: Path
    ) -> None:
        """CodeBuild's HOME (/root) for one build: empty but for the build host's cache (ADR 0058)."""
        home = host / "home"
        prepare_home(home, host_home=Path.home())
        for note in restore_cache(
            project.cache,
            spec.cache_paths,
            store=host,
            home=home,
            source_dir=source_dir,
        ):
            context.note_not_emulated(f"buildspec {note.split()[0].rstrip(':')}", note)

    def _build_variables(self, context: ActionContext) -> dict[str, str]:
        """Project, then action (start-build) variables; SSM and Secrets Manager ones need a stand-in."""
        action, attempt = context.action, context.attempt
        project_variables = action.project.environment_variables if action.project else ()
        overrides: dict[str, str] = {}
        for variable in (*project_variables, *action.environment_variables):
            if variable.type == "PLAINTEXT":
                overrides[variable.name] = self._resolve(variable.value, attempt)
            elif variable.name in os.environ:
                overrides[variable.name] = os.environ[variable.name]
                context.note_not_emulated(
                    f"{variable.type} variable {variable.name}", "taken from this shell's environment"
                )
            else:
                raise UserError(
                    f"{variable.type} variable {variable.name} ({variable.value}) cannot be read offline: "
                    f"export {variable.name} before the release to stand in for it"
                )
        return overrides

    def link_tools(self, source_dir: Path) -> None:
        """The offline `make deploy` runs on the developer's machine, with its tools (never a build)."""
        for name in DEVELOPER_TOOLS:
            tool = self.options.repo / name
            if tool.exists() and not (source_dir / name).exists():
                (source_dir / name).symlink_to(tool.resolve())

    def _self_mutation(self, context: ActionContext) -> Outcome:
        action, attempt, log = context.action, context.attempt, context.log
        template_path = action.configuration.get("TemplatePath", "")
        if template_path:
            assembly = attempt.store.file(template_path).parent
        elif action.input_artifacts:
            assembly = attempt.store.require(action.input_artifacts[0])
        else:
            return Outcome.failed(
                "the self-mutation action has no input artifact: no cloud assembly to deploy"
            )
        log.write(
            f"Offline self-mutation: the cloud assembly synthesized from {self.options.revision.short} "
            f"becomes the pipeline definition (on AWS: an update of stack {attempt.model.stack_name})\n"
        )
        new_model = load_pipeline(assembly, attempt.model.stack_name)
        changes = new_model.changes_from(attempt.model)
        self.deploy_pipeline(assembly)
        if not changes:
            log.write("Pipeline definition unchanged\n")
            return Outcome.passed("pipeline definition unchanged")
        log.write("Pipeline definition changed:\n" + "".join(f"  {c}\n" for c in changes))
        raise PipelineChanged(load_pipeline(self.pipeline_dir, new_model.stack_name), changes)

    def _cloudformation(self, context: ActionContext) -> Outcome:
        action, attempt, log = context.action, context.attempt, context.log
        config = {k: self._resolve(v, attempt) for k, v in action.configuration.items()}
        mode = config.get("ActionMode", "CREATE_UPDATE")
        stack = config.get("StackName", "")
        # Change sets belong to a stack of one account and region, as on AWS.
        key = (str(action.place), stack, config.get("ChangeSetName", ""))
        if "TemplateConfiguration" in config:
            context.note_not_emulated(
                "CloudFormation TemplateConfiguration", "not read: only ParameterOverrides apply"
            )
        if mode in ("CHANGE_SET_REPLACE", "CREATE_UPDATE", "REPLACE_ON_FAILURE"):
            pending = PendingChangeSet(
                template=attempt.store.file(config.get("TemplatePath", "")),
                parameters={k: self._resolve(v, attempt) for k, v in action.parameter_overrides.items()},
                capabilities=tuple(c for c in config.get("Capabilities", "").split(",") if c),
                artifacts={name: attempt.store.require(name) for name in action.input_artifacts},
            )
            if mode == "CHANGE_SET_REPLACE":
                attempt.change_sets[key] = pending
                log.write(
                    f"Change set {key[2]} for {stack} in {action.place}: template {pending.template.name}\n"
                )
                log.write(f"Parameters: {pending.parameters}\n")
                return Outcome.passed(f"change set {key[2]} created")
        elif mode == "CHANGE_SET_EXECUTE":
            if key not in attempt.change_sets:
                return Outcome.failed(
                    f"no change set {key[2]} for stack {stack} in {action.place}: "
                    "a CHANGE_SET_REPLACE action in that account and region must run first",
                )
            pending = attempt.change_sets.pop(key)
        else:
            return Outcome.failed(f"ActionMode {mode} is not emulated offline")
        return self._deploy(context, stack, pending, mode)

    def _deploy(self, context: ActionContext, stack: str, pending: PendingChangeSet, mode: str) -> Outcome:
        """Execute a change set through the deployer port; on success the environment serves this commit."""
        action, commit = context.action, self.options.revision.commit
        environment = pending.parameters.get("Environment") or action.stage.lower()
        outcome = self.deployer.deploy(
            DeployRequest(
                environment=environment,
                stack_name=stack,
                template=pending.template,
                artifacts=pending.artifacts,
                parameters=pending.parameters,
                capabilities=pending.capabilities,
                commit=commit,
                log=context.log,
                place=action.place,
                action_mode=mode,
            )
        )
        for fact in outcome.not_emulated:
            context.not_emulated.add(what=fact.what, where=f"{environment} {fact.where}", why=fact.why)
        evidence = outcome.alarm_evidence  # the runner records it under this action
        if not outcome.succeeded:
            failed = Outcome.failed(outcome.message, outcome.alarm)
            return dataclasses.replace(failed, alarm_evidence=evidence)
        record = EnvironmentRecord(commit=commit, run_id=context.record.run_id, stack=stack, at=timestamp())
        context.state.serve(environment, record)
        self._publish(action, context.attempt, dict(outcome.outputs))
        return dataclasses.replace(Outcome.passed(outcome.message), alarm_evidence=evidence)

    def _approval(self, context: ActionContext) -> Outcome:
        action, attempt, record, log = context.action, context.attempt, context.record, context.log
        inbox: ApprovalInbox = self.approvals.inbox
        request = inbox.open(
            run_id=record.run_id,
            stage=action.stage,
            action=action.name,
            commit=self.options.revision.commit,
            custom_data=self._resolve(action.configuration.get("CustomData", ""), attempt),
            review_url=self._resolve(action.configuration.get("ExternalEntityLink", ""), attempt),
            approvers=action.approvers,
            timeout_minutes=action.timeout_minutes or DEFAULT_APPROVAL_TIMEOUT_MINUTES,
        )
        log.write(f"Approvers the pipeline grants: {', '.join(action.approvers) or 'none'}\n")
        if action.configuration.get("NotificationArn"):
            context.note_not_emulated(
                "approval NotificationArn", "no notification is published; the console shows the request"
            )
        if self.approvals.approver is None and self.approvals.mode in ("auto", "reject", "prompt"):
            stand_in = self.approvals.answering_identity(request)
            context.note_not_emulated(
                "approver identity", f"no APPROVER set: an answer given here stands in as {stand_in}"
            )
        decision = self.approvals.wait(request)
        record.summary.approvals.append(
            ApprovalEntry(
                stage=action.stage,
                action=action.name,
                approved=decision.approved,
                by=decision.by,
                at=decision.at,
                comment=decision.comment,
                via=decision.via,
            )
        )
        log.write(
            f"{'Approved' if decision.approved else 'Rejected'} by {decision.by} at {decision.at} "
            f"via {decision.via}: {decision.comment}\n"
        )
        if decision.approved:
            return Outcome.passed(f"approved by {decision.by}")
        if decision.via == "timeout":
            return Outcome.failed(f"approval {decision.comment}")
        if decision.comment.startswith("refused: "):
            return Outcome.failed(decision.comment.removeprefix("refused: "))
        return Outcome.failed(f"rejected by {decision.by}: {decision.comment}")

    def _unsupported(self, context: ActionContext) -> Outcome:
        action = context.action
        return Outcome.failed(f"action type {action.type} is not emulated offline")

    # ------------------------------------------------------------ variables

    def _publish(self, action: Action, attempt: Attempt, variables: Mapping[str, str]) -> None:
        if action.namespace:
            attempt.variables.setdefault(action.namespace, {}).update(variables)

    def _resolve(self, text: str, attempt: Attempt) -> str:
        def substitute(match: re.Match[str]) -> str:
            namespace, name = match.groups()
            value = attempt.variables.get(namespace, {}).get(name)
            if value is None:
                raise UserError(f"variable #{{{namespace}.{name}}} is not produced by any earlier action")
            return value

        return _VARIABLE.sub(substitute, text)


def source_variables(revision: SourceRevision, configuration: Mapping[str, str]) -> dict[str, str]:
    """The output variables of a CodeStarSourceConnection action, by the names AWS publishes
    (CodePipeline action reference, CodeStarSourceConnection: "Output variables")."""
    return {
        "FullRepositoryName": configuration.get("FullRepositoryId", ""),
        "BranchName": revision.branch,
        "AuthorDate": revision.author_date,
        "CommitId": revision.commit,
        "CommitMessage": revision.message,
        "ConnectionArn": configuration.get("ConnectionArn", ""),
    }


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _load_buildspec(project: BuildProject, source_dir: Path) -> Buildspec:
    if project.buildspec is not None:
        return parse_buildspec(project.buildspec)
    spec_file = source_dir / (project.buildspec_path or "buildspec.yml")
    if not spec_file.is_file():
        raise UserError(f"buildspec {project.buildspec_path} is not in the source")
    return parse_buildspec(spec_file.read_text(encoding="utf-8"))
