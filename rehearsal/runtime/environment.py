"""One environment running offline: local cloud, provisioned stack, functions, gateway, event sources.

This composes the runtime's parts for `make local`, the integration tests and the deployer:
`start_environment()` brings everything up (and tears down what it started if a step fails);
`LocalEnvironment.stop()` stops every process and thread it started and frees its ports.
It sits above `provision` and the other runtime modules; nothing below imports it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal.alarms.evaluator import AlarmEvaluator
from rehearsal.alarms.metrics import MetricStore
from rehearsal.base.aws import ACCESS_KEY_ID, LOCAL, SECRET_ACCESS_KEY
from rehearsal.base.clock import REAL_TIME, TimeScale
from rehearsal.cloud.provision import Stack, StackAlarms, deploy_template
from rehearsal.cloud.server import LocalCloud, start_local_cloud
from rehearsal.cloud.template import (
    StackIdentity,
    UnresolvedReferenceError,
    load_template,
)
from rehearsal.runtime.control_plane import ControlPlane
from rehearsal.runtime.faults import NO_FAULTS, FaultInjector, FaultPlan, Invoke
from rehearsal.runtime.functions import FunctionConfig, LocalFunctions
from rehearsal.runtime.gateway import Credentials, Gateway
from rehearsal.runtime.pollers import BucketEventDelivery, QueueMetricsSampler, QueuePoller

LogSink = Callable[[dict[str, Any]], None]
# Settings the runtime imposes on every function, and why:
# Differences from Lambda every environment has (docs/decisions/0028-functions-run-as-lambda-runs-them.md).
RUNTIME_NOT_EMULATED = (
    (
        "IAM",
        "every function",
        "functions call the local cloud with its shared credentials, not their execution role's, and "
        "the local cloud runs without IAM enforcement (moto's is server-wide; ADR 0028): a permission "
        "removed from a function's policy does not fail here",
    ),
    (
        "Architectures",
        "every function",
        "functions run on this machine's CPU architecture, whatever the template names",
    ),
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

    @property
    def base_url(self) -> str:
        return self.gateway.base_url

    def outputs(self) -> dict[str, str]:
        """The template's outputs; ApiUrl is the local gateway's base URL."""
        return self.stack.outputs(self.gateway.base_url)

    @property
    def not_emulated(self) -> list[tuple[str, str, str]]:
        """(what, where, why) of each fact of this environment the local runtime does not emulate."""
        return [*self.functions.not_emulated, *RUNTIME_NOT_EMULATED]

    def credentials(self) -> Credentials:
        return self.gateway.credentials

    def alarm_evaluator(self) -> tuple[AlarmEvaluator, StackAlarms]:
        """An evaluator over the stack's metric alarms as resolved now, and the alarms it read."""
        alarms = self.stack.alarms()
        return AlarmEvaluator(list(alarms.metric), self.metrics, time_scale=self.time_scale), alarms

    def start_event_sources(self) -> None:
        """Start SQS pollers, S3 notification delivery and the queue-depth sampler."""
        region = self.cloud.region
        invoke = self.faults.invoker(self.functions.invoke, caller="queue")
        for source in self.stack.queue_sources:
            pollers = min(source.maximum_concurrency or SQS_STARTING_BATCHES, self.functions.max_concurrency)
            self.threads.extend(
                QueuePoller(
                    source,
                    sqs=self.cloud.client("sqs"),
                    invoke=invoke,
                    region=region,
                    stopping=self.stopping,
                    log_sink=self.log_sink,
                    time_scale=self.time_scale,
                    function_timeout=self._timeout_of(source.function),
                    index=index,
                )
                for index in range(pollers)
            )
        for bucket_source in self.stack.bucket_sources:
            self.threads.append(
                BucketEventDelivery(
                    bucket_source,
                    sqs=self.cloud.client("sqs"),
                    invoke=self.functions.invoke,
                    stopping=self.stopping,
                    log_sink=self.log_sink,
                    time_scale=self.time_scale,
                )
            )
        queues = {
            str(self.stack.resolver.attributes[(logical_id, "QueueName")]): physical
            for logical_id, kind, physical in self.stack.created
            if kind == "AWS::SQS::Queue"
        }
        self.threads.append(
            QueueMetricsSampler(
                queues,
                sqs=self.cloud.client("sqs"),
                store=self.metrics,
                stopping=self.stopping,
                interval=max(self.time_scale.real_seconds(60), 0.5),
            )
        )
        for thread in self.threads:
            thread.start()

    def _timeout_of(self, function: str) -> float:
        """The Timeout of the function an event source names (by name or ARN), in seconds."""
        name, _ = self.functions.resolve_target(function)
        return max((spec.timeout for spec in self.stack.functions.values() if spec.name == name), default=0.0)

    def stop(self) -> None:
        """Stop pollers, gateway, control plane, workers, fault proxy and local cloud, in that order."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.threads.clear()
        steps = (
            self.gateway.stop,
            self.control.stop,
            self.functions.close,
            self.faults.stop,
            self.cloud.stop,
        )
        for step in steps:
            with contextlib.suppress(Exception):
                step()


def publish_functions(
    stack: Stack, functions: LocalFunctions, *, point_new_aliases: bool = True
) -> dict[str, str]:
    """Register every function of the stack and publish a version of each; return {logical id: version}.

    Functions whose environment refers to another function's version (a PreTraffic hook's
    `VERSIONS_UNDER_TEST`) are published after that function. An alias that does not exist yet
    is pointed at the new version; existing aliases are left for the deployer to shift.
    """
    published: dict[str, str] = {}
    pending = dict(stack.functions)
    while pending:
        progressed = False
        for logical_id, spec in list(pending.items()):
            try:
                environment = stack.function_environment(logical_id)
            except UnresolvedReferenceError:
                continue
            config = FunctionConfig(
                name=spec.name,
                handler=spec.handler,
                code_dir=functions.unpack(spec.name, spec.code),
                environment=environment,
                timeout=spec.timeout,
                memory_mb=spec.memory_mb,
                runtime=spec.runtime,
                layers=spec.layers,
                reserved_concurrency=spec.reserved_concurrency,
            )
            functions.put_function(config)
            version = functions.publish_version(spec.name)
            stack.record_version(logical_id, version)
            if spec.alias_name and point_new_aliases and not functions.has_alias(spec.name, spec.alias_name):
                functions.set_alias(spec.name, spec.alias_name, {version: 1.0})
            published[logical_id] = version
            del pending[logical_id]
            progressed = True
        if not progressed:
            raise UnresolvedReferenceError(", ".join(sorted(pending)))
    return published


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
    faults: FaultPlan = NO_FAULTS,
) -> LocalEnvironment:
    """Start the local cloud, provision the template, publish its functions and serve its API and events.

    `faults` is the plan of platform faults to inject (rehearsal/runtime/faults.py); none by default.
    Whatever started is stopped again, in reverse order, if a later step fails.
    """
    sink: LogSink = log_sink or (lambda _record: None)
    document = load_template(template_path)  # a broken template fails before any process starts
    with contextlib.ExitStack() as started:
        cloud = start_local_cloud(environment)
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
            cloud, stack, metrics, sink=sink, max_concurrency=max_concurrency, started=started
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
            faults=injector,
        )
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
) -> tuple[LocalFunctions, ControlPlane]:
    """The function runtime and the control plane its hooks call, with every function published."""
    functions = LocalFunctions(
        metrics=metrics,
        region=cloud.region,
        account_id=cloud.account_id,
        base_environ={},
        log_sink=sink,
        max_concurrency=max_concurrency,
    )
    started.callback(_quietly, functions.close)
    control = ControlPlane(invoke=functions.invoke, log_sink=sink)
    control.start()
    started.callback(_quietly, control.stop)
    functions.base_environ = {**cloud.environ(), **control.environ(), **_RUNTIME_ENVIRON}
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
    )
    gateway.start()
    started.callback(_quietly, gateway.stop)
    return gateway


def _quietly(stop: Callable[[], None]) -> None:
    """Teardown after a failed start: the first error is the one to report, not a later stop's."""
    with contextlib.suppress(Exception):
        stop()
