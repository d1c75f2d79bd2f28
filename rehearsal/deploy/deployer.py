"""The local deployer: CloudFormation deploy actions of the pipeline, run against the local cloud.

For each deploy action it takes the packaged template and its code out of the artifact bucket,
provisions (or updates) the environment, publishes new function versions without moving the
`live` aliases, runs the PreTraffic hook as CodeDeploy does, shifts the aliases as each
deployment group's configuration says (time-compressed by the one `TimeScale` it is given) while
the environment's declared traffic runs (its scheduled rules; nothing of the deployer's own),
watches the deployment groups' alarms and, on ALARM, moves the aliases back and fails the action
naming the alarm. Every outcome says which watched alarms judged with data. Environments stay up
(gateway serving) until the release ends; what they run is kept under `.rehearsal/deployer/` for
the next release.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from rehearsal.alarms.evaluator import AlarmEvidence, CompositeAlarmDefinition
from rehearsal.base.aws import PIPELINE
from rehearsal.base.clock import TimeScale
from rehearsal.base.errors import UserError
from rehearsal.base.layout import StateLayout
from rehearsal.cloud.intrinsics import IntrinsicResolver
from rehearsal.cloud.provision import Stack, deploy_template
from rehearsal.cloud.server import LocalCloud, start_local_cloud
from rehearsal.cloud.template import load_template
from rehearsal.deploy.alarm_publisher import AlarmPublisher
from rehearsal.deploy.bake import bake
from rehearsal.deploy.groups import DeploymentGroup, deployment_groups
from rehearsal.deploy.hooks import run_hooks
from rehearsal.deploy.release_store import ReleaseStore, SavedRelease
from rehearsal.deploy.shift import log_evidence, watch_shift
from rehearsal.release.deploy_port import DeployRequest, Outcome
from rehearsal.release.fidelity import NotEmulated
from rehearsal.runtime.environment import LocalEnvironment, publish_functions, start_environment


@dataclass
class _Running:
    """An environment up for this release, and what it served before this release's deployment."""

    local: LocalEnvironment
    release: SavedRelease
    before: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)  # (function, alias)
    before_stack: Stack | None = None


