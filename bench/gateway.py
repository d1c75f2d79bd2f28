"""Gateway overhead per warm request: client round trip minus the function's own Duration.

Starts the local environment on the real `service/template.yaml` in this process, sends
SigV4-signed `GET /orders/<unknown id>` requests over one keep-alive connection, and pairs each
with the invocation record the runtime logged for it (requests are sequential, so the order
pairs them). Signing happens before the clock starts. The baseline is the same event invoked
directly on the runtime (`functions.invoke` of the same alias), without HTTP or the gateway.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.figures import Baseline, Figure, percentile
from bench.processes import REPO, progress

TARGET_MS = 5.0
TEMPLATE = REPO / "service" / "template.yaml"
_WARM_UP = 10


class _Invocations:
    """Log sink keeping the runtime's invocation and gateway request records, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.durations: list[float] = []
        self.gateway_ms: list[float] = []

    def __call__(self, record: dict[str, Any]) -> None:
        with self.lock:
            if record.get("type") == "invocation":
                self.durations.append(float(record["duration_ms"]))
            elif record.get("type") == "request":
                self.gateway_ms.append(float(record["ms"]))

    def pair(self, invocation: int, request: int) -> tuple[float, float]:
        """The Duration of invocation number `invocation` and the gateway time of request `request`."""
        deadline = time.monotonic() + 5
        while True:  # the gateway logs its request line just after it has answered
            with self.lock:
                if len(self.gateway_ms) > request:
                    return self.durations[invocation], self.gateway_ms[request]
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway logged no request record")
            time.sleep(0.001)


def _signed_headers(url: str, credentials: Credentials, region: str) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url, headers={"Accept": "application/json"})
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def _round_trip(connection: http.client.HTTPConnection, base_url: str, credentials: Credentials) -> float:
    path = f"/orders/{uuid.uuid4()}"
    headers = _signed_headers(f"{base_url}{path}", credentials, "us-east-1")
    started = time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 404:
        raise RuntimeError(f"GET {path} answered {response.status}, expected 404")
    return elapsed


def measure_gateway(runs: int, requests_per_run: int = 40) -> list[Figure]:
    from rehearsal.runtime.environment import start_environment  # noqa: PLC0415 - heavy, this figure only

    sink = _Invocations()
    figure = Figure(name="gateway overhead p50 (warm)", unit="ms", target=TARGET_MS)
    progress("gateway: starting the local environment")
    environment = start_environment(template_path=Path(TEMPLATE), environment="local", log_sink=sink)
    try:
        base_url = environment.base_url
        credentials = Credentials("test", "test")
        host, port = base_url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        captured: list[tuple[str, Any]] = []
        invoke = environment.gateway.invoke

        def capture(function: str, event: Any) -> Any:
            captured.append((function, event))
            return invoke(function, event)

        environment.gateway.invoke = capture  # once, to replay the gateway's own event directly
        for _ in range(_WARM_UP):
            _round_trip(connection, base_url, credentials)
        environment.gateway.invoke = invoke
        function, event = captured[-1]
        overheads: list[float] = []
        trips: list[float] = []
        direct: list[float] = []
        server_side: list[float] = []
        for round_number in range(1, runs + 1):
            progress(f"gateway: batch {round_number}/{runs} of {requests_per_run} requests")
            batch: list[float] = []
            for _ in range(requests_per_run):
                with sink.lock:
                    seen, seen_requests = len(sink.durations), len(sink.gateway_ms)
                trip = _round_trip(connection, base_url, credentials)
                started = time.perf_counter()
                environment.functions.invoke(function, event)
                direct.append((time.perf_counter() - started) * 1000)
                duration, gateway_ms = sink.pair(seen, seen_requests)
                server_side.append(gateway_ms - duration)
                trips.append(trip)
                batch.append(trip - duration)
            overheads.extend(batch)
            figure.runs.append(statistics.median(batch))
        connection.close()
    finally:
        progress("gateway: stopping the local environment")
        environment.stop()
    direct_median = statistics.median(direct)
    figure.baseline = Baseline("direct functions.invoke of the same alias", direct_median)
    figure.ratio = statistics.median(trips) / direct_median
    figure.note = (
        f"{len(overheads)} requests: overhead p50 {percentile(overheads, 0.5):.2f}, "
        f"p90 {percentile(overheads, 0.9):.2f} ms; round trip p50 {statistics.median(trips):.2f} ms; "
        f"server-side only p50 {statistics.median(server_side):.2f} ms; "
        f"round trip minus direct invoke p50 {statistics.median(trips) - direct_median:.2f} ms"
    )
    return [figure]
