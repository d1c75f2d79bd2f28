"""The local deployer: CloudFormation deploy actions of the pipeline, run against the local cloud.

For each deploy action it takes the packaged template and its code out of the artifact bucket,
checks property values and capabilities before changing anything, and on an update executes a
change set (ADR 0046): it deploys nothing when the change set is empty, publishes versions only of
the functions that changed, runs the PreTraffic hook and shifts those aliases as each deployment
group's configuration says (time-compressed by the one `TimeScale` it is given) while the
environment's declared traffic runs (its scheduled rules; nothing of the deployer's own), watches
the groups' alarms, then serves the new routes and event sources in place. A failure (hook, ALARM,
error) restores everything the update changed and fails the action naming the cause. Every outcome
says which watched alarms judged with data. Environments stay up (gateway serving) until the
release ends; what they run is kept under `.rehearsal/deployer/` for the next release.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

from rehearsal.alarms.evaluator import AlarmEvidence, CompositeAlarmDefinition
from rehearsal.base.aws import DEFAULT_PLACE, PIPELINE, AccountRegion
from rehearsal.base.clock import TimeScale
from rehearsal.base.errors import UserError
from rehearsal.base.layout import StateLayout
from rehearsal.cloud.changeset import check_capabilities, create_change_set
from rehearsal.cloud.intrinsics import IntrinsicResolver
from rehearsal.cloud.provision import Stack, clean_up_stack, prepare_template, update_stack
from rehearsal.cloud.server import LocalCloud, start_local_cloud
from rehearsal.cloud.template import (
    StackIdentity,
    TransformedTemplate,
    load_template,
)
from rehearsal.deploy.alarm_publisher import AlarmPublisher
from rehearsal.deploy.bake import bake
from rehearsal.deploy.groups import DeploymentGroup, deployment_groups
from rehearsal.deploy.hooks import run_hooks
from rehearsal.deploy.release_store import ReleaseStore, SavedRelease
from rehearsal.deploy.shift import log_evidence, watch_shift
from rehearsal.deploy.updates import Before, aliases_of, move_aliases_in_place, restore
from rehearsal.release.deploy_port import DIRECT_ACTION_MODES, DeployRequest, Outcome, RecoveredEnvironment
from rehearsal.release.fidelity import NotEmulated
from rehearsal.release.pipeline_model import PipelineModel, load_pipeline
from rehearsal.runtime.environment import LocalEnvironment, publish_functions, start_environment


@dataclass
class _Running:
    """An environment up for this release, and what it served before this release's deployment."""

    local: LocalEnvironment
    release: SavedRelease
    before: Before | None = None
    place: AccountRegion = DEFAULT_PLACE  # the account and region whose local cloud it runs in


