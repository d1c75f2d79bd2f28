"""Attachments: a presigned S3 POST for the client, and recording the upload on its order.

Uploads land at ``orders/{orderId}/attachments/{attachmentId}/{fileName}`` (the contract in
docs/architecture.md). The presigned policy pins that key, the declared content type and a
maximum size, so what the attach function later records is what the policy allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from orders.logic.ports import AttachmentStorage, OrderRepository, WriteOutcome
from orders.models import schema
from orders.models.errors import AttachmentLimitError, OrderNotFoundError
from orders.models.order import Attachment, AttachmentRequest

UPLOAD_EXPIRES_IN_SECONDS = 300
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
# Each recorded attachment costs the order item ~0.6 KB (the entry and its key in attachmentKeys);
# 50 keep an order far below DynamoDB's 400 KB item limit (docs/decisions/0024-*.md).
MAX_ATTACHMENTS_PER_ORDER = 50

_KEY_PATTERN = re.compile(
    r"orders/(?P<order_id>[0-9a-f-]{36})/attachments/(?P<attachment_id>[0-9a-f-]{36})/(?P<file_name>[^/]+)"
)


def attachment_key(*, order_id: str, attachment_id: str, file_name: str) -> str:
    """Where an upload lands."""
    return f"orders/{order_id}/attachments/{attachment_id}/{file_name}"


def presign_attachment(
    *,
    order_id: str,
    request: AttachmentRequest,
    repository: OrderRepository,
    storage: AttachmentStorage,
    new_attachment_id: Callable[[], str],
) -> dict[str, Any]:
    """The `201` body: presigned `url` and `fields`, the `key` and `expiresIn`; 404 for no order."""
    order = repository.get_order(order_id=order_id)
    if order is None:
        raise OrderNotFoundError(f"Order {order_id} does not exist")
    if len(order.attachments) >= MAX_ATTACHMENTS_PER_ORDER:
        raise AttachmentLimitError(
            f"Order {order_id} has {MAX_ATTACHMENTS_PER_ORDER} attachments, the most it may hold",
            errors=[f"path.orderId: at most {MAX_ATTACHMENTS_PER_ORDER} attachments per order"],
        )
    key = attachment_key(order_id=order_id, attachment_id=new_attachment_id(), file_name=request.file_name)
    post = storage.presign_upload(
        key=key,
        content_type=request.content_type,
        max_bytes=MAX_ATTACHMENT_BYTES,
        expires_in=UPLOAD_EXPIRES_IN_SECONDS,
    )
    return {"url": post["url"], "fields": post["fields"], "key": key, "expiresIn": UPLOAD_EXPIRES_IN_SECONDS}


@dataclass(frozen=True, kw_only=True)
class UploadedObject:
    """An object an S3 event says was created; `key` is still URL-encoded as S3 sends it."""

    key: str
    size: int


def content_type_for(file_name: str) -> str | None:
    """The content type the presigned policy enforced for this file name's extension."""
    lowered = file_name.lower()
    for content_type, extensions in schema.ATTACHMENT_CONTENT_TYPES.items():
        if lowered.endswith(extensions):
            return content_type
    return None


def record_attachment(*, upload: UploadedObject, repository: OrderRepository) -> WriteOutcome | None:
    """Record the upload on its order, once per key; None for a key outside the layout."""
    key = unquote_plus(upload.key)
    match = _KEY_PATTERN.fullmatch(key)
    if match is None or not re.fullmatch(schema.ORDER_ID_PATTERN, match["order_id"]):
        return None
    attachment = Attachment(key=key, size=upload.size, content_type=content_type_for(match["file_name"]))
    return repository.add_attachment(
        order_id=match["order_id"], attachment=attachment, limit=MAX_ATTACHMENTS_PER_ORDER
    )
