"""One environment running offline: local cloud, provisioned stack, functions, gateway, event sources.

This composes the runtime's parts for `make local`, the integration tests and the deployer:
`start_environment()` brings everything up (and tears down what it started if a step fails);
`LocalEnvironment.stop()` stops every process and thread it started and frees its ports.
It sits above `provision` and the other runtime modules; nothing below imports it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal.alarms.evaluator import AlarmEvaluator
from rehearsal.alarms.metrics import MetricStore
from rehearsal.base.aws import ACCESS_KEY_ID, DEFAULT_PLACE, LOCAL, SECRET_ACCESS_KEY, AccountRegion
from rehearsal.base.clock import REAL_TIME, TimeScale
from rehearsal.cloud.descriptions import BucketSource, FunctionSpec, QueueSource
from rehearsal.cloud.provision import Stack, StackAlarms, deploy_template
from rehearsal.cloud.roles import IAM_NOT_EMULATED
from rehearsal.cloud.server import LocalCloud, start_local_cloud
from rehearsal.cloud.template import (
    StackIdentity,
    UnresolvedReferenceError,
    code_sha256,
    load_template,
)
from rehearsal.runtime.control_plane import ControlPlane
from rehearsal.runtime.credentials import ExecutionRoles, PollerSqs
from rehearsal.runtime.faults import NO_FAULTS, FaultInjector, FaultPlan, Invoke
from rehearsal.runtime.functions import FunctionConfig, LocalFunctions
from rehearsal.runtime.gateway import Credentials, Gateway
from rehearsal.runtime.pollers import BucketEventDelivery, PollerCrew, QueueMetricsSampler, QueuePoller
from rehearsal.runtime.schedules import Scheduler, declared_schedules

LogSink = Callable[[dict[str, Any]], None]
# Settings the runtime imposes on every function, and why:
# Differences from Lambda every environment has (docs/decisions/0028-functions-run-as-lambda-runs-them.md).
RUNTIME_NOT_EMULATED = (
    *IAM_NOT_EMULATED,
    (
        "Architectures",
        "every function",
        "functions run on this machine's CPU architecture, whatever the template names",
    ),
    (
        "code folder",
        "every function",
        "a function's unzipped package is writable here; on Lambda the one writable folder documented is "
        "/tmp (read-only code: unverified): a function writing beside its code passes here",
    ),
)
# A release's environments fire their scheduled rules only while it watches them (ADR 0062).
_WATCHED_ONLY = (
    "fires only while the release deploys, tests or bakes this environment: between those actions "
    "nothing judges what its targets do, and on the compressed clock they would run back to back"
)
_RUNTIME_ENVIRON = {
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon offline
}
# Lambda starts five concurrent batches per SQS mapping and scales up to its MaximumConcurrency
# (docs/decisions/0052-platform-faults.md); here it runs that many pollers from the start.
SQS_STARTING_BATCHES = 5


@dataclass
class LocalEnvironment:
    """Everything one environment runs; `stop()` ends it all."""

    name: str
    cloud: LocalCloud
    stack: Stack
    metrics: MetricStore
    functions: LocalFunctions
    control: ControlPlane
    gateway: Gateway
    time_scale: TimeScale
    log_sink: LogSink
    faults: FaultInjector
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    # False when the caller gave the cloud: environments of one account and region share it (ADR 0049).
    owns_cloud: bool = True
    # Each event source's poller and the event that stops it alone (an update may remove the source).
    sources: dict[QueueSource | BucketSource, tuple[list[threading.Thread], threading.Event]] = field(
        default_factory=dict
    )
    sampler: QueueMetricsSampler | None = None
    scheduler: Scheduler | None = None
    # Set while the scheduled rules fire: always, unless started with `schedules_while_watched`.
    schedules_firing: threading.Event = field(default_factory=threading.Event)
    schedules_while_watched: bool = False
    _watches: int = 0
    _watch_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.schedules_while_watched:
            self.schedules_firing.set()

    @property
    def base_url(self) -> str:
        return self.gateway.base_url

    def outputs(self) -> dict[str, str]:
        """The template's outputs; ApiUrl is the local gateway's base URL."""
        return self.stack.outputs(self.gateway.base_url)

    @property
    def not_emulated(self) -> list[tuple[str, str, str]]:
        """(what, where, why) of each fact of this environment the local runtime does not emulate."""
        scheduled, unscheduled = declared_schedules(self.stack)
        what = "AWS::Events::Rule schedule"
        schedules = [(what, rule.logical_id, rule.why) for rule in unscheduled]
        if self.schedules_while_watched:
            schedules += [(what, rule.logical_id, _WATCHED_ONLY) for rule in scheduled]
        return [*self.functions.not_emulated, *RUNTIME_NOT_EMULATED, *schedules, *self._api_stand_ins()]

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """While a release deploys, tests or bakes this environment: its scheduled rules fire."""
        with self._watch_lock:
            self._watches += 1
            self.schedules_firing.set()
        try:
            yield
        finally:
            with self._watch_lock:
                self._watches -= 1
                if self._watches == 0 and self.schedules_while_watched:
                    self.schedules_firing.clear()

    def api_urls(self) -> dict[str, str]:
        """Each REST API's stage URL as AWS names it -> the local gateway that serves it."""
        suffix = self.stack.resolver.resolve({"Ref": "AWS::URLSuffix"})
        return {
            f"https://{self.stack.resolver.refs[api.logical_id]}.execute-api.{self.cloud.region}.{suffix}"
            f"/{api.stage}": self.gateway.base_url
            for api in self.stack.rest_apis
        }

    def _api_stand_ins(self) -> list[tuple[str, str, str]]:
        """A fact per function whose environment names its own stack's API (it reaches the local gateway)."""
        facts = []
        for logical_id in self.stack.functions:
            try:
                values = self.stack.function_environment(logical_id).values()
            except UnresolvedReferenceError:
                continue
            if any(value.startswith(url) for value in values for url in self.api_urls()):
                why = (
                    "its environment names this stack's API stage URL (https://<api>.execute-api...); the "
                    "runtime gives the function process the local gateway's http URL instead (no DNS, no TLS)"
                )
                facts.append(("execute-api host", logical_id, why))
        return facts

    def credentials(self) -> Credentials:
        return self.gateway.credentials

    def alarm_evaluator(self) -> tuple[AlarmEvaluator, StackAlarms]:
        """An evaluator over the stack's metric alarms as resolved now, and the alarms it read."""
        alarms = self.stack.alarms()
        return AlarmEvaluator(list(alarms.metric), self.metrics, time_scale=self.time_scale), alarms

    def start_event_sources(self) -> None:
        """Start SQS pollers, S3 notification delivery and the queue-depth sampler."""
        self.sampler = QueueMetricsSampler(
            self._queue_names(),
            sqs=self.cloud.client("sqs"),
            store=self.metrics,
            stopping=self.stopping,
            interval=max(self.time_scale.real_seconds(60), 0.5),
        )
        self.threads.append(self.sampler)
        self.sampler.start()
        self._sync_event_sources()
        self.scheduler = scheduler = Scheduler(  # EventBridge's scheduled rules: the declared traffic
            stack=lambda: self.stack,
            invoke=self.functions.invoke,
            time_scale=self.time_scale,
            stopping=self.stopping,
            log_sink=self.log_sink,
            firing=self.schedules_firing,
        )
        self.threads.append(scheduler)
        scheduler.start()

    def apply_stack(self, stack: Stack) -> None:
        """Serve an updated stack in place, as an update changes a live API and its mappings: the gateway
        reloads its route table (routes, validators, models), pollers of removed or changed event
        sources stop and those of new ones start. Nothing restarts; functions keep their workers."""
        self.stack = stack
        self.gateway.reload(stack.rest_apis)
        self._sync_event_sources()
        if self.sampler is not None:
            self.sampler.queue_urls = self._queue_names()

    def _queue_names(self) -> dict[str, str]:
        return {
            str(self.stack.resolver.attributes[(logical_id, "QueueName")]): physical
            for logical_id, kind, physical in self.stack.created
            if kind == "AWS::SQS::Queue"
        }

    def _sync_event_sources(self) -> None:
        """One poller per event source the stack describes: an unchanged source keeps its poller."""
        wanted: list[QueueSource | BucketSource] = [*self.stack.queue_sources, *self.stack.bucket_sources]
        for source in [s for s in self.sources if s not in wanted]:
            threads, stop = self.sources.pop(source)
            stop.set()
            for thread in threads:
                thread.join(timeout=5)
        for source in wanted:
            if source not in self.sources:
                stop = threading.Event()
                threads = self._pollers(source, stop)
                self.sources[source] = (threads, stop)
                for thread in threads:
                    thread.start()

    def _pollers(self, source: QueueSource | BucketSource, stop: threading.Event) -> list[threading.Thread]:
        """A queue's pollers, as many as its MaximumConcurrency (ADR 0052); a bucket's one delivery."""
        if isinstance(source, QueueSource):
            count = min(source.maximum_concurrency or SQS_STARTING_BATCHES, self.functions.max_concurrency)
            crew = PollerCrew()
            return [
                QueuePoller(
                    source,
                    sqs=self._poller_sqs(source.function),
                    invoke=self.faults.invoker(self.functions.invoke, caller="queue"),
                    region=self.cloud.region,
                    stopping=stop,
                    log_sink=self.log_sink,
                    time_scale=self.time_scale,
                    function_timeout=self._timeout_of(source.function),
                    index=index,
                    crew=crew,
                )
                for index in range(count)
            ]
        delivery = BucketEventDelivery(
            source,
            sqs=self.cloud.client("sqs"),
            invoke=self.functions.invoke,
            stopping=stop,
            log_sink=self.log_sink,
            time_scale=self.time_scale,
        )
        return [delivery]

    def _poller_sqs(self, function: str) -> Any:
        """The SQS client an event source mapping of `function` polls with: its role's session."""
        name, _ = self.functions.resolve_target(function)
        role = next((spec.role for spec in self.stack.functions.values() if spec.name == name), None)
        roles = self.functions.execution_roles
        if roles is None or role is None:
            return self.cloud.client("sqs")
        session = roles.session(role, name)
        role_client = self.cloud.client_as(
            "sqs", session.access_key_id, session.secret_access_key, session.session_token
        )
        return PollerSqs(role_client=role_client, own_client=self.cloud.client("sqs"))

    def _timeout_of(self, function: str) -> float:
        """The Timeout of the function an event source names (by name or ARN), in seconds."""
        name, _ = self.functions.resolve_target(function)
        return max((spec.timeout for spec in self.stack.functions.values() if spec.name == name), default=0.0)

    def stop(self) -> None:
        """Stop pollers, gateway, control plane, workers, fault proxy and the local cloud (if its own),
        in that order."""
        self.stopping.set()
        for _, stop in self.sources.values():
            stop.set()
        for thread in [
            *self.threads,
            *(thread for threads, _ in self.sources.values() for thread in threads),
        ]:
            thread.join(timeout=5)
        self.threads.clear()
        self.sources.clear()
        steps = [self.gateway.stop, self.control.stop, self.functions.close, self.faults.stop]
        for step in (*steps, self.cloud.stop) if self.owns_cloud else steps:
            with contextlib.suppress(Exception):
                step()


