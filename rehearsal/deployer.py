"""The local deployer: CloudFormation deploy actions of the pipeline, run against the local cloud.

For each deploy action it takes the packaged template and its code out of the artifact bucket,
provisions (or updates) the environment, publishes new function versions without moving the
`live` aliases, runs the PreTraffic hook as CodeDeploy does, shifts the aliases as each
deployment group's configuration says (time-compressed: `time_scale` real seconds per pipeline
minute) while synthetic traffic runs, watches the deployment groups' alarms and, on ALARM, moves
the aliases back and fails the action naming the alarm. Environments stay up (gateway serving)
until the release ends; what they run is kept under `.rehearsal/deployer/` for the next release.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from botocore.credentials import Credentials

from rehearsal.alarm_publisher import AlarmPublisher
from rehearsal.alarms import ALARM, AlarmEvaluator, CompositeAlarmDefinition
from rehearsal.cloud import LocalCloud, start_local_cloud
from rehearsal.deployment import DeployOutcome, DeployRequest, RuleOutcome
from rehearsal.environments import (
    DeploymentGroup,
    ReleaseStore,
    SavedRelease,
    alarm_definitions,
    deployment_groups,
)
from rehearsal.errors import UserError
from rehearsal.intrinsics import IntrinsicResolver
from rehearsal.provision import Stack, provision_stack
from rehearsal.runtime.environment import LocalEnvironment, publish_functions, start_environment
from rehearsal.shift import POLL_SECONDS, log_alarm_changes, watch_shift
from rehearsal.template import load_template, transform_template
from rehearsal.traffic import TrafficDriver

TOOLING = "pipeline"  # the local cloud of the pipeline's own account: the artifact bucket
_HOOK_TIMEOUT = 120.0


@dataclass
class _Running:
    """An environment up for this release, and what it served before this release's deployment."""

    local: LocalEnvironment
    release: SavedRelease
    before: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)  # (function, alias)
    before_stack: Stack | None = None