class LocalDeployer:
    """The `Deployer` of `make release`: one per release; `close()` stops what it started."""

    def __init__(self, state_dir: Path, time_scale: TimeScale) -> None:
        self.state_dir = state_dir
        self.time_scale = time_scale
        self.layout = StateLayout(root=state_dir)
        self.store = ReleaseStore(self.layout.deployer)
        self.tooling: LocalCloud | None = None
        # One local cloud per account and region; environments that share both share it (ADR 0049).
        self.clouds: dict[AccountRegion, LocalCloud] = {}
        # Builds of one runOrder ask for clouds from parallel threads: each place starts once.
        self._clouds_lock = threading.RLock()
        self.running: dict[str, _Running] = {}
        self.last_deployed: str | None = None
        self._runtime_logs: list[IO[str]] = []
        self._evidence: dict[str, tuple[AlarmEvidence, ...]] = {}  # per environment, from its last shift
        # Environments started ahead of their deploy action (`start_ahead`): name -> the start's log.
        self._ahead: dict[str, Future[str]] = {}
        self._background: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------ CodeBuild's view

    def build_environment(self, place: AccountRegion | None = None) -> Mapping[str, str]:
        """Variables pointing a build at the local cloud of `place` (default: the pipeline's), only.

        The runner names the place: a test action's is its environment's account and region, so its
        AWS calls (queues, tables, alarms) reach that cloud and no other; Build's is the pipeline's,
        where `sam package` finds the artifact bucket.
        """
        self._tooling()
        # `make bake` waits pipeline minutes: offline a pipeline minute lasts `time_scale` seconds.
        minute = {"PIPELINE_MINUTE_SECONDS": str(self.time_scale.seconds_per_minute)}
        cloud = self._cloud(place or self._deployed_pipeline_place(), PIPELINE)
        return {**cloud.environ(), **minute}

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
            with running.local.watching():
                yield evidence
        finally:
            publisher.stop()
            evidence.extend(publisher.evidence())
            log_evidence(tuple(evidence), log)

    def _cloud(self, place: AccountRegion, label: str) -> LocalCloud:
        """The local cloud of `place`, started on first use; `label` names it in messages."""
        with self._clouds_lock:
            if place not in self.clouds:
                self.clouds[place] = start_local_cloud(label, place=place)
            return self.clouds[place]

    def _deployed_pipeline(self) -> PipelineModel | None:
        if not (self.layout.pipeline_assembly / "manifest.json").is_file():
            return None
        return load_pipeline(self.layout.pipeline_assembly)

    def _deployed_pipeline_place(self) -> AccountRegion:
        model = self._deployed_pipeline()
        return model.place if model is not None else DEFAULT_PLACE

    def _environment_place(self, name: str) -> AccountRegion:
        """Where the deployed pipeline deploys environment `name` (the default place if it does not)."""
        model = self._deployed_pipeline()
        targets = [model.deploy_target(stage) for stage in model.stages] if model is not None else []
        return next((t.place for t in targets if t is not None and t.environment == name), DEFAULT_PLACE)

    def _tooling(self) -> LocalCloud:
        # The pipeline's own account and region: the artifact bucket.
        with self._clouds_lock:
            self.tooling = self._cloud(self._deployed_pipeline_place(), PIPELINE)
            s3 = self.tooling.client("s3")
            existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
            for name in self._pipeline_buckets():
                if name not in existing:
                    self.tooling.create_bucket(name)
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
            running = self._moved_out_of(
                self.environment(request.environment, place=request.place, log=log), request
            )
            proposed = self._propose(request, release, running)
            if running is None:
                outcome = self._create(request, release)
            else:
                with running.local.watching():
                    outcome = self._update(request, release, running, proposed)
        except UserError as error:
            return Outcome.failed(str(error))
        return self._with_not_emulated(request.environment, outcome)

    def _propose(
        self, request: DeployRequest, release: SavedRelease, running: _Running | None
    ) -> TransformedTemplate:
        """The template as CloudFormation processes it before changing anything: transformed, its
        property values checked against the resource schemas, its capabilities against the action's."""
        document = load_template(release.template)
        identity = (
            running.local.stack.identity
            if running is not None
            else StackIdentity(
                stack_name=release.stack_name,
                region=request.place.region,
                account_id=request.place.account_id,
            )
        )
        proposed = prepare_template(
            document,
            identity=identity,
            environment=request.environment,
            parameters=release.parameters,
            base_dir=release.directory,
        )
        direct = request.action_mode in DIRECT_ACTION_MODES
        check_capabilities(document, proposed, request.capabilities, direct=direct)
        return proposed

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

    def _moved_out_of(self, running: _Running | None, request: DeployRequest) -> _Running | None:
        """A stack in another account or region is another stack: the pipeline now deploys elsewhere."""
        if running is None or running.place == request.place:
            return running
        request.log.write(
            f"{request.environment} now deploys to {request.place}, not {running.place}: "
            f"{request.stack_name} is created there\n"
        )
        running.local.stop()
        del self.running[request.environment]
        return None

    def start_ahead(self, name: str) -> None:
        """Start environment `name` from its last deployed release in the background, while earlier
        stages run, so that its deploy action finds it running: on AWS it exists all along, here a
        local environment does not outlive a release. Its deploy action logs the start, and a start
        that failed fails that action, as if the action had started it."""
        if name in self.running or name in self._ahead or self.store.current(name) is None:
            return

        place = self._environment_place(name)  # read here: UpdatePipeline may rewrite the assembly

        def start() -> str:
            log = io.StringIO()
            self._environment(name, place=place, log=log)
            return log.getvalue()

        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="start-ahead")
        self._ahead[name] = self._background.submit(start)

    def environment(
        self, name: str, *, place: AccountRegion | None = None, log: TextIO | None = None
    ) -> _Running | None:
        """The running environment, started from its last deployed release if need be (None: none),
        in `place` (default: where the deployed pipeline deploys it)."""
        ahead = self._ahead.pop(name, None)
        if ahead is not None:
            started = ahead.result()
            if log is not None:
                log.write(f"{started.rstrip()} (started while earlier stages ran)\n")
        return self._environment(name, place=place, log=log)

    def _environment(self, name: str, *, place: AccountRegion | None, log: TextIO | None) -> _Running | None:
        if name in self.running:
            return self.running[name]
        saved = self.store.current(name)
        if saved is None:
            return None
        place = place or self._environment_place(name)
        if log is not None:
            log.write(
                f"Starting {name} as last deployed ({saved.commit[:12]}) in {place}: the local cloud does "
                "not outlive a release, so its data starts empty\n"
            )
        self.running[name] = _Running(self._start(name, saved, place), saved, place=place)
        return self.running[name]

    def _start(self, name: str, release: SavedRelease, place: AccountRegion) -> LocalEnvironment:
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
            cloud=self._cloud(place, name),
            schedules_while_watched=True,
        )

    def _create(self, request: DeployRequest, release: SavedRelease) -> Outcome:
        log = request.log
        log.write(
            f"Creating stack {request.stack_name} ({request.environment}) in the local cloud of "
            f"account {request.place.account_id}, {request.place.region}\n"
        )
        local = self._start(request.environment, release, request.place)
        self.running[request.environment] = _Running(local, release, place=request.place)
        self._note_not_emulated(local.stack, log)
        self.store.promote(request.environment, release)
        self.last_deployed = request.environment
        log.write("New stack: aliases point at the first versions (CodeDeploy shifts only on updates)\n")
        return Outcome.passed("stack created", outputs=local.outputs())

    def _update(
        self, request: DeployRequest, release: SavedRelease, running: _Running, proposed: TransformedTemplate
    ) -> Outcome:
        """Execute the change set: provision, publish what changed, CodeDeploy only the functions whose
        version changed, then serve the new routes and event sources; on failure restore all of it."""
        log, local = request.log, running.local
        deployed = local.stack
        log.write(
            f"Updating stack {request.stack_name}: {running.release.commit[:12]} -> {request.commit[:12]}\n"
        )
        change_set = create_change_set(
            stack_name=request.stack_name,
            deployed=deployed.template,
            proposed=proposed,
            region=local.cloud.region,
        )
        log.write(change_set.describe())
        if change_set.empty:  # the environment keeps serving (and the store keeps) the deployed release
            self.store.discard(release)
            self.last_deployed = request.environment
            return Outcome.passed(
                "no changes: the change set is empty, nothing deployed", outputs=local.outputs()
            )
        before = Before(stack=deployed, routing=aliases_of(local, deployed))
        self.store.begin(request.environment, serving=running.release, staged=release)
        try:
            outcome = self._execute(request, local, proposed, deployed)
        except Exception as error:  # whatever failed, CloudFormation rolls the whole update back
            outcome = Outcome.failed(f"update failed, rolled back: {type(error).__name__}: {error}")
        if not outcome.succeeded:
            try:
                restore(local, before, log)
            except Exception as error:  # UPDATE_ROLLBACK_FAILED: say what is left half-restored
                log.write(
                    f"Rollback incomplete ({type(error).__name__}: {error}): the next release starts "
                    "this environment afresh from its last release\n"
                )
                outcome = Outcome.failed(f"{outcome.message}; rollback incomplete: {error}", outcome.alarm)
            self.store.discard(release)
            self.store.end(request.environment)
            return outcome
        for problem in clean_up_stack(local.cloud, deployed=deployed, updated=local.stack):
            log.write(f"Cleanup: {problem}\n")
        running.before, running.release = before, release
        self.store.promote(request.environment, release)
        self.store.end(request.environment)
        self.last_deployed = request.environment
        return Outcome.passed(outcome.message, outputs=local.outputs())

    def _execute(
        self, request: DeployRequest, local: LocalEnvironment, proposed: TransformedTemplate, deployed: Stack
    ) -> Outcome:
        log = request.log
        stack = update_stack(local.cloud, proposed, deployed=deployed)
        local.stack = stack  # the shift's alarms are the new template's
        versions = publish_functions(stack, local.functions, point_new_aliases=False, deployed=deployed)
        changed = {lid: v for lid, v in versions.items() if v != deployed.function_versions.get(lid)}
        new_versions = {stack.functions[lid].name: version for lid, version in changed.items()}
        if new_versions:
            log.write("Published " + ", ".join(f"{n}:{v}" for n, v in sorted(new_versions.items())) + "\n")
        groups = [g for g in deployment_groups(stack) if g.function in new_versions]
        move_aliases_in_place(local, stack, groups, changed, log)
        if groups:
            before = {
                (g.function, g.alias): local.functions.alias_routing(g.function, g.alias)
                for g in groups
                if local.functions.has_alias(g.function, g.alias)
            }
            outcome = self._shift(request, local, groups, before, new_versions)
            if not outcome.succeeded:
                return outcome
        else:
            outcome = Outcome.passed("no function version changed: no CodeDeploy deployment")
            log.write(f"{outcome.message}\n")
        local.apply_stack(stack)  # the API and event source mappings refer to the aliases: updated after them
        log.write(f"Serving {len(local.gateway.routes)} routes and {len(local.sources)} event sources\n")
        return outcome

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

    @staticmethod
    def _note_not_emulated(stack: Stack, log: TextIO) -> None:
        kinds = sorted({kind for _, kind, _ in stack.not_emulated})
        if kinds:
            log.write(f"Not emulated offline (provisioned as names only): {', '.join(kinds)}\n")

    # ------------------------------------------------------------ stage conditions

    def evaluate_alarm_rule(
        self,
        *,
        environment: str | None,
        place: AccountRegion | None = None,
        alarm_name: str,
        wait_minutes: float,
        log: TextIO,
    ) -> Outcome:
        """A rule sees the alarms of the account and region it runs in (default: the pipeline's) only."""
        place = place or self._deployed_pipeline_place()
        here = [name for name, running in self.running.items() if running.place == place]
        for name in sorted(here, key=lambda n: n != environment):  # the stage's environment first
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
            with local.watching():
                return bake(local, rule=rule, evaluator=evaluator, wait_minutes=wait_minutes, log=log)
        return Outcome.failed(self._alarm_not_found(alarm_name, place))

    def _alarm_not_found(self, alarm_name: str, place: AccountRegion) -> str:
        elsewhere = [
            f"{name}'s account {running.place.account_id} in {running.place.region}"
            for name, running in sorted(self.running.items())
            if running.place != place and alarm_name in _alarm_names(running.local)
        ]
        if elsewhere:
            return (
                f"alarm {alarm_name} does not exist in account {place.account_id} in {place.region}, where "
                f"the rule runs; it is in {', '.join(elsewhere)}: a rule runs as the pipeline's role and AWS "
                "documents none reading another account, so bake in the environment's test build (ADR 0018)"
            )
        return (
            f"alarm {alarm_name} is not defined by any environment deployed in this release in account "
            f"{place.account_id} in {place.region}"
        )

    def roll_back(self, *, environment: str, log: TextIO) -> Outcome:
        running = self.running.get(environment)
        if running is None or running.before is None:
            return Outcome.failed(f"{environment} has no earlier release of this run to roll back to")
        restore(running.local, running.before, log)
        previous = self.store.demote(environment)
        if previous is not None:
            running.release = previous
        running.before = None
        return Outcome.passed(f"{environment} serves its previous release again")

    def recover_interrupted(self) -> tuple[RecoveredEnvironment, ...]:
        """Environments a killed release left mid-deployment, back on their last promoted release."""
        return tuple(self.store.recover(interrupted) for interrupted in self.store.in_flight())

    def close(self) -> None:
        """Stop every environment (one still starting ahead once started), then every local cloud,
        each kind side by side: an environment's pollers end their long polls in ~1 s, and none
        waits for another's."""
        if self._background is not None:
            self._background.shutdown(wait=True)
            self._background = None
        self._ahead.clear()
        with ThreadPoolExecutor(thread_name_prefix="close") as pool:
            list(pool.map(LocalEnvironment.stop, [running.local for running in self.running.values()]))
            list(pool.map(LocalCloud.stop, self.clouds.values()))
        self.running.clear()
        self.clouds.clear()
        self.tooling = None
        for handle in self._runtime_logs:
            handle.close()
        self._runtime_logs.clear()


def _alarm_names(local: LocalEnvironment) -> set[str]:
    alarms = local.stack.alarms()
    return {alarm.name for alarm in alarms.metric} | {alarm.name for alarm in alarms.composite}