class LocalDeployer:
    """The `Deployer` of `make release`: one per release; `close()` stops what it started."""

    def __init__(self, state_dir: Path, time_scale: TimeScale) -> None:
        self.state_dir = state_dir
        self.time_scale = time_scale
        self.layout = StateLayout(root=state_dir)
        self.store = ReleaseStore(self.layout.deployer)
        self.tooling: LocalCloud | None = None
        self.running: dict[str, _Running] = {}
        self.last_deployed: str | None = None
        self._runtime_logs: list[IO[str]] = []
        self._evidence: dict[str, tuple[AlarmEvidence, ...]] = {}  # per environment, from its last shift

    # ------------------------------------------------------------ CodeBuild's view

    def build_environment(self) -> Mapping[str, str]:
        """The artifact bucket's cloud for builds, or the environment the last deploy action reached.

        A test action follows its environment's deploy action, so its AWS calls (queues, tables)
        go to that environment's cloud; `sam package` in Build reaches the pipeline's cloud.
        """
        tooling = self._tooling()
        # `make bake` waits pipeline minutes: offline a pipeline minute lasts `time_scale` seconds.
        minute = {"PIPELINE_MINUTE_SECONDS": str(self.time_scale.seconds_per_minute)}
        if self.last_deployed in self.running:
            return {**self.running[self.last_deployed].local.cloud.environ(), **minute}
        return {**tooling.environ(), **minute}

    @contextlib.contextmanager
    def alarms_published(self, *, log: TextIO) -> Iterator[list[AlarmEvidence]]:
        """While a build runs after a deploy action: its environment's alarms, live in its cloud.

        Only the environment's declared traffic runs meanwhile (staging's traffic source; production
        has none offline, where AWS has its users), so the list filled on exit says for each bake
        alarm whether it judged with data or without.
        """
        evidence: list[AlarmEvidence] = []
        running = self.running.get(self.last_deployed or "")
        if running is None:
            yield evidence
            return
        publisher = AlarmPublisher(running.local, log=log)
        publisher.start()
        try:
            yield evidence
        finally:
            publisher.stop()
            evidence.extend(publisher.evidence())
            log_evidence(tuple(evidence), log)

    def _tooling(self) -> LocalCloud:
        if self.tooling is None:
            self.tooling = start_local_cloud(PIPELINE)  # the pipeline's own account: the artifact bucket
        s3 = self.tooling.client("s3")
        existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
        for name in self._pipeline_buckets():
            if name not in existing:
                s3.create_bucket(Bucket=name)
        return self.tooling

    def _pipeline_buckets(self) -> list[str]:
        """Buckets of the deployed pipeline's stacks, named as the pipeline model resolves a `Ref` to them."""
        assembly = self.layout.pipeline_assembly
        names: list[str] = []
        for template_file in sorted(assembly.glob("*.template.json")):
            template = json.loads(template_file.read_text(encoding="utf-8"))
            resolver = IntrinsicResolver(template)
            for logical_id, resource in (template.get("Resources") or {}).items():
                if resource.get("Type") == "AWS::S3::Bucket":
                    names.append(resolver.text({"Ref": logical_id}))
        return names

    # ------------------------------------------------------------ deploy actions

    def deploy(self, request: DeployRequest) -> Outcome:
        log = request.log
        try:
            release = self.store.stage(
                request.environment,
                packaged_template=request.template,
                commit=request.commit,
                stack_name=request.stack_name,
                parameters=request.parameters,
                tooling=self.tooling,
            )
            running = self.environment(request.environment, log=log)
            if running is None:
                outcome = self._create(request, release)
            else:
                outcome = self._update(request, release, running)
        except UserError as error:
            return Outcome.failed(str(error))
        return self._with_not_emulated(request.environment, outcome)

    def _with_not_emulated(self, environment: str, outcome: Outcome) -> Outcome:
        """The run's not_emulated record: resources provisioned as names only, and what the runtime lacks."""
        running = self.running.get(environment)
        if running is None:
            return outcome
        local = running.local
        facts = tuple(
            NotEmulated(what=what, where=where, why=why)
            for what, where, why in [
                *((kind, logical_id, reason) for logical_id, kind, reason in local.stack.not_emulated),
                *local.not_emulated,
            ]
        )
        evidence = self._evidence.pop(environment, ())
        return dataclasses.replace(outcome, not_emulated=facts, alarm_evidence=evidence)

    def environment(self, name: str, *, log: TextIO | None = None) -> _Running | None:
        """The running environment, started from its last deployed release if need be (None: none)."""
        if name in self.running:
            return self.running[name]
        saved = self.store.current(name)
        if saved is None:
            return None
        if log is not None:
            log.write(
                f"Starting {name} as last deployed ({saved.commit[:12]}): the local cloud does not outlive "
                "a release, so its data starts empty\n"
            )
        self.running[name] = _Running(self._start(name, saved), saved)
        return self.running[name]

    def _start(self, name: str, release: SavedRelease) -> LocalEnvironment:
        sink_file = self.layout.runtime_log(name).open("a", encoding="utf-8")
        self._runtime_logs.append(sink_file)

        def sink(record: dict[str, Any]) -> None:
            with contextlib.suppress(ValueError):  # closed at the end of the release
                sink_file.write(json.dumps(record, default=str) + "\n")

        return start_environment(
            template_path=release.template,
            environment=name,
            parameters=release.parameters,
            stack_name=release.stack_name,
            time_scale=self.time_scale,
            log_sink=sink,
        )

    def _create(self, request: DeployRequest, release: SavedRelease) -> Outcome:
        log = request.log
        log.write(f"Creating stack {request.stack_name} in the local {request.environment} cloud\n")
        local = self._start(request.environment, release)
        self.running[request.environment] = _Running(local, release)
        self._note_not_emulated(local.stack, log)
        self.store.promote(request.environment, release)
        self.last_deployed = request.environment
        log.write("New stack: aliases point at the first versions (CodeDeploy shifts only on updates)\n")
        return Outcome.passed("stack created", outputs=local.outputs())

    def _update(self, request: DeployRequest, release: SavedRelease, running: _Running) -> Outcome:
        log = request.log
        local = running.local
        old_stack = local.stack
        log.write(
            f"Updating stack {request.stack_name}: {running.release.commit[:12]} -> {request.commit[:12]}\n"
        )
        stack = deploy_template(
            local.cloud,
            load_template(release.template),
            identity=old_stack.identity,
            environment=local.name,
            parameters=release.parameters,
            base_dir=release.directory,
        )
        groups = deployment_groups(stack)
        before = {
            (group.function, group.alias): local.functions.alias_routing(group.function, group.alias)
            for group in groups
            if local.functions.has_alias(group.function, group.alias)
        }
        published = publish_functions(stack, local.functions, point_new_aliases=False)
        new_versions = {stack.functions[lid].name: version for lid, version in published.items()}
        log.write("Published " + ", ".join(f"{n}:{v}" for n, v in sorted(new_versions.items())) + "\n")
        local.stack = stack
        outcome = self._shift(request, local, groups, before, new_versions)
        if not outcome.succeeded:
            self._restore(local, before, log)
            local.stack = old_stack
            self.store.discard(release)
            return outcome
        running.before, running.before_stack, running.release = before, old_stack, release
        self.store.promote(request.environment, release)
        self.last_deployed = request.environment
        return Outcome.passed(outcome.message, outputs=local.outputs())

    def _shift(
        self,
        request: DeployRequest,
        local: LocalEnvironment,
        groups: list[DeploymentGroup],
        before: dict[tuple[str, str], dict[str, float]],
        new_versions: dict[str, str],
    ) -> Outcome:
        """CodeDeploy's part: hooks, then the shift watched by the alarms, under the declared traffic only.

        What each watched alarm judged with is kept for this deploy action's outcome.
        """
        log = request.log
        shifting = [g for g in groups if (g.function, g.alias) in before]
        for group in groups:
            if group not in shifting:  # a function new in this release: its alias is created on it
                local.functions.set_alias(group.function, group.alias, {new_versions[group.function]: 1.0})
        hooks = {g.before_hook for g in shifting}
        failure = run_hooks(local, hooks, "BeforeAllowTraffic", log, new_versions)
        if failure:
            return Outcome.failed(failure)
        outcome = watch_shift(request, local, shifting, before, new_versions)
        self._evidence[request.environment] = outcome.alarm_evidence
        if not outcome.succeeded:
            return outcome
        hooks = {g.after_hook for g in shifting}
        failure = run_hooks(local, hooks, "AfterAllowTraffic", log, new_versions)
        return Outcome.failed(failure) if failure else outcome

    def _restore(
        self, local: LocalEnvironment, routing: dict[tuple[str, str], dict[str, float]], log: TextIO
    ) -> None:
        for (function, alias), weights in routing.items():
            local.functions.set_alias(function, alias, weights)
        log.write(f"Aliases back on the versions served before ({len(routing)} functions)\n")

    @staticmethod
    def _note_not_emulated(stack: Stack, log: TextIO) -> None:
        kinds = sorted({kind for _, kind, _ in stack.not_emulated})
        if kinds:
            log.write(f"Not emulated offline (provisioned as names only): {', '.join(kinds)}\n")

    # ------------------------------------------------------------ stage conditions

    def evaluate_alarm_rule(
        self, *, environment: str | None, alarm_name: str, wait_minutes: float, log: TextIO
    ) -> Outcome:
        candidates = [environment] if environment in self.running else list(self.running)
        for name in candidates:
            local = self.running[name].local
            evaluator, alarms = local.alarm_evaluator()
            wanted = [c for c in alarms.composite if c.name == alarm_name]
            singles = [m for m in alarms.metric if m.name == alarm_name]
            if not wanted and not singles:
                continue
            for problem in alarms.problems:
                log.write(f"Alarm not evaluated offline: {problem}\n")
            rule = (
                wanted[0]
                if wanted
                else CompositeAlarmDefinition.from_properties(
                    alarm_name, {"AlarmRule": f'ALARM("{alarm_name}")'}
                )
            )
            return bake(local, rule=rule, evaluator=evaluator, wait_minutes=wait_minutes, log=log)
        return Outcome.failed(
            f"alarm {alarm_name} is not defined by any environment deployed in this release"
        )

    def roll_back(self, *, environment: str, log: TextIO) -> Outcome:
        running = self.running.get(environment)
        if running is None or not running.before:
            return Outcome.failed(f"{environment} has no earlier release of this run to roll back to")
        self._restore(running.local, running.before, log)
        if running.before_stack is not None:
            running.local.stack = running.before_stack
        previous = self.store.demote(environment)
        if previous is not None:
            running.release = previous
        running.before, running.before_stack = {}, None
        return Outcome.passed(f"{environment} serves its previous release again")

    def close(self) -> None:
        for running in self.running.values():
            running.local.stop()
        self.running.clear()
        if self.tooling is not None:
            self.tooling.stop()
            self.tooling = None
        for handle in self._runtime_logs:
            handle.close()
        self._runtime_logs.clear()