class LocalDeployer:
    """The `Deployer` of `make release`: one per release; `close()` stops what it started."""

    def __init__(self, state_dir: Path, time_scale: float) -> None:
        self.state_dir = state_dir
        self.time_scale = time_scale
        self.store = ReleaseStore(state_dir / "deployer")
        self.tooling: LocalCloud | None = None
        self.running: dict[str, _Running] = {}
        self.last_deployed: str | None = None
        self._runtime_logs: list[IO[str]] = []

    # ------------------------------------------------------------ CodeBuild's view

    def build_environment(self) -> Mapping[str, str]:
        """The artifact bucket's cloud for builds, or the environment the last deploy action reached.

        A test action follows its environment's deploy action, so its AWS calls (queues, tables)
        go to that environment's cloud; `sam package` in Build reaches the pipeline's cloud.
        """
        tooling = self._tooling()
        # `make bake` waits pipeline minutes: offline a pipeline minute lasts `time_scale` seconds.
        minute = {"PIPELINE_MINUTE_SECONDS": str(self.time_scale)}
        if self.last_deployed in self.running:
            return {**self.running[self.last_deployed].local.cloud.environ(), **minute}
        return {**tooling.environ(), **minute}

    @contextlib.contextmanager
    def alarms_published(self, *, log: TextIO) -> Iterator[None]:
        """While a build runs after a deploy action: its environment's alarms, live in its cloud.

        Synthetic traffic runs meanwhile, as staging's own traffic source (and production's users)
        would, so a bake inside the build judges the new version with data.
        """
        running = self.running.get(self.last_deployed or "")
        if running is None:
            yield
            return
        publisher = AlarmPublisher(running.local, time_scale=self.time_scale, log=log)
        driver = self._traffic(running.local, log)
        publisher.start()
        try:
            yield
        finally:
            publisher.stop()
            driver.stop()

    def _tooling(self) -> LocalCloud:
        if self.tooling is None:
            self.tooling = start_local_cloud(TOOLING)
        s3 = self.tooling.client("s3")
        existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
        for name in self._pipeline_buckets():
            if name not in existing:
                s3.create_bucket(Bucket=name)
        return self.tooling

    def _pipeline_buckets(self) -> list[str]:
        """Buckets of the deployed pipeline's stacks, named as the pipeline model resolves a `Ref` to them."""
        assembly = self.state_dir / "pipeline" / "assembly"
        names: list[str] = []
        for template_file in sorted(assembly.glob("*.template.json")):
            template = json.loads(template_file.read_text(encoding="utf-8"))
            resolver = IntrinsicResolver(template)
            for logical_id, resource in (template.get("Resources") or {}).items():
                if resource.get("Type") == "AWS::S3::Bucket":
                    names.append(resolver.text({"Ref": logical_id}))
        return names

    # ------------------------------------------------------------ deploy actions

    def deploy(self, request: DeployRequest) -> DeployOutcome:
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
                return self._create(request, release)
            return self._update(request, release, running)
        except UserError as error:
            return DeployOutcome(False, str(error))

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
        sink_file = (self.state_dir / "deployer" / name / "runtime.log").open("a", encoding="utf-8")
        self._runtime_logs.append(sink_file)

        def sink(record: dict[str, Any]) -> None:
            with contextlib.suppress(ValueError):  # closed at the end of the release
                sink_file.write(json.dumps(record, default=str) + "\n")

        return start_environment(
            template_path=release.template,
            environment=name,
            parameters=release.parameters,
            stack_name=release.stack_name,
            time_scale=self.time_scale / 60,
            log_sink=sink,
        )

    def _create(self, request: DeployRequest, release: SavedRelease) -> DeployOutcome:
        log = request.log
        log.write(f"Creating stack {request.stack_name} in the local {request.environment} cloud\n")
        local = self._start(request.environment, release)
        self.running[request.environment] = _Running(local, release)
        self._note_not_emulated(local.stack, log)
        self.store.promote(request.environment, release)
        self.last_deployed = request.environment
        log.write("New stack: aliases point at the first versions (CodeDeploy shifts only on updates)\n")
        return DeployOutcome(True, "stack created", outputs=local.outputs())

    def _update(self, request: DeployRequest, release: SavedRelease, running: _Running) -> DeployOutcome:
        log = request.log
        local = running.local
        old_stack = local.stack
        log.write(
            f"Updating stack {request.stack_name}: {running.release.commit[:12]} -> {request.commit[:12]}\n"
        )
        document = load_template(release.template)
        declared = document.get("Parameters") or {}
        values = {"Environment": request.environment, **release.parameters}
        template = transform_template(
            document,
            identity=old_stack.identity,
            parameters={k: v for k, v in values.items() if k in declared},
            base_dir=release.directory,
        )
        stack = provision_stack(local.cloud, template, identity=old_stack.identity, environment=local.name)
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
        return DeployOutcome(True, outcome.message, outputs=local.outputs())

    def _shift(
        self,
        request: DeployRequest,
        local: LocalEnvironment,
        groups: list[DeploymentGroup],
        before: dict[tuple[str, str], dict[str, float]],
        new_versions: dict[str, str],
    ) -> DeployOutcome:
        """CodeDeploy's part: hooks, then the shift watched by the alarms; traffic runs throughout."""
        log = request.log
        shifting = [g for g in groups if (g.function, g.alias) in before]
        for group in groups:
            if group not in shifting:  # a function new in this release: its alias is created on it
                local.functions.set_alias(group.function, group.alias, {new_versions[group.function]: 1.0})
        driver = self._traffic(local, log)  # the old versions serve it until the shift starts
        try:
            hooks = {g.before_hook for g in shifting}
            failure = self._run_hooks(local, hooks, "BeforeAllowTraffic", log, new_versions)
            if failure:
                return DeployOutcome(False, failure)
            outcome = watch_shift(request, local, shifting, before, new_versions)
            log.write(f"{driver.describe()}\n")
            if not outcome.succeeded:
                return outcome
            hooks = {g.after_hook for g in shifting}
            failure = self._run_hooks(local, hooks, "AfterAllowTraffic", log, new_versions)
            return DeployOutcome(False, failure) if failure else outcome
        finally:
            driver.stop()

    def _run_hooks(
        self,
        local: LocalEnvironment,
        hooks: set[str | None],
        event: str,
        log: TextIO,
        new_versions: Mapping[str, str],
    ) -> str | None:
        """Each distinct hook once: the groups of a SAM template share one hook that tests every version.

        CodeDeploy invokes the hook by name, i.e. its `$LATEST`: the version this release just
        published from it (invoked by number here, so no worker of an earlier `$LATEST` answers).
        """
        for hook in sorted(h for h in hooks if h):
            failure = self._run_hook(local, hook, event, log, new_versions.get(hook))
            if failure:
                return failure
        return None

    def _run_hook(
        self, local: LocalEnvironment, hook: str, event: str, log: TextIO, version: str | None
    ) -> str | None:
        """Invoke a hook as CodeDeploy does, then wait for the status it reports; the failure, if any."""
        deployment_id = f"d-{uuid.uuid4().hex[:9].upper()}"
        execution_id = str(uuid.uuid4())
        log.write(f"{event} hook {hook} (deployment {deployment_id})\n")
        result = local.functions.invoke(
            hook,
            {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id},
            qualifier=version,
        )
        status = local.control.wait_for_hook(execution_id, 0 if result.failed else _HOOK_TIMEOUT)
        if status is None or status.status != "Succeeded":
            reported = status.status if status else "no status (the hook did not report)"
            detail = f": {json.dumps(result.error)}" if result.error else f": {json.dumps(result.payload)}"
            log.write(f"{event} hook reported {reported}{detail}\n")
            return f"rolled back: the {event} hook {hook} reported {reported}"
        log.write(f"{event} hook reported Succeeded\n")
        return None

    def _restore(
        self, local: LocalEnvironment, routing: dict[tuple[str, str], dict[str, float]], log: TextIO
    ) -> None:
        for (function, alias), weights in routing.items():
            local.functions.set_alias(function, alias, weights)
        log.write(f"Aliases back on the versions served before ({len(routing)} functions)\n")

    def _traffic(self, local: LocalEnvironment, log: TextIO) -> TrafficDriver:
        credentials = local.credentials()
        errors: list[str] = []

        def on_error(message: str) -> None:
            if not errors:
                log.write(f"  {message}\n")
            errors.append(message)

        driver = TrafficDriver(
            local.base_url,
            Credentials(credentials.access_key, credentials.secret_key),
            local.cloud.region,
            on_error=on_error,
        )
        driver.start()
        return driver

    @staticmethod
    def _note_not_emulated(stack: Stack, log: TextIO) -> None:
        kinds = sorted({kind for _, kind, _ in stack.not_emulated})
        if kinds:
            log.write(f"Not emulated offline (provisioned as names only): {', '.join(kinds)}\n")

    # ------------------------------------------------------------ stage conditions

    def evaluate_alarm_rule(
        self, *, environment: str | None, alarm_name: str, wait_minutes: float, time_scale: float, log: TextIO
    ) -> RuleOutcome:
        candidates = [environment] if environment in self.running else list(self.running)
        for name in candidates:
            local = self.running[name].local
            metric, composite, problems = alarm_definitions(local.stack)
            wanted = [c for c in composite if c.name == alarm_name]
            singles = [m for m in metric if m.name == alarm_name]
            if not wanted and not singles:
                continue
            for problem in problems:
                log.write(f"Alarm not evaluated offline: {problem}\n")
            rule = (
                wanted[0]
                if wanted
                else CompositeAlarmDefinition.from_properties(
                    alarm_name, {"AlarmRule": f'ALARM("{alarm_name}")'}
                )
            )
            evaluator = AlarmEvaluator(metric, local.metrics, time_scale=time_scale / 60)
            return self._bake(
                local=local,
                rule=rule,
                evaluator=evaluator,
                seconds=wait_minutes * time_scale,
                wait_minutes=wait_minutes,
                log=log,
            )
        return RuleOutcome(
            False, f"alarm {alarm_name} is not defined by any environment deployed in this release"
        )

    def _bake(
        self,
        *,
        local: LocalEnvironment,
        rule: CompositeAlarmDefinition,
        evaluator: AlarmEvaluator,
        seconds: float,
        wait_minutes: float,
        log: TextIO,
    ) -> RuleOutcome:
        log.write(
            f"Watching {rule.name} for {wait_minutes:g} pipeline minutes ({seconds:.1f} s): {rule.rule}\n"
        )
        driver = self._traffic(local, log)
        deadline = time.monotonic() + seconds
        try:
            while True:
                log_alarm_changes(evaluator, log)
                if rule.state(evaluator.states) == ALARM:
                    firing = [m for m in rule.members() if evaluator.states.get(m) == ALARM]
                    return RuleOutcome(
                        False, f"alarm {rule.name} went to ALARM during the bake ({', '.join(firing)})"
                    )
                if time.monotonic() >= deadline:
                    break
                time.sleep(POLL_SECONDS)
        finally:
            driver.stop()
            log.write(f"{driver.describe()}\n")
        return RuleOutcome(True, f"alarm {rule.name} stayed OK for {wait_minutes:g} minutes")

    def roll_back(self, *, environment: str, log: TextIO) -> DeployOutcome:
        running = self.running.get(environment)
        if running is None or not running.before:
            return DeployOutcome(False, f"{environment} has no earlier release of this run to roll back to")
        self._restore(running.local, running.before, log)
        if running.before_stack is not None:
            running.local.stack = running.before_stack
        previous = self.store.demote(environment)
        if previous is not None:
            running.release = previous
        running.before, running.before_stack = {}, None
        return DeployOutcome(True, f"{environment} serves its previous release again")

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
