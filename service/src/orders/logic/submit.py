"""Submitting an order: store it PENDING, enqueue it, and honour the Idempotency-Key.

How the key works: the key is claimed with a conditional put in the *idempotency table*
(item id `submit#<key>`, with the order id and a SHA-256 of the canonical body), in the
same DynamoDB transaction that writes the PENDING order. So a key is claimed if and only
if its order exists. The idempotency table is used rather than the orders table so that
claims expire with its TTL (`expiration`, 24 h) and never show up as orders.
A retry with the same key and body returns the first order; if the first attempt died
between the write and the SQS send (`enqueued` still false), the retry finishes the send.
A different body under the same key is a 409.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from orders.logic.ports import OrderQueue, OrderRepository, Submission, SubmissionExistsError
from orders.models.errors import IdempotencyConflictError
from orders.models.message import encode_order_message
from orders.models.order import Order, OrderRequest, OrderStatus


@dataclass(frozen=True, kw_only=True)
class SubmitResult:
    """The order, and whether this request created it (False for a replay)."""

    order: Order
    created: bool


def body_hash(request: OrderRequest) -> str:
    """A hash of the request that ignores key order and whitespace in the client's JSON."""
    canonical = json.dumps(request.to_dict(), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit_order(
    *,
    request: OrderRequest,
    idempotency_key: str | None,
    repository: OrderRepository,
    queue: OrderQueue,
    new_order_id: Callable[[], str],
    now: Callable[[], str],
) -> SubmitResult:
    """Store the order PENDING and enqueue it, or replay the order an earlier request made."""
    digest = body_hash(request)
    order = Order(order_id=new_order_id(), request=request, status=OrderStatus.PENDING, created_at=now())
    submission = None
    if idempotency_key is not None:
        submission = Submission(key=idempotency_key, order_id=order.order_id, body_hash=digest)
    try:
        repository.create_order(order=order, submission=submission)
    except SubmissionExistsError as claimed:
        return _replay(key=claimed.key, digest=digest, repository=repository, queue=queue)
    _enqueue(order=order, repository=repository, queue=queue)
    return SubmitResult(order=order, created=True)


def _replay(*, key: str, digest: str, repository: OrderRepository, queue: OrderQueue) -> SubmitResult:
    submission = repository.find_submission(key=key)
    order = repository.get_order(order_id=submission.order_id) if submission else None
    if submission is None or order is None:
        # The claim and the order are written in one transaction, so this is only a claim that
        # expired between our write and our read: a conflict the client can safely retry.
        raise IdempotencyConflictError("Idempotency-Key is being processed: retry the request")
    if submission.body_hash != digest:
        raise IdempotencyConflictError(
            "Idempotency-Key was already used with a different request body: use a new key",
            errors=[f"header.Idempotency-Key: already used for order {submission.order_id}"],
        )
    if not order.enqueued:
        _enqueue(order=order, repository=repository, queue=queue)
    return SubmitResult(order=order, created=False)


def _enqueue(*, order: Order, repository: OrderRepository, queue: OrderQueue) -> None:
    body = encode_order_message(order_id=order.order_id, request=order.request)
    queue.send(order_id=order.order_id, body=body)
    repository.mark_enqueued(order_id=order.order_id)
