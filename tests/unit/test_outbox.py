"""No accepted order is left undecided: when the queue send fails after the order is written, the
client still gets 202 and the outbox sweeper sends the order; the worker then decides it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from orders.handlers import deps, submit, sweeper, worker
from orders.logic.outbox import resend_unsent_orders
from orders.logic.submit import submit_order
from orders.models.validation import parse_order_request
from orders.settings import get_settings
from tests.unit.conftest import order_body, submit_event
from tests.unit.fakes import FakeQueue, FakeRepository


class _FailingQueue:
    """The orders queue while SQS is unreachable."""

    def send(self, *, order_id: str, body: str) -> None:
        raise ConnectionError("Could not connect to the endpoint URL")


def _later(monkeypatch: pytest.MonkeyPatch, minutes: int) -> None:
    """Move the sweeper's clock forward (the grace period keeps it off in-flight requests)."""
    real = sweeper.datetime

    class _Clock(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real.now(tz) + timedelta(minutes=minutes)

    monkeypatch.setattr(sweeper, "datetime", _Clock)


def _queue_messages() -> list[dict[str, Any]]:
    url = get_settings().orders_queue_url
    messages: list[dict[str, Any]] = (
        boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    )
    return messages


def test_a_failed_send_still_answers_202_and_leaves_the_order_marked_unsent(
    aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    monkeypatch.setattr(deps, "order_queue", _FailingQueue)
    response = submit.handler(submit_event(order_body()), lambda_context)
    assert response["statusCode"] == 202
    order_id = json.loads(response["body"])["orderId"]
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="milliseconds")
    unsent = deps.order_repository().unsent_orders(created_before=later, limit=10)
    assert [order.order_id for order in unsent] == [order_id]


def test_the_sweeper_sends_an_order_whose_send_failed_and_the_worker_decides_it(
    aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    with monkeypatch.context() as broken:
        broken.setattr(deps, "order_queue", _FailingQueue)
        order_id = json.loads(submit.handler(submit_event(order_body()), lambda_context)["body"])["orderId"]
    assert _queue_messages() == []
    _later(monkeypatch, minutes=2)
    assert sweeper.handler({}, lambda_context) == {"resent": 1, "failed": 0}
    messages = _queue_messages()
    records = [{"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"} for m in messages]
    assert worker.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}
    order = deps.order_repository().get_order(order_id=order_id)
    assert order is not None and order.status.value == "ACCEPTED" and order.enqueued
    assert sweeper.handler({}, lambda_context) == {"resent": 0, "failed": 0}


def test_the_sweeper_leaves_orders_younger_than_its_grace_period(
    aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    with monkeypatch.context() as broken:
        broken.setattr(deps, "order_queue", _FailingQueue)
        submit.handler(submit_event(order_body()), lambda_context)
    assert sweeper.handler({}, lambda_context) == {"resent": 0, "failed": 0}
    assert _queue_messages() == []


def test_a_sweep_that_cannot_send_raises_so_its_errors_alarm_fires(
    aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    monkeypatch.setattr(deps, "order_queue", _FailingQueue)
    submit.handler(submit_event(order_body()), lambda_context)
    _later(monkeypatch, minutes=2)
    with pytest.raises(sweeper.UnsentOrdersError):
        sweeper.handler({}, lambda_context)


def test_a_sent_order_leaves_the_outbox(aws: None, lambda_context: Any) -> None:
    submit.handler(submit_event(order_body()), lambda_context)
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="milliseconds")
    assert deps.order_repository().unsent_orders(created_before=later, limit=10) == []
    items = boto3.client("dynamodb").scan(TableName="orders")["Items"]
    assert all("unsentShard" not in item for item in items)


def test_resending_stops_at_the_limit_oldest_first(repository: FakeRepository) -> None:
    request = parse_order_request(json.dumps(order_body()))
    for minute in (3, 1, 2):
        submit_order(
            request=request,
            idempotency_key=None,
            caller="",
            repository=repository,
            queue=_FailingQueue(),
            new_order_id=lambda minute=minute: f"order-{minute}",
            now=lambda minute=minute: f"2026-01-01T00:0{minute}:00.000+00:00",
        )
    queue = FakeQueue()
    result = resend_unsent_orders(repository=repository, queue=queue, created_before="2027", limit=2)
    assert (result.resent, [order_id for order_id, _ in queue.sent]) == (2, ["order-1", "order-2"])
