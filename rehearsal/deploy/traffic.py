"""Traffic during a deployment: CodeDeploy's shifting schedules, and synthetic requests that feed the alarms.

`traffic_steps()` turns a CodeDeploy Lambda deployment configuration into the weights the new
version gets over (pipeline) minutes. `TrafficDriver` sends SigV4-signed requests through the
local API gateway while a canary or a bake is watched, so that every function of the service runs
(the worker through the queue, the attachment recorder through an S3 upload) and alarms that
treat missing data as OK have data to judge.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any, TextIO

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from rehearsal.base.errors import UserError
from rehearsal.runtime.environment import LocalEnvironment

_CANARY = re.compile(r"^(?:CodeDeployDefault\.Lambda)?Canary(\d+)Percent(\d+)Minutes?$")
_LINEAR = re.compile(r"^(?:CodeDeployDefault\.Lambda)?Linear(\d+)PercentEvery(\d+)Minutes?$")
_ALL_AT_ONCE = re.compile(r"^(?:CodeDeployDefault\.Lambda)?AllAtOnce$")
# What the driver sends: a valid order (submit, then the worker through the queue), a read of it and
# of an unknown order (status), an attachment request (presign) and, now and then, its upload (attach).
SAMPLE_ORDER = {
    "customerId": "rehearsal-traffic",
    "currency": "EUR",
    "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": 9.99}],
}
_UPLOAD_EVERY = 5


def traffic_steps(config_name: str) -> list[tuple[float, float]]:
    """`(minute, weight of the new version)` from the start of the shift; the last weight is 1.0."""
    if _ALL_AT_ONCE.match(config_name):
        return [(0.0, 1.0)]
    canary = _CANARY.match(config_name)
    if canary:
        percent, minutes = int(canary.group(1)), float(canary.group(2))
        return [(0.0, percent / 100), (minutes, 1.0)]
    linear = _LINEAR.match(config_name)
    if linear:
        percent, every = int(linear.group(1)), float(linear.group(2))
        steps: list[tuple[float, float]] = []
        weight, minute = percent, 0.0
        while weight < 100:  # percent
            steps.append((minute, weight / 100))
            weight += percent
            minute += every
        steps.append((minute, 1.0))
        return steps
    raise UserError(
        f"deployment configuration {config_name!r} is not emulated: use a Canary, Linear or AllAtOnce one"
    )


def weight_at(steps: list[tuple[float, float]], minute: float) -> float:
    """The new version's weight `minute` pipeline minutes into the shift."""
    weight = 0.0
    for start, value in steps:
        if minute >= start:
            weight = value
    return weight


class TrafficDriver:
    """Sends signed requests to `base_url` from a few threads until stopped; counts answers by class."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        region: str,
        *,
        clients: int = 2,
        pause: float = 0.01,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.region = region
        self.pause = pause
        self.on_error = on_error or (lambda _message: None)
        self.stopping = threading.Event()
        self.answers: dict[str, int] = {}
        self.requests = 0
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"rehearsal-traffic-{index}", daemon=True)
            for index in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)

    def _run(self) -> None:
        iteration = 0
        while not self.stopping.is_set():
            iteration += 1
            try:
                self.round(upload=iteration % _UPLOAD_EVERY == 1)
            except (OSError, ValueError) as error:  # the gateway restarting, a malformed answer
                self.on_error(f"synthetic traffic: {error}")
            self.stopping.wait(self.pause)

    def round(self, *, upload: bool) -> None:
        """One round of requests: every route of the service, once."""
        status, body = self.send("POST", "/orders", SAMPLE_ORDER)
        order_id = body.get("orderId") if status == 202 and isinstance(body, dict) else None
        self.send("GET", f"/orders/{uuid.uuid4()}")
        if not order_id:
            return
        self.send("GET", f"/orders/{order_id}")
        status, body = self.send(
            "POST",
            f"/orders/{order_id}/attachments",
            {"fileName": "invoice.pdf", "contentType": "application/pdf"},
        )
        if upload and status == 201 and isinstance(body, dict) and "url" in body:
            self.upload(body)

    def send(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        data = None if payload is None else json.dumps(payload)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        signed = AWSRequest(method=method, url=f"{self.base_url}{path}", data=data, headers=headers)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(signed)
        request = urllib.request.Request(  # the local gateway's http URL
            str(signed.url),
            data=None if data is None else data.encode(),
            headers=dict(signed.headers.items()),
            method=method,
        )
        return self._open(request)

    def upload(self, upload: dict[str, Any]) -> None:
        """A presigned POST to the local cloud's S3, as a browser would send it."""
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in (upload.get("fields") or {}).items()
        ]
        body = (
            "".join(parts).encode()
            + (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="invoice.pdf"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + b"%PDF-1.4 rehearsal\r\n"
            + f"--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(  # the local cloud's http URL
            str(upload["url"]),
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            method="POST",
        )
        self._open(request)

    def _open(self, request: urllib.request.Request) -> tuple[int, Any]:
        try:
            # Loopback URLs built above from the gateway's and local cloud's addresses (B310).
            with urllib.request.urlopen(request, timeout=30) as response:  # nosec B310
                status, raw = int(response.status), response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        kind = f"{status // 100}xx"
        with self._lock:
            self.requests += 1
            self.answers[kind] = self.answers.get(kind, 0) + 1
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, None

    def describe(self) -> str:
        counts = ", ".join(f"{count} {kind}" for kind, count in sorted(self.answers.items()))
        return f"{self.requests} synthetic requests ({counts or 'none answered'})"


def start_traffic(local: LocalEnvironment, log: TextIO) -> TrafficDriver:
    """Synthetic traffic through `local`'s gateway while a shift or bake is watched; logs the first error."""
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