def publish_functions(
    stack: Stack,
    functions: LocalFunctions,
    *,
    point_new_aliases: bool = True,
    deployed: Stack | None = None,
) -> dict[str, str]:
    """Register every function of the stack and publish the versions the template asks for; return
    {logical id: version it now has} for every function.

    On a create (`deployed` is None) each function gets its first version. On an update, a function
    whose `AWS::Lambda::Version` the deployed template already had keeps its version (SAM renames that
    resource when the code location, CodeSha256-named, or the configuration it hashes changes), and
    Lambda's PublishVersion publishes nothing when the code (CodeSha256) and configuration equal the
    latest version's. A function without a Version resource (a hook) is republished only when it
    changed, so that its next invocation by number runs its new `$LATEST`. A function whose environment
    refers to another function's version (a PreTraffic hook's `VERSIONS_UNDER_TEST`) is published
    after that function. An alias that does not exist yet is pointed at the new version; existing
    aliases are left for the deployer to shift.
    """
    versions: dict[str, str] = {}
    pending = dict(stack.functions)
    while pending:
        progressed = False
        for logical_id, spec in list(pending.items()):
            try:
                environment = stack.function_environment(logical_id)
            except UnresolvedReferenceError:
                continue
            version = _publish_function(stack, functions, spec, environment, deployed)
            stack.record_version(logical_id, version)
            if spec.alias_name and point_new_aliases and not functions.has_alias(spec.name, spec.alias_name):
                functions.set_alias(spec.name, spec.alias_name, {version: 1.0})
            versions[logical_id] = version
            del pending[logical_id]
            progressed = True
        if not progressed:
            raise UnresolvedReferenceError(", ".join(sorted(pending)))
    return versions


