"""HTTP for the API functions: the request, JSON responses, and the one error-to-status map.

Each API function serves exactly one route of the template, so no router is needed: `serve`
checks the route, reads the request and maps the service's errors to 4xx. This replaces
Powertools' event handler, whose package import (every resolver, asyncio for AppSync) cost the
API functions ~40-80 ms of cold start here (docs/decisions/0022-bad-input-is-4xx.md).

Only client mistakes are mapped (4xx with `{"message", "errors"}`). Anything else is left
to raise: Lambda counts it as an error, which is what the canary alarms watch.

API Gateway validates a body against its model only when the request's content type has a
model (application/json here); a body of any other type reaches the function unvalidated, so
`Request.json_body` answers 415 for it, and 400 for a base64 body that does not decode.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orders.models.errors import (
    AttachmentLimitError,
    IdempotencyConflictError,
    InvalidRequestError,
    OrderNotFoundError,
    OrdersError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from orders.observability import logger

STATUS_CODES: dict[type[OrdersError], int] = {
    InvalidRequestError: 400,
    OrderNotFoundError: 404,
    IdempotencyConflictError: 409,
    AttachmentLimitError: 409,
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
}
# The one content type with a model in the template; a missing Content-Type is read as JSON too.
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, kw_only=True)
class Route:
    """The method and resource (template path, e.g. `/orders/{orderId}`) a function serves."""

    method: str
    resource: str


@dataclass(frozen=True, kw_only=True)
class Request:
    """The parts of a REST API proxy event the handlers read; header names are lower case."""

    path_parameters: Mapping[str, str]
    headers: Mapping[str, str]
    body: str
    is_base64_encoded: bool
    caller: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        """Read a REST API (v1) proxy event as API Gateway sends it."""
        identity = (event.get("requestContext") or {}).get("identity") or {}
        return cls(
            path_parameters=dict(event.get("pathParameters") or {}),
            headers={str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()},
            body=str(event.get("body") or ""),
            is_base64_encoded=bool(event.get("isBase64Encoded")),
            # The IAM principal API Gateway authenticated (AWS_IAM authorization).
            caller=str(identity.get("userArn") or identity.get("caller") or ""),
            raw=event,
        )

    def header(self, name: str) -> str | None:
        """A header's value, whatever the case of its name."""
        return self.headers.get(name.lower())

    def json_body(self) -> str:
        """The body as text, when it is JSON by its Content-Type; 415 or 400 otherwise."""
        content_type = (self.header("Content-Type") or JSON_CONTENT_TYPE).split(";")[0].strip().lower()
        if content_type != JSON_CONTENT_TYPE:
            raise UnsupportedMediaTypeError(
                "Request body must be JSON", errors=[f"header.Content-Type: must be {JSON_CONTENT_TYPE}"]
            )
        if not self.is_base64_encoded:
            return self.body
        try:
            return base64.b64decode(self.body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidRequestError("Request body is not valid JSON", errors=["body: not UTF-8"]) from None


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(
    status_code: int, body: dict[str, Any], *, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Lambda proxy response with a JSON body; Decimals become JSON numbers."""
    all_headers = {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}
    return {
        "statusCode": status_code,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "body": json.dumps(body, default=_json_default),
        "isBase64Encoded": False,
    }


def error_response(error: OrdersError) -> dict[str, Any]:
    """The response for a client mistake."""
    status_code = STATUS_CODES[type(error)]
    logger.info("Request refused", status_code=status_code, reason=error.message, errors=error.errors)
    return json_response(status_code, {"message": error.message, "errors": error.errors})


def serve(
    event: Mapping[str, Any], route: Route, handle: Callable[[Request], dict[str, Any]]
) -> dict[str, Any]:
    """Answer one request for `route`: 404 JSON for any other route, 4xx for client mistakes."""
    if event.get("httpMethod") != route.method or event.get("resource") != route.resource:
        return json_response(404, {"message": "No such route", "errors": []})
    try:
        return handle(Request.from_event(event))
    except OrdersError as error:
        if type(error) not in STATUS_CODES:
            raise
        return error_response(error)
