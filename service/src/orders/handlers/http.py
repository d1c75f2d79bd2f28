"""HTTP for the API functions: the resolver, JSON responses, and the one error-to-status map.

Only client mistakes are mapped (4xx with `{"message", "errors"}`). Anything else is left
to raise: Lambda counts it as an error, which is what the canary alarms watch.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from orders.models.errors import (
    IdempotencyConflictError,
    InvalidRequestError,
    OrderNotFoundError,
    OrdersError,
    PayloadTooLargeError,
)
from orders.observability import logger

STATUS_CODES: dict[type[OrdersError], int] = {
    InvalidRequestError: 400,
    OrderNotFoundError: 404,
    IdempotencyConflictError: 409,
    PayloadTooLargeError: 413,
}


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