def _publish_function(
    stack: Stack,
    functions: LocalFunctions,
    spec: FunctionSpec,
    environment: Mapping[str, str],
    deployed: Stack | None,
) -> str:
    """The function's `$LATEST` updated (CloudFormation updates it in place) and the version it now has."""
    code_sha = code_sha256(spec.code)
    settings = _settings(stack, spec, environment, code_sha)
    stack.function_settings[spec.logical_id] = settings
    previous = deployed.function_settings.get(spec.logical_id) if deployed else None
    current = _current_version(deployed, spec)
    if previous == settings and current is not None:  # nothing changed: $LATEST and versions stay
        return current
    functions.put_function(_config(functions, spec, environment))
    version_kept = (
        deployed is not None
        and spec.version_logical_id is not None
        and spec.version_logical_id in deployed.template.resources
    )
    if version_kept and current is not None:
        return current
    return functions.publish_version(spec.name)


def restore_functions(deployed: Stack, functions: LocalFunctions, *, updated: Stack) -> None:
    """Put back the `$LATEST` of every function an update changed, as its rollback does (no version is
    published: the versions the update published stay, unused, as SAM's retained versions do)."""
    for logical_id, spec in deployed.functions.items():
        settings = deployed.function_settings.get(logical_id)
        if settings is None or settings == updated.function_settings.get(logical_id):
            continue
        functions.put_function(_config(functions, spec, deployed.function_environment(logical_id)))


