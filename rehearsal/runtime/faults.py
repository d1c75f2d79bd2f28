"""Platform faults the local runtime injects, from a typed plan given to the environment.

The faults are the platform's, never the service code's (docs/decisions/0052-platform-faults.md):

* invocations refused as Lambda refuses them when throttled (`TooManyRequestsException`): an
  event source's batch returns to the queue, the gateway answers the client as API Gateway does;
* a worker process killed (SIGKILL) while it runs an invocation: the invocation fails as
  `Runtime.ExitError` and the batch's messages come back after the visibility timeout;
* AWS API calls of the function processes (DynamoDB; SQS sends) through a fault proxy in front of
  the local cloud: per attempt, throttling or server errors (the SDK retries them as configured)
  and delays; per call (every attempt of one SDK call, told apart by botocore's
  `amz-sdk-invocation-id`), a failure the SDK does not retry, which the code sees as an outage
  that outlasted its retries.

Each decision is drawn from a `random.Random(seed)` per fault, so a plan draws the same sequence
each run; which call gets which draw depends on how concurrent calls interleave.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from rehearsal.alarms.metrics import MetricStore
from rehearsal.runtime.invocation import KILL_DURING_CALL, InvocationResult

Invoke = Callable[..., InvocationResult]


@dataclass(frozen=True, kw_only=True)
class InvocationFaults:
    """Faults of the invocations one kind of caller makes (event sources, or the API gateway)."""

    throttle: float = 0.0  # probability an invocation is refused before any code runs
    kill: float = 0.0  # probability the worker is SIGKILLed while it runs the invocation
    kill_within: float = 0.3  # seconds: the kill lands uniformly within this after the request
    max_kills: int | None = None  # stop killing after this many kills (None: no limit)


@dataclass(frozen=True, kw_only=True)
class CallFaults:
    """Faults of one AWS service's API calls made by the function processes."""

    transient: float = 0.0  # per attempt: a retryable error (throttling, server error)
    failing: float = 0.0  # per SDK call: every attempt refused with a non-retryable error
    delay: float = 0.0  # per attempt: probability the answer is held back
    delay_seconds: float = 0.0

    @property
    def active(self) -> bool:
        return any((self.transient, self.failing, self.delay))


@dataclass(frozen=True, kw_only=True)
class FaultPlan:
    """What fails, how often, and the seed every draw starts from."""

    seed: int
    queue_invocations: InvocationFaults = InvocationFaults()
    api_invocations: InvocationFaults = InvocationFaults()
    dynamodb: CallFaults = CallFaults()
    queue_sends: CallFaults = CallFaults()  # SQS SendMessage / SendMessageBatch

    def __post_init__(self) -> None:
        for name in ("queue_invocations", "api_invocations", "dynamodb", "queue_sends"):
            for key, value in vars(getattr(self, name)).items():
                if key == "max_kills" or value is None:
                    continue
                if key in ("kill_within", "delay_seconds"):
                    if value < 0:
                        raise ValueError(f"fault plan {name}.{key} = {value}: use seconds >= 0")
                elif not 0.0 <= value <= 1.0:
                    raise ValueError(f"fault plan {name}.{key} = {value}: use a probability in [0, 1]")

    @property
    def proxied(self) -> bool:
        """Whether function processes reach the local cloud through the fault proxy."""
        return self.dynamodb.active or self.queue_sends.active


NO_FAULTS = FaultPlan(seed=0)


@dataclass
class FaultCounts:
    """What the plan injected so far (what actually happened, not what was drawn)."""

    throttled_batches: int = 0
    throttled_requests: int = 0
    killed_invocations: int = 0
    dynamodb_transient: int = 0
    dynamodb_failed_calls: int = 0
    dynamodb_delayed: int = 0
    send_transient: int = 0
    send_failed_calls: int = 0
    send_delayed: int = 0


# The answers the proxy gives, as each service's JSON protocol spells them.
_DYNAMODB = "com.amazonaws.dynamodb.v20120810#"
_ANSWERS: dict[tuple[str, str], tuple[int, str, str]] = {
    ("dynamodb", "throttle"): (400, _DYNAMODB + "ProvisionedThroughputExceededException", "Rate exceeded"),
    ("dynamodb", "server"): (500, "com.amazon.coral.service#InternalServerError", "Internal server error"),
    ("dynamodb", "failing"): (400, _DYNAMODB + "AccessDeniedException", "fault plan: call refused"),
    ("sqs", "throttle"): (400, "com.amazonaws.sqs#RequestThrottled", "Rate exceeded"),
    ("sqs", "server"): (500, "com.amazonaws.sqs#InternalError", "Internal error"),
    ("sqs", "failing"): (400, "com.amazonaws.sqs#QueueDoesNotExist", "fault plan: queue unreachable"),
}
_SENDS = ("AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch")


