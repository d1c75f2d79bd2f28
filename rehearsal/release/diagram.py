"""The synthesized pipeline as a Mermaid flowchart: stages, actions, run order, approval, canaries, bakes.

One renderer for `make diagram` (the README's diagram) and for a release's run (`--diagram`: each
action coloured by its state in the run's summary.json). Everything shown comes from the pipeline
model (`pipeline_model.py`, the one reader of cdk.out) and, for canaries, from the service template
the deploy actions deploy: a CodeDeploy traffic-shifting type is the `DeploymentPreference.Type` of
the template's functions, with the deploy action's `ParameterOverrides` for its parameters.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from rehearsal.base.errors import UserError
from rehearsal.release.pipeline_model import Action, Condition, PipelineModel, Stage

README_START = "<!-- pipeline-diagram: `make diagram` writes this block from cdk.out; a test checks it -->"
README_END = "<!-- /pipeline-diagram -->"
NOT_RUN = "NotRun"
# Colours per action state (run_record.py's states, plus actions the run never reached).
STATE_STYLES = {
    "Succeeded": "fill:#d7f0dc,stroke:#2e7d32",
    "Failed": "fill:#f9d6d5,stroke:#c62828",
    "InProgress": "fill:#fff2c6,stroke:#b08800",
    NOT_RUN: "fill:#eeeeee,stroke:#9e9e9e,color:#616161",
}
# `make bake` (pipeline/bake_watch.py) reads these variables of its test action.
BAKE_COMMAND = "make bake"
BAKE_VARIABLES = ("BAKE_MINUTES", "BAKE_ALARM_NAME")


@dataclass(frozen=True, kw_only=True)
class RunStates:
    """The state of each action of one run, by (stage, action name); rules are `<Kind>.<rule>`."""

    by_action: Mapping[tuple[str, str], str]

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> RunStates:
        """From a run's summary.json: `stages[].actions[]` with `stage`, `action` and `state`."""
        states = {
            (str(action["stage"]), str(action["action"])): str(action["state"])
            for stage in summary.get("stages") or ()
            for action in stage.get("actions") or ()
        }
        return cls(by_action=states)

    def of(self, stage: str, action: str) -> str:
        return self.by_action.get((stage, action), NOT_RUN)


def render(
    model: PipelineModel,
    *,
    service_template: Mapping[str, Any] | None = None,
    states: RunStates | None = None,
) -> str:
    """The pipeline as Mermaid; with `states`, each node carries its action's state as a class."""
    writer = _Writer(model=model, service_template=service_template, states=states)
    return writer.render()


def readme_diagram(readme: str) -> str:
    """The Mermaid text between the README's diagram markers; a README without them is refused."""
    match = _readme_block().search(readme)
    if match is None:
        raise UserError(
            f"README.md has no pipeline diagram block: add the lines {README_START} and {README_END}"
        )
    return match.group("diagram")


def with_readme_diagram(readme: str, diagram: str) -> str:
    """The README with the block between its markers replaced by `diagram`."""
    readme_diagram(readme)  # refuses a README without markers
    block = f"{README_START}\n```mermaid\n{diagram}```\n{README_END}"
    return _readme_block().sub(lambda _: block, readme, count=1)


def _readme_block() -> re.Pattern[str]:
    return re.compile(
        re.escape(README_START) + r"\n```mermaid\n(?P<diagram>.*?)```\n" + re.escape(README_END), re.DOTALL
    )


