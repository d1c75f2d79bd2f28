"""The service's own errors. `handlers/http.py` is the one place that turns them into HTTP."""

from __future__ import annotations


class OrdersError(Exception):
    """Base class: a message for people and, for bad input, the list of what was wrong."""

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class InvalidRequestError(OrdersError):
    """The client sent something we will not accept (HTTP 400)."""


class PayloadTooLargeError(OrdersError):
    """The request body is over the size limit (HTTP 413)."""


class UnsupportedMediaTypeError(OrdersError):
    """The request body is not in a content type the API takes (HTTP 415)."""


class OrderNotFoundError(OrdersError):
    """No order has this id (HTTP 404)."""


class IdempotencyConflictError(OrdersError):
    """An Idempotency-Key was reused with a different body (HTTP 409)."""


class AttachmentLimitError(OrdersError):
    """The order has as many attachments as it may hold (HTTP 409)."""


class PoisonMessageError(OrdersError):
    """A queue message that is not an order; raising it sends the message towards the DLQ."""


class ConfigurationError(OrdersError):
    """The function's environment is incomplete: a deployment mistake, not a client one."""
