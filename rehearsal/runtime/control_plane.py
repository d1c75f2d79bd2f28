"""The local Lambda Invoke API and CodeDeploy's hook-status call, so a PreTraffic hook runs offline.

A hook function calls `lambda.invoke(FunctionName=<version ARN>)` and then
`codedeploy.put_lifecycle_event_hook_execution_status(...)` with boto3. Workers get
`AWS_ENDPOINT_URL_LAMBDA` and `AWS_ENDPOINT_URL_CODEDEPLOY` pointing here (boto3 honours
service-specific endpoints), so both calls reach this server. Wire protocols, as botocore speaks
them: Lambda Invoke is REST-JSON `POST /2015-03-31/functions/{FunctionName}/invocations`;
CodeDeploy is JSON 1.1 (`POST /` with `X-Amz-Target: CodeDeploy_20141006.<Operation>`). Signatures
are not checked here: only our own workers know the port.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from rehearsal.runtime.functions import FunctionNotFoundError
from rehearsal.runtime.invocation import InvocationResult
from rehearsal.runtime.serving import LoopbackServer

Invoke = Callable[..., InvocationResult]
LogSink = Callable[[dict[str, Any]], None]
_INVOKE_PATH = "/2015-03-31/functions/"
_HOOK_TARGET = "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus"


@dataclass
class HookStatus:
    deployment_id: str
    execution_id: str
    status: str


@dataclass
class ControlPlane:
    """Serves Invoke and PutLifecycleEventHookExecutionStatus on a free loopback port."""

    invoke: Invoke
    log_sink: LogSink = field(default=lambda _record: None)
    hook_statuses: dict[str, HookStatus] = field(default_factory=dict)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _server: LoopbackServer | None = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the control plane is not started")
        return f"http://127.0.0.1:{self._server.port}"

    def environ(self) -> dict[str, str]:
        """Service-specific endpoint variables for workers."""
        return {
            "AWS_ENDPOINT_URL_LAMBDA": self.endpoint_url,
            "AWS_ENDPOINT_URL_CODEDEPLOY": self.endpoint_url,
        }

    def start(self) -> None:
        plane = self

        class Handler(_ControlHandler):
            pass

        Handler.plane = plane
        self._server = LoopbackServer(Handler, port=0, name="control-plane")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def record_hook_status(self, status: HookStatus) -> None:
        with self._changed:
            self.hook_statuses[status.execution_id] = status
            self._changed.notify_all()

    def wait_for_hook(self, execution_id: str, timeout: float) -> HookStatus | None:
        """The status a hook reported for `execution_id`, waiting up to `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: execution_id in self.hook_statuses, timeout)
            return self.hook_statuses.get(execution_id)


class _ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave in separate writes: no 40 ms delayed-ACK stall
    plane: ControlPlane

    def log_message(self, format: str, *args: Any) -> None:  # the base class's name
        """Quiet: calls are reported through the log sink."""

    def do_POST(self) -> None:  # http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        if split.path.startswith(_INVOKE_PATH) and split.path.endswith("/invocations"):
            name = unquote(split.path[len(_INVOKE_PATH) : -len("/invocations")])
            qualifiers = parse_qs(split.query).get("Qualifier")
            qualifier = qualifiers[0] if qualifiers else None
            self._invoke(name, qualifier, body)
        elif self.headers.get("X-Amz-Target") == _HOOK_TARGET:
            request = json.loads(body or b"{}")
            status = HookStatus(
                deployment_id=request.get("deploymentId", ""),
                execution_id=request.get("lifecycleEventHookExecutionId", ""),
                status=request.get("status", ""),
            )
            self.plane.record_hook_status(status)
            self.plane.log_sink(
                {"type": "hook-status", "execution": status.execution_id, "status": status.status}
            )
            self._reply(
                200, {"lifecycleEventHookExecutionId": status.execution_id}, "application/x-amz-json-1.1"
            )
        else:
            self._reply(400, {"__type": "UnknownOperationException", "message": "not emulated locally"})

    def _invoke(self, name: str, qualifier: str | None, body: bytes) -> None:
        event = json.loads(body) if body else {}
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        try:
            if invocation_type == "DryRun":
                self._reply(204, None)
                return
            if invocation_type == "Event":
                threading.Thread(
                    target=self.plane.invoke, args=(name, event), kwargs={"qualifier": qualifier}
                ).start()
                self._reply(202, None)
                return
            result = self.plane.invoke(name, event, qualifier=qualifier)
        except FunctionNotFoundError as error:
            self._reply(404, {"Type": "User", "message": str(error)}, error_type="ResourceNotFoundException")
            return
        if result.throttled:
            self._reply(
                429, {"Type": "User", "message": "Rate Exceeded."}, error_type="TooManyRequestsException"
            )
            return
        headers = {"X-Amz-Executed-Version": result.executed_version}
        if result.failed:
            headers["X-Amz-Function-Error"] = "Unhandled"
        self._reply(200, result.error if result.failed else result.payload, extra=headers)

    def _reply(
        self,
        status: int,
        document: Any,
        content_type: str = "application/json",
        *,
        error_type: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        payload = b"" if status in (202, 204) else json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