def _config(functions: LocalFunctions, spec: FunctionSpec, environment: Mapping[str, str]) -> FunctionConfig:
    return FunctionConfig(
        name=spec.name,
        handler=spec.handler,
        code_dir=functions.unpack(spec.name, spec.code),
        environment=environment,
        timeout=spec.timeout,
        memory_mb=spec.memory_mb,
        runtime=spec.runtime,
        layers=spec.layers,
        reserved_concurrency=spec.reserved_concurrency,
        role=spec.role,
    )


def _settings(stack: Stack, spec: FunctionSpec, environment: Mapping[str, str], code_sha: str) -> str:
    """What a version is made of, as one comparable text: PublishVersion compares the code and every
    configuration property (description, memory, role...), not only what the local runtime uses."""
    properties = stack.template.resources[spec.logical_id].get("Properties") or {}
    configuration = stack.resolver.resolve(
        {key: value for key, value in properties.items() if key not in ("Code", "Environment")}
    )
    return json.dumps(
        {"code": code_sha, "environment": dict(environment), "configuration": configuration},
        sort_keys=True,
        default=str,
    )


def _current_version(deployed: Stack | None, spec: FunctionSpec) -> str | None:
    """The version the deployed stack recorded for this function (None: a function new in this update)."""
    if deployed is None or spec.logical_id not in deployed.functions:
        return None
    return deployed.function_versions.get(spec.logical_id)


def start_environment(
    *,
    template_path: Path,
    environment: str = LOCAL,
    parameters: Mapping[str, str] | None = None,
    port: int = 0,
    stack_name: str | None = None,
    time_scale: TimeScale = REAL_TIME,
    log_sink: LogSink | None = None,
    max_concurrency: int = 10,
    cloud: LocalCloud | None = None,
    place: AccountRegion = DEFAULT_PLACE,
    faults: FaultPlan = NO_FAULTS,
    schedules_while_watched: bool = False,
) -> LocalEnvironment:
    """Start the local cloud, provision the template, publish its functions and serve its API and events.

    `cloud` is a running cloud to provision into (its account and region; the caller stops it), else
    a new one answers as `place`. `faults` is the plan of platform faults to inject
    (rehearsal/runtime/faults.py); none by default. `schedules_while_watched`: the scheduled rules
    fire only inside `LocalEnvironment.watching()` (a release's environments), else always.
    Whatever started is stopped again, in reverse order, if a step fails.
    """
    sink: LogSink = log_sink or (lambda _record: None)
    document = load_template(template_path)  # a broken template fails before any process starts
    with contextlib.ExitStack() as started:
        owns_cloud = cloud is None
        if cloud is None:
            cloud = start_local_cloud(environment, place=place)
            started.callback(_quietly, cloud.stop)
        identity = StackIdentity(
            stack_name=stack_name or f"rehearsal-{environment}",
            region=cloud.region,
            account_id=cloud.account_id,
        )
        stack = deploy_template(
            cloud,
            document,
            identity=identity,
            environment=environment,
            parameters=parameters or {},
            base_dir=template_path.parent,
        )
        metrics = MetricStore()
        functions, control = _start_functions(
            cloud,
            stack,
            metrics,
            sink=sink,
            max_concurrency=max_concurrency,
            started=started,
            time_scale=time_scale,
        )
        injector = _start_faults(faults, cloud, functions, metrics, started=started)
        gateway = _start_gateway(
            cloud,
            stack,
            injector.invoker(functions.invoke, caller="api"),
            metrics,
            port=port,
            sink=sink,
            started=started,
            session_secrets=_session_secrets(functions),
        )
        local = LocalEnvironment(
            name=environment,
            cloud=cloud,
            stack=stack,
            metrics=metrics,
            functions=functions,
            control=control,
            gateway=gateway,
            time_scale=time_scale,
            log_sink=sink,
            owns_cloud=owns_cloud,
            faults=injector,
            schedules_while_watched=schedules_while_watched,
        )
        functions.url_stand_ins = local.api_urls()
        local.start_event_sources()
        started.pop_all()  # all up: from here `LocalEnvironment.stop()` ends it
    return local