class _Draws:
    """One seeded random sequence per fault, drawn under a lock (callers are threads)."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._streams: dict[str, random.Random] = {}
        self._lock = threading.Lock()

    def hit(self, name: str, probability: float) -> bool:
        if probability <= 0:
            return False
        return self.uniform(name) < probability

    def uniform(self, name: str) -> float:
        with self._lock:
            stream = self._streams.setdefault(name, random.Random(f"{self._seed}/{name}"))  # nosec B311
            return stream.random()


class FaultInjector:
    """Applies one plan: wraps invokers, serves the fault proxy, counts what it injected."""

    def __init__(self, plan: FaultPlan, *, metrics: MetricStore) -> None:
        self.plan = plan
        self.metrics = metrics
        self.counts = FaultCounts()
        self._draws = _Draws(plan.seed)
        self._failing_calls: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._proxy: _FaultProxy | None = None

    # ------------------------------------------------------------ invocations

    def invoker(self, invoke: Invoke, *, caller: str) -> Invoke:
        """`invoke` with the plan's invocation faults for `caller` ("queue" or "api")."""
        faults = self.plan.queue_invocations if caller == "queue" else self.plan.api_invocations
        if not (faults.throttle or faults.kill):
            return invoke

        def faulty(target: str, event: Any, **options: Any) -> InvocationResult:
            if self._draws.hit(f"{caller}/throttle", faults.throttle):
                return self._throttled(target, caller)
            kill_after = None
            if self._may_kill(faults) and self._draws.hit(f"{caller}/kill", faults.kill):
                kill_after = self._draws.uniform(f"{caller}/kill-at") * faults.kill_within
            token = KILL_DURING_CALL.set(kill_after)
            try:
                result = invoke(target, event, **options)
            finally:
                KILL_DURING_CALL.reset(token)
            if kill_after is not None and (result.error or {}).get("errorType") == "Runtime.ExitError":
                self._count("killed_invocations")
            return result

        return faulty

    def _may_kill(self, faults: InvocationFaults) -> bool:
        return faults.max_kills is None or self.counts.killed_invocations < faults.max_kills

    def _throttled(self, target: str, caller: str) -> InvocationResult:
        """Lambda's answer to a throttled Invoke; its Throttles metric, as Lambda publishes it."""
        parts = target.split(":")
        name, qualifier = (parts[6], parts[7:]) if target.startswith("arn:") else (parts[0], parts[1:])
        self._count("throttled_batches" if caller == "queue" else "throttled_requests")
        sets: list[dict[str, str]] = [{}, {"FunctionName": name}]
        if qualifier:
            sets.append({"FunctionName": name, "Resource": f"{name}:{qualifier[0]}"})
        for dims in sets:
            self.metrics.put("AWS/Lambda", "Throttles", dims, 1, unit="Count", timestamp=time.time())
        return InvocationResult(
            function_name=name,
            executed_version="",
            request_id="",
            throttled=True,
            error={"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."},
        )

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.counts, name, getattr(self.counts, name) + 1)

    # ------------------------------------------------------------ AWS API calls

    def start_proxy(self, upstream: str) -> str:
        """Serve the fault proxy in front of `upstream` (the local cloud); return its endpoint URL."""
        self._proxy = _FaultProxy(self, upstream)
        self._proxy.start()
        return self._proxy.url

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()

    def answer(self, target: str, invocation_id: str) -> tuple[tuple[int, str, str] | None, float]:
        """(error answer or None, seconds to hold the answer) for one attempt of an API call."""
        service, faults, prefix = self._faults_for(target)
        if faults is None or not faults.active:
            return None, 0.0
        with self._lock:  # every attempt of one SDK call shares its verdict
            failing = self._failing_calls.get(invocation_id)
        if failing is None:
            failing = self._draws.hit(f"{service}/failing", faults.failing)
            with self._lock:
                self._failing_calls[invocation_id] = failing
        if failing:
            self._count(f"{prefix}_failed_calls")
            return _ANSWERS[(service, "failing")], 0.0
        if self._draws.hit(f"{service}/transient", faults.transient):
            self._count(f"{prefix}_transient")
            kind = "throttle" if self._draws.uniform(f"{service}/kind") < 0.5 else "server"
            return _ANSWERS[(service, kind)], 0.0
        if self._draws.hit(f"{service}/delay", faults.delay):
            self._count(f"{prefix}_delayed")
            return None, faults.delay_seconds
        return None, 0.0

    def _faults_for(self, target: str) -> tuple[str, CallFaults | None, str]:
        if target.startswith("DynamoDB_"):
            return "dynamodb", self.plan.dynamodb, "dynamodb"
        if target in _SENDS:
            return "sqs", self.plan.queue_sends, "send"
        return "", None, ""


@dataclass
class _Upstream:
    host: str
    port: int
    local: threading.local = field(default_factory=threading.local)

    def connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "connection", None) is None:
            self.local.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        connection: http.client.HTTPConnection = self.local.connection
        return connection

    def drop(self) -> None:
        with contextlib.suppress(Exception):
            self.local.connection.close()
        self.local.connection = None


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    server: _ProxyServer

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        answer, hold = self.server.injector.answer(target, self.headers.get("amz-sdk-invocation-id", ""))
        if hold:
            time.sleep(hold)  # the fault itself: a slow answer
        if answer is not None:
            status, kind, message = answer
            self._reply(status, [("Content-Type", "application/x-amz-json-1.0")], _error_body(kind, message))
            return
        status, headers, payload = self._forward(body)
        self._reply(status, headers, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = self.server.upstream
        headers = {key: value for key, value in self.headers.items() if key.lower() not in _HOP_BY_HOP}
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed meanwhile
            connection = upstream.connection()
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (ConnectionError, http.client.HTTPException):
                upstream.drop()
                if attempt == 2:
                    raise
                continue
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, payload
        raise AssertionError("unreachable")  # pragma: no cover

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the functions' own logs say what failed."""


def _error_body(kind: str, message: str) -> bytes:
    return json.dumps({"__type": kind, "message": message}).encode()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hung up (its process was killed) is part of the faults."""

    def __init__(self, injector: FaultInjector, upstream: _Upstream) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.injector = injector
        self.upstream = upstream


class _FaultProxy:
    def __init__(self, injector: FaultInjector, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.server = _ProxyServer(injector, _Upstream(parts.hostname or "127.0.0.1", parts.port or 80))
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
