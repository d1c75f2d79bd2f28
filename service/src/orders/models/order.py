"""The order as the service stores and returns it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class OrderStatus(enum.StrEnum):
    """PENDING until the worker decides; ACCEPTED and REJECTED are final."""

    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, kw_only=True)
class OrderItem:
    """One line of an order. Prices are Decimal: floats are not money."""

    sku: str
    quantity: int
    unit_price: Decimal

    def to_dict(self) -> dict[str, Any]:
        """The wire and storage shape (camelCase, as in the API)."""
        return {"sku": self.sku, "quantity": self.quantity, "unitPrice": self.unit_price}


@dataclass(frozen=True, kw_only=True)
class OrderRequest:
    """A validated `POST /orders` body."""

    customer_id: str
    items: tuple[OrderItem, ...]
    currency: str

    @property
    def total(self) -> Decimal:
        """Sum of quantity x unit price over all items."""
        return sum((item.unit_price * item.quantity for item in self.items), Decimal(0))

    def to_dict(self) -> dict[str, Any]:
        """The wire and storage shape (camelCase, as in the API)."""
        return {
            "customerId": self.customer_id,
            "items": [item.to_dict() for item in self.items],
            "currency": self.currency,
        }


@dataclass(frozen=True, kw_only=True)
class Order:
    """A stored order with its status; `reason` says why an order was REJECTED."""

    order_id: str
    request: OrderRequest
    status: OrderStatus
    created_at: str
    reason: str | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    # False between the DynamoDB write and the SQS send: a retry with the same
    # Idempotency-Key then finishes the send instead of leaving the order PENDING forever.
    enqueued: bool = False

    def to_response(self) -> dict[str, Any]:
        """The `GET /orders/{orderId}` body."""
        body: dict[str, Any] = {
            "orderId": self.order_id,
            "status": self.status.value,
            "createdAt": self.created_at,
            **self.request.to_dict(),
            "total": self.request.total,
            "attachments": [attachment.to_dict() for attachment in self.attachments],
        }
        if self.reason is not None:
            body["reason"] = self.reason
        return body


@dataclass(frozen=True, kw_only=True)
class AttachmentRequest:
    """A validated `POST /orders/{orderId}/attachments` body."""

    file_name: str
    content_type: str


@dataclass(frozen=True, kw_only=True)
class Attachment:
    """An uploaded file recorded on its order; `content_type` is None when unknown."""

    key: str
    size: int
    content_type: str | None

    def to_dict(self) -> dict[str, Any]:
        """The storage and response shape."""
        return {"key": self.key, "size": self.size, "contentType": self.content_type}