def _start_functions(
    cloud: LocalCloud,
    stack: Stack,
    metrics: MetricStore,
    *,
    sink: LogSink,
    max_concurrency: int,
    started: contextlib.ExitStack,
    time_scale: TimeScale,
) -> tuple[LocalFunctions, ControlPlane]:
    """The function runtime and the control plane its hooks call, with every function published."""
    functions = LocalFunctions(
        metrics=metrics,
        region=cloud.region,
        account_id=cloud.account_id,
        base_environ={},
        log_sink=sink,
        max_concurrency=max_concurrency,
        execution_roles=ExecutionRoles(cloud.client("sts")),
    )
    started.callback(_quietly, functions.close)
    control = ControlPlane(invoke=functions.invoke, log_sink=sink)
    control.start()
    started.callback(_quietly, control.stop)
    # A pipeline minute's length, as builds get it (`make bake`): code that paces itself in pipeline
    # time (the staging traffic source) sends offline what it sends on AWS per pipeline minute.
    minute = {"PIPELINE_MINUTE_SECONDS": str(time_scale.seconds_per_minute)}
    functions.base_environ = {**cloud.environ(), **control.environ(), **_RUNTIME_ENVIRON, **minute}
    publish_functions(stack, functions)
    return functions, control


def _start_faults(
    plan: FaultPlan,
    cloud: LocalCloud,
    functions: LocalFunctions,
    metrics: MetricStore,
    *,
    started: contextlib.ExitStack,
) -> FaultInjector:
    """The plan's injector; with API-call faults, the functions reach DynamoDB and SQS through its proxy."""
    injector = FaultInjector(plan, metrics=metrics)
    if plan.proxied:
        endpoint = injector.start_proxy(cloud.endpoint_url)
        started.callback(_quietly, injector.stop)
        functions.base_environ.update(
            {"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_ENDPOINT_URL_SQS": endpoint}
        )
    return injector


def _start_gateway(
    cloud: LocalCloud,
    stack: Stack,
    invoke: Invoke,
    metrics: MetricStore,
    *,
    port: int,
    sink: LogSink,
    started: contextlib.ExitStack,
    session_secrets: Callable[[str], str | None],
) -> Gateway:
    """The local API Gateway for the stack's REST APIs, on `port` (0: any free one)."""
    gateway = Gateway(
        apis=stack.rest_apis,
        invoke=invoke,
        credentials=Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, cloud.region),
        metrics=metrics,
        port=port,
        account_id=cloud.account_id,
        log_sink=sink,
        session_secrets=session_secrets,
    )
    gateway.start()
    started.callback(_quietly, gateway.stop)
    return gateway


def _session_secrets(functions: LocalFunctions) -> Callable[[str], str | None]:
    roles = functions.execution_roles
    return roles.secret_for if roles is not None else (lambda _key: None)


def _quietly(stop: Callable[[], None]) -> None:
    """Teardown after a failed start: the first error is the one to report, not a later stop's."""
    with contextlib.suppress(Exception):
        stop()
