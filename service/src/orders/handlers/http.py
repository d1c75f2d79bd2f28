"""HTTP for the API functions: the resolver, JSON responses, and the one error-to-status map.

Only client mistakes are mapped (4xx with `{"message", "errors"}`). Anything else is left
to raise: Lambda counts it as an error, which is what the canary alarms watch.

API Gateway validates a body against its model only when the request's content type has a
model (application/json here); a body of any other type reaches the function unvalidated, so
`request_body` answers 415 for it, and 400 for a base64 body that does not decode.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

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

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

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


def request_body(event: APIGatewayProxyEvent) -> str:
    """The body as text, when it is JSON by its Content-Type; 415 or 400 otherwise."""
    content_type = (event.headers.get("Content-Type") or JSON_CONTENT_TYPE).split(";")[0].strip().lower()
    if content_type != JSON_CONTENT_TYPE:
        raise UnsupportedMediaTypeError(
            "Request body must be JSON", errors=[f"header.Content-Type: must be {JSON_CONTENT_TYPE}"]
        )
    body = event.body or ""
    if not event.is_base64_encoded:
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidRequestError("Request body is not valid JSON", errors=["body: not UTF-8"]) from None


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(
    status_code: int, body: dict[str, Any], *, headers: dict[str, str] | None = None
) -> Response[str]:
    """A JSON response; Decimals become JSON numbers."""
    return Response(
        status_code=status_code,
        content_type="application/json",
        body=json.dumps(body, default=_json_default),
        headers=headers,
    )


def error_response(error: OrdersError) -> Response[str]:
    """The response for a client mistake."""
    status_code = STATUS_CODES[type(error)]
    logger.info("Request refused", status_code=status_code, reason=error.message, errors=error.errors)
    return json_response(status_code, {"message": error.message, "errors": error.errors})


def build_resolver() -> APIGatewayRestResolver:
    """A REST API resolver whose client errors and unknown routes answer JSON."""
    app = APIGatewayRestResolver()
    for error_type in STATUS_CODES:
        app.exception_handler(error_type)(error_response)

    @app.not_found
    def _route_not_found(_: Exception) -> Response[str]:
        return json_response(404, {"message": "No such route", "errors": []})

    return app