@dataclass(frozen=True, kw_only=True)
class _Writer:
    model: PipelineModel
    service_template: Mapping[str, Any] | None
    states: RunStates | None

    def render(self) -> str:
        lines = ["flowchart TB", f"  %% {self.model.stack_name}: {self._pipeline_summary()}"]
        for index, stage in enumerate(self.model.stages, start=1):
            lines += self._stage(f"s{index}", stage)
        lines.append("  " + " --> ".join(f"s{i}" for i in range(1, len(self.model.stages) + 1)))
        if self.states is not None:
            lines += [f"  classDef {_css_class(s)} {style}" for s, style in STATE_STYLES.items()]
            lines += self._state_classes(self.states)
        return "\n".join(lines) + "\n"

    def _pipeline_summary(self) -> str:
        return f"pipeline type {self.model.pipeline_type}, execution mode {self.model.execution_mode}"

    def _stage(self, stage_id: str, stage: Stage) -> list[str]:
        lines = [f'  subgraph {stage_id}["{_text(stage.name)}"]', "    direction LR"]
        nodes = list(self._nodes(stage_id, stage))
        lines += [f"    {node_id}{shape}" for node_id, shape, _ in nodes]
        lines += self._run_order_edges(stage_id, stage)
        lines.append("  end")
        return lines

    def _nodes(self, stage_id: str, stage: Stage) -> Iterator[tuple[str, str, str]]:
        """(node id, Mermaid shape with label, state key) for every action, rule and rollback."""
        for kind, conditions in (("BeforeEntry", stage.before_entry), ("OnSuccess", stage.on_success)):
            yield from self._condition_nodes(f"{stage_id}{kind[0].lower()}", kind, conditions)
        for group_index, group in enumerate(stage.action_groups(), start=1):
            for action_index, action in enumerate(group, start=1):
                label = "<br/>".join(_text(line) for line in self._action_lines(action))
                shape = f'{{{{"{label}"}}}}' if action.type.category == "Approval" else f'["{label}"]'
                yield f"{stage_id}a{group_index}_{action_index}", shape, action.name
        yield from self._condition_nodes(f"{stage_id}f", "OnFailure", stage.on_failure)
        if stage.on_failure_result:
            label = f"OnFailure: {stage.on_failure_result}<br/>" + _text(
                _FAILURE_RESULTS.get(stage.on_failure_result, "on any failed action")
            )
            yield f"{stage_id}rb", f'(["{label}"])', "Rollback"

    def _condition_nodes(
        self, prefix: str, kind: str, conditions: tuple[Condition, ...]
    ) -> Iterator[tuple[str, str, str]]:
        rules = [(condition, rule) for condition in conditions for rule in condition.rules]
        for index, (condition, rule) in enumerate(rules, start=1):
            settings = ", ".join(f"{k} {v}" for k, v in sorted(rule.configuration.items()))
            result = f" → {condition.result}" if condition.result else ""
            label = f"{kind} rule {_text(rule.name)}<br/>{_text(rule.provider)}: {_text(settings)}{result}"
            yield f"{prefix}{index}", f'[/"{label}"/]', f"{kind}.{rule.name}"

    def _run_order_edges(self, stage_id: str, stage: Stage) -> list[str]:
        groups = stage.action_groups()
        edges: list[str] = []
        for index in range(1, len(groups)):
            for before in range(1, len(groups[index - 1]) + 1):
                for after in range(1, len(groups[index]) + 1):
                    edges.append(f"    {stage_id}a{index}_{before} --> {stage_id}a{index + 1}_{after}")
        return edges

    def _state_classes(self, states: RunStates) -> list[str]:
        lines = []
        for index, stage in enumerate(self.model.stages, start=1):
            for node_id, _, key in self._nodes(f"s{index}", stage):
                lines.append(f"  class {node_id} {_css_class(states.of(stage.name, key))}")
        return lines

    # ------------------------------------------------------------ what each action does

    def _action_lines(self, action: Action) -> list[str]:
        provider = action.type.provider
        if action.type.category == "Source":
            return [action.name, provider, *self._trigger_lines()]
        if action.type.category == "Approval":
            return [action.name, *_approval_lines(action)]
        if provider == "CodeBuild" and not action.is_self_mutation:
            return [action.name, *_build_lines(action)]
        if self.model.updates_itself(action):
            return [action.name, *self._self_mutation_lines(action)]
        if provider == "CloudFormation":
            return [action.name, *self._cloudformation_lines(action)]
        return [action.name, str(action.type)]

    def _trigger_lines(self) -> list[str]:
        lines = []
        for push in self.model.push_filters:
            line = "push to " + ", ".join(push.branch_includes or ("any branch",))
            if push.path_excludes:
                line += "; skips pushes that change only " + ", ".join(push.path_excludes)
            lines.append(line)
        return lines

    def _self_mutation_lines(self, action: Action) -> list[str]:
        lines = [f"{action.type.provider}: updates this pipeline ({self.model.stack_name})"]
        if self.model.restart_on_update:
            lines.append("a changed pipeline restarts the release on it")
        return lines

    def _cloudformation_lines(self, action: Action) -> list[str]:
        mode = action.configuration.get("ActionMode", "")
        stack = action.configuration.get("StackName", "")
        if mode == "CHANGE_SET_REPLACE":
            return [f"change set {action.configuration.get('ChangeSetName', '')} of {stack}"]
        if mode == "CHANGE_SET_EXECUTE":
            return [f"executes it on {stack}", *self._traffic_shifting_lines(action)]
        return [f"CloudFormation {mode} {stack}".rstrip()]

    def _traffic_shifting_lines(self, execute: Action) -> list[str]:
        """The CodeDeploy types the executed change set's template gives its functions."""
        prepare = self._change_set_source(execute)
        if prepare is None or self.service_template is None:
            return []
        counts = deployment_types(self.service_template, prepare.parameter_overrides)
        return [
            f"CodeDeploy {config} on {count} function{'s' if count != 1 else ''} (DeploymentPreference)"
            for config, count in sorted(counts.items())
        ]

    def _change_set_source(self, execute: Action) -> Action | None:
        """The CHANGE_SET_REPLACE action that created the change set `execute` runs."""
        key = (execute.configuration.get("StackName"), execute.configuration.get("ChangeSetName"))
        stage = self.model.stage(execute.stage)
        return next(
            (
                a
                for a in stage.actions
                if a.configuration.get("ActionMode") == "CHANGE_SET_REPLACE"
                and (a.configuration.get("StackName"), a.configuration.get("ChangeSetName")) == key
            ),
            None,
        )


