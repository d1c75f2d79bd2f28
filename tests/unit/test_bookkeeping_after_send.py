"""A failed bookkeeping write after a successful send must not undo the send's success.

Once the order is stored and its message sent, clearing the outbox mark (`mark_enqueued`) is
bookkeeping: if it fails (DynamoDB throttled past the SDK's retries), the sweeper only sends the
message again, which the worker absorbs. Answering 5xx instead makes a client without an
Idempotency-Key retry and create a second order (found by tests/service/test_no_order_lost_offline.py).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from orders.handlers import deps, submit
from orders.logic.outbox import resend_unsent_orders
from orders.models.order import Order, OrderItem, OrderRequest, OrderStatus
from tests.unit.conftest import order_body, submit_event
from tests.unit.fakes import FakeQueue, FakeRepository


class _MarkFails(FakeRepository):
    """DynamoDB refuses the update that clears the outbox mark."""

    def mark_enqueued(self, *, order_id: str) -> None:
        raise ConnectionError("ProvisionedThroughputExceededException after the SDK's retries")


def _order(number: int) -> Order:
    item = OrderItem(sku="SKU-1", quantity=1, unit_price=Decimal(1))
    request = OrderRequest(customer_id=f"c-{number}", items=(item,), currency="EUR")
    return Order(order_id=f"o-{number}", request=request, status=OrderStatus.PENDING, created_at=f"t{number}")


def test_a_sent_order_whose_mark_cannot_be_cleared_still_answers_202(
    monkeypatch: pytest.MonkeyPatch, queue: FakeQueue, lambda_context: Any
) -> None:
    repository = _MarkFails()
    monkeypatch.setattr(deps, "order_repository", lambda: repository)

    response = submit.handler(submit_event(order_body()), lambda_context)

    assert response["statusCode"] == 202, response["body"]
    assert [json.loads(response["body"])["orderId"]] == list(repository.orders)


def test_a_sweep_goes_on_past_orders_whose_marks_cannot_be_cleared() -> None:
    repository, queue = _MarkFails(), FakeQueue()
    for number in range(3):
        repository.create_order(order=_order(number), submission=None)

    result = resend_unsent_orders(repository=repository, queue=queue, created_before="u")

    assert (result.resent, result.failed) == (3, 0)
    assert [order_id for order_id, _ in queue.sent] == ["o-0", "o-1", "o-2"]
