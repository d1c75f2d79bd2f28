"""Submitting an order: store it PENDING, enqueue it, and honour the Idempotency-Key.

How the key works: the key is claimed with a conditional put in the *idempotency table*
(item id `submit#<key>`, with the order id and a SHA-256 of the canonical body), in the
same DynamoDB transaction that writes the PENDING order. So a key is claimed if and only
if its order exists. The idempotency table is used rather than the orders table so that
claims expire with its TTL (`expiration`, 24 h) and never show up as orders.
A retry with the same key and body returns the first order; if the first attempt's send failed
(`enqueued` still false), the retry tries the send again. Either way the outbox sweeper
(`logic/outbox.py`) sends every order left unsent, with or without a key.
A different body under the same key is a 409 that names no order. Keys are per caller
(`claim_key`), and a claim past its expiry is free even before TTL deletes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from orders.logic.ports import OrderQueue, OrderRepository, Submission, SubmissionExistsError
from orders.models.errors import IdempotencyConflictError
from orders.models.message import encode_order_message
from orders.models.order import Order, OrderRequest, OrderStatus


@dataclass(frozen=True, kw_only=True)
class SubmitResult:
    """The order, and whether this request created it (False for a replay)."""

    order: Order
    created: bool
    # False when the send failed: the order is stored and the outbox sweeper sends it.
    sent: bool = True


def body_hash(request: OrderRequest) -> str:
    """A hash of the request that ignores key order, whitespace and trailing zeros (9.99 = 9.990)."""
    canonical = json.dumps(
        request.to_dict(), sort_keys=True, default=_canonical_number, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical_number(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value.normalize())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def claim_key(*, caller: str, key: str) -> str:
    """An Idempotency-Key is the caller's own: two callers' equal keys are two claims.

    The caller (the IAM principal API Gateway authenticated) is hashed to keep the item key short.
    """
    return f"{hashlib.sha256(caller.encode()).hexdigest()[:32]}#{key}"


def submit_order(
    *,
    request: OrderRequest,
    idempotency_key: str | None,
    caller: str,
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
        key = claim_key(caller=caller, key=idempotency_key)
        submission = Submission(key=key, order_id=order.order_id, body_hash=digest)
    try:
        repository.create_order(order=order, submission=submission)
    except SubmissionExistsError as claimed:
        return _replay(key=claimed.key, digest=digest, repository=repository, queue=queue)
    sent = _enqueue(order=order, repository=repository, queue=queue)
    return SubmitResult(order=order, created=True, sent=sent)


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
            errors=["header.Idempotency-Key: already used for another request body"],
        )
    sent = order.enqueued or _enqueue(order=order, repository=repository, queue=queue)
    return SubmitResult(order=order, created=False, sent=sent)


def _enqueue(*, order: Order, repository: OrderRepository, queue: OrderQueue) -> bool:
    """Send the order's message; False when the send failed and the outbox sweeper will send it.

    The order is stored before the send and marked unsent until `mark_enqueued`: whatever fails
    here (the queue, the network, this process), `logic/outbox.py` sends it later, so the 202 the
    client gets still means the order will be decided (docs/decisions/0023-idempotency-and-outbox.md).
    """
    try:
        send_order(order=order, queue=queue)
    except Exception:  # the outbox owns the retry: the order is stored and marked unsent
        return False
    clear_outbox_mark(order_id=order.order_id, repository=repository)
    return True


def clear_outbox_mark(*, order_id: str, repository: OrderRepository) -> None:
    """Clear the mark of an order whose message was sent; a failure here changes nothing that matters.

    The message is on its way, so the request succeeded: a mark left set (the write failed after
    the SDK's retries) only makes the sweeper send the message again, which the worker absorbs.
    Failing the request instead would make a client without an Idempotency-Key create a second order.
    """
    with contextlib.suppress(Exception):
        repository.mark_enqueued(order_id=order_id)


def send_order(*, order: Order, queue: OrderQueue) -> None:
    """Send the one message that makes the worker decide this order."""
    queue.send(
        order_id=order.order_id, body=encode_order_message(order_id=order.order_id, request=order.request)
    )
