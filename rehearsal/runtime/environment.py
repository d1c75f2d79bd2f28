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
from rehearsal.runtime.functions import FunctionConfig, LocalFunctions
from rehearsal.runtime.gateway import Credentials, Gateway
from rehearsal.runtime.pollers import BucketEventDelivery, QueueMetricsSampler, QueuePoller
from rehearsal.runtime.schedules import Scheduler, declared_schedules

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
        _, unscheduled = declared_schedules(self.stack)
        schedules = [("AWS::Events::Rule schedule", rule.logical_id, rule.why) for rule in unscheduled]
        return [*self.functions.not_emulated, *RUNTIME_NOT_EMULATED, *schedules, *self._api_stand_ins()]

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
        region = self.cloud.region
        for source in self.stack.queue_sources:
            self.threads.append(
                QueuePoller(
                    source,
                    sqs=self.cloud.client("sqs"),
                    invoke=self.functions.invoke,
                    region=region,
                    stopping=self.stopping,
                    log_sink=self.log_sink,
                    time_scale=self.time_scale,
                )
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
        self.threads.append(  # EventBridge's scheduled rules: the environment's declared traffic
            Scheduler(
                stack=lambda: self.stack,
                invoke=self.functions.invoke,
                time_scale=self.time_scale,
                stopping=self.stopping,
                log_sink=self.log_sink,
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

    def stop(self) -> None:
        """Stop pollers, gateway, control plane, workers and the local cloud, in that order."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.threads.clear()
        for step in (self.gateway.stop, self.control.stop, self.functions.close, self.cloud.stop):
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
) -> LocalEnvironment:
    """Start the local cloud, provision the template, publish its functions and serve its API and events.

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
            cloud,
            stack,
            metrics,
            sink=sink,
            max_concurrency=max_concurrency,
            started=started,
            time_scale=time_scale,
        )
        gateway = _start_gateway(cloud, stack, functions, metrics, port=port, sink=sink, started=started)
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


def _start_gateway(
    cloud: LocalCloud,
    stack: Stack,
    functions: LocalFunctions,
    metrics: MetricStore,
    *,
    port: int,
    sink: LogSink,
    started: contextlib.ExitStack,
) -> Gateway:
    """The local API Gateway for the stack's REST APIs, on `port` (0: any free one)."""
    gateway = Gateway(
        apis=stack.rest_apis,
        invoke=functions.invoke,
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
