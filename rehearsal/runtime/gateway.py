"""The local API Gateway: HTTP on 127.0.0.1 that turns requests into REST API proxy events.

Routes, authorization, request validators and models come from the RestApi's OpenAPI body in
the transformed template (what API Gateway imports), read by `rehearsal.runtime.routes`. Answers
mirror API Gateway's: an unknown path or method is 403 "Missing Authentication Token", a bad
signature 403, a failed validation 400, a function error or malformed proxy response 502, a
function timeout 504. The API's stage is served at the root (`http://127.0.0.1:3000/orders`);
events still carry the stage name in `requestContext.stage` and the stage-prefixed
`requestContext.path`, as on AWS.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from rehearsal.alarms.metrics import MetricStore
from rehearsal.base.aws import ACCOUNT_ID
from rehearsal.base.errors import UserError
from rehearsal.cloud.descriptions import RestApi
from rehearsal.runtime.invocation import InvocationResult
from rehearsal.runtime.routes import ErrorAnswer, Route, routes_from_api, validate_request
from rehearsal.runtime.serving import LoopbackServer
from rehearsal.runtime.sigv4 import SignatureError, presented_access_key, verify_request

Invoke = Callable[[str, Any], InvocationResult]
LogSink = Callable[[dict[str, Any]], None]


@dataclass
class Credentials:
    access_key: str
    secret_key: str
    region: str


@dataclass
class Gateway:
    """Serves every route of the given APIs on one loopback port (0: any free port)."""

    apis: list[RestApi]
    invoke: Invoke
    credentials: Credentials
    metrics: MetricStore
    port: int = 3000
    account_id: str = ACCOUNT_ID
    log_sink: LogSink = field(default=lambda _record: None)
    # Secrets of the role sessions the runtime gave functions: a function may sign its API calls.
    session_secrets: Callable[[str], str | None] = field(default=lambda _key: None)
    routes: list[Route] = field(init=False, default_factory=list)
    problems: list[str] = field(init=False, default_factory=list)
    _server: LoopbackServer | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.reload(self.apis)

    def reload(self, apis: list[RestApi]) -> None:
        """Serve `apis` from the next request on: the route table is swapped whole, as a new stage
        deployment replaces what API Gateway serves, and requests in flight finish on the old one."""
        routes: list[Route] = []
        problems: list[str] = []
        for api in apis:
            found, unserved = routes_from_api(api)
            routes.extend(found)
            problems.extend(unserved)
        self.apis, self.routes, self.problems = list(apis), routes, problems

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Bind and serve in a background thread; a port in use is a `UserError`."""
        gateway = self

        class Handler(_RequestHandler):
            pass

        Handler.gateway = gateway
        try:
            self._server = LoopbackServer(Handler, port=self.port, name="gateway")
        except OSError as error:
            raise UserError(
                f"port {self.port} is in use ({error.strerror}): stop it or pick another with PORT=",
            ) from error
        self.port = self._server.port

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:  # one read of the table: a reload swaps it, never edits it
            found = route.pattern.match(path)
            if found and route.method in (method, "ANY"):
                return route, found.groupdict()
        return None


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave in separate writes: no 40 ms delayed-ACK stall
    gateway: Gateway

    def log_message(self, format: str, *args: Any) -> None:  # the base class's name
        """Access lines go to the structured log sink instead of stderr."""

    def do_GET(self) -> None:  # http.server's naming
        self.handle_request()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def handle_request(self) -> None:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        route_api = None
        local_init_ms = 0.0
        try:
            matched = self.gateway.match(self.command, split.path)
            if matched is None:
                raise ErrorAnswer(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
            route, path_parameters = matched
            route_api = route.api
            identity = self._authorize(route, body)
            query = parse_qsl(split.query, keep_blank_values=True)
            validate_request(route, query, self.headers, path_parameters, body)
            event = self._event(
                route,
                path=split.path,
                query=query,
                path_parameters=path_parameters,
                body=body,
                request_id=request_id,
                identity=identity,
            )
            result = self.gateway.invoke(route.function, event)
            local_init_ms = result.init_ms or 0.0
            status, headers, payload = _proxy_response(result)
        except ErrorAnswer as answer:
            status, payload = answer.status, json.dumps({"message": str(answer)}).encode()
            headers = {"Content-Type": "application/json", "x-amzn-ErrorType": answer.error_type}
        self._reply(status, headers, payload, request_id)
        latency = (time.perf_counter() - started) * 1000
        if route_api is not None:
            # A local cold start (a new Python process importing boto3 and Powertools on a shared
            # machine) takes seconds where Lambda takes ~100 ms: the Latency metric leaves it out,
            # so that the p99 latency alarm judges the service, not this machine.
            self._record(route_api, status, latency - local_init_ms)
        self.gateway.log_sink(
            {
                "type": "request",
                "method": self.command,
                "path": split.path,
                "status": status,
                "ms": round(latency, 2),
            }
        )

    def _signer_credentials(self) -> Credentials:
        """The rehearsal's own credentials, or those of the function session the request names."""
        configured = self.gateway.credentials
        presented = presented_access_key(dict(self.headers.items()))
        secret = self.gateway.session_secrets(presented) if presented else None
        if presented is None or presented == configured.access_key or secret is None:
            return configured
        return Credentials(presented, secret, configured.region)

    def _authorize(self, route: Route, body: bytes) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "sourceIp": self.client_address[0],
            "userAgent": self.headers.get("User-Agent"),
        }
        if not route.iam:
            return identity
        credentials = self._signer_credentials()
        try:
            caller = verify_request(
                method=self.command,
                url=f"http://{self.headers.get('Host', '127.0.0.1')}{self.path}",
                headers=dict(self.headers.items()),
                body=body,
                access_key=credentials.access_key,
                secret_key=credentials.secret_key,
                region=credentials.region,
            )
        except SignatureError as error:
            error_type = (
                "MissingAuthenticationTokenException"
                if "Missing" in str(error)
                else "InvalidSignatureException"
            )
            raise ErrorAnswer(403, str(error), error_type) from error
        account = self.gateway.account_id
        identity.update(
            {
                "accessKey": caller.access_key,
                "accountId": account,
                "caller": caller.access_key,
                "user": caller.access_key,
                "userArn": f"arn:aws:iam::{account}:user/rehearsal",
            }
        )
        return identity

    def _event(
        self,
        route: Route,
        *,
        path: str,
        query: list[tuple[str, str]],
        path_parameters: dict[str, str],
        body: bytes,
        request_id: str,
        identity: dict[str, Any],
    ) -> dict[str, Any]:
        # Over 50 lines, by design: one literal with every field of a REST API proxy event, in the
        # order API Gateway documents them, reads better than the same fields spread over helpers.
        multi_headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            multi_headers.setdefault(name, []).append(value)
        multi_query: dict[str, list[str]] = {}
        for name, value in query:
            multi_query.setdefault(name, []).append(value)
        try:
            text, encoded = (body.decode("utf-8"), False) if body else (None, False)
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        now = datetime.now(UTC)
        stage = route.api.stage
        return {
            "resource": route.resource,
            "path": path,
            "httpMethod": self.command,
            "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": route.resource,
                "resourcePath": route.resource,
                "httpMethod": self.command,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "path": f"/{stage}{path}",
                "accountId": self.gateway.account_id,
                "protocol": self.request_version,
                "stage": stage,
                "domainPrefix": "127",
                "domainName": self.headers.get("Host", "127.0.0.1"),
                "requestId": request_id,
                "apiId": route.api.logical_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "cognitoIdentityId": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "principalOrgId": None,
                    "accessKey": None,
                    "accountId": None,
                    "caller": None,
                    "user": None,
                    "userArn": None,
                    **identity,
                },
            },
            "body": text,
            "isBase64Encoded": encoded,
        }

    def _reply(self, status: int, headers: dict[str, str], payload: bytes, request_id: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _record(self, api: RestApi, status: int, latency: float) -> None:
        metrics = self.gateway.metrics
        now = time.time()
        for dims in ({"ApiName": api.name}, {"ApiName": api.name, "Stage": api.stage}):
            metrics.put("AWS/ApiGateway", "Count", dims, 1, unit="Count", timestamp=now)
            metrics.put(
                "AWS/ApiGateway", "4XXError", dims, int(400 <= status < 500), unit="Count", timestamp=now
            )
            metrics.put("AWS/ApiGateway", "5XXError", dims, int(status >= 500), unit="Count", timestamp=now)
            metrics.put("AWS/ApiGateway", "Latency", dims, latency, unit="Milliseconds", timestamp=now)


def _proxy_response(result: InvocationResult) -> tuple[int, dict[str, str], bytes]:
    """Map a Lambda proxy result to (status, headers, body) as API Gateway does."""
    if result.timed_out:
        raise ErrorAnswer(504, "Endpoint request timed out", "IntegrationTimeout")
    if result.throttled:
        raise ErrorAnswer(429, "Too Many Requests", "ThrottlingException")
    payload = result.payload
    if result.failed or not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
        raise ErrorAnswer(502, "Internal server error", "InternalServerErrorException")
    headers = {str(key): str(value) for key, value in (payload.get("headers") or {}).items()}
    for key, values in (payload.get("multiValueHeaders") or {}).items():
        headers[str(key)] = ", ".join(str(value) for value in values)
    headers.setdefault("Content-Type", "application/json")
    body = payload.get("body") or ""
    if not isinstance(body, str):
        raise ErrorAnswer(502, "Internal server error", "InternalServerErrorException")
    data = base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()
    return payload["statusCode"], headers, data