_FAILURE_RESULTS = {
    "ROLLBACK": "a failed action rolls the stage back to its last successful execution",
    "RETRY": "a failed action is retried",
}


def _approval_lines(action: Action) -> list[str]:
    lines = ["manual approval"]
    if action.configuration.get("NotificationArn"):
        lines.append("notifies an SNS topic")
    if action.configuration.get("ExternalEntityLink"):
        lines.append("with a review link")
    return lines


def _build_lines(action: Action) -> list[str]:
    """A CodeBuild action: its build-phase commands; a `make bake` with the minutes and alarm it watches."""
    spec = action.project.buildspec if action.project is not None else None
    build = ((spec or {}).get("phases") or {}).get("build") or {}
    commands = [str(c) for c in build.get("commands") or ()]
    lines = [f"{action.type.provider}: " + (" → ".join(commands) or "buildspec from the source")]
    if BAKE_COMMAND in commands:
        variables = {v.name: v.value for v in action.environment_variables}
        minutes, alarm = (variables.get(name, "?") for name in BAKE_VARIABLES)
        lines.append(f"bake: {minutes} min, fails on {alarm} in ALARM")
    return lines


def deployment_types(template: Mapping[str, Any], overrides: Mapping[str, str]) -> Counter[str]:
    """Count the functions per CodeDeploy type of a SAM template deployed with these parameter overrides."""
    parameters = template.get("Parameters") or {}
    global_preference = ((template.get("Globals") or {}).get("Function") or {}).get("DeploymentPreference")
    counts: Counter[str] = Counter()
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        # SAM merges maps: a function keeps the Globals keys it does not set ("Globals section of the AWS SAM
        # template": a function "adds the MESSAGE environment variable, in addition to the inherited" one).
        own = (resource.get("Properties") or {}).get("DeploymentPreference")
        preference = {**(global_preference or {}), **(own or {})}
        if not preference or preference.get("Enabled") is False:
            continue
        kind = preference.get("Type")
        if isinstance(kind, Mapping) and "Ref" in kind:
            name = str(kind["Ref"])
            kind = overrides.get(name, (parameters.get(name) or {}).get("Default"))
        counts[json.dumps(kind) if not isinstance(kind, str) else kind] += 1
    return counts


def _text(value: str) -> str:
    """Label text Mermaid shows as written: quotes and angle brackets as entity codes."""
    return value.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _css_class(state: str) -> str:
    return re.sub(r"[^a-z0-9]", "", state.lower()) or "unknown"
