"""The SQS worker: business rules, partial batch failures, poison messages, duplicate deliveries.

The order repository is an in-memory fake; the Powertools idempotency table is moto.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest

from orders.handlers import worker
from orders.logic.processing import decide
from orders.models.message import encode_order_message
from orders.models.order import Order, OrderItem, OrderRequest, OrderStatus
from tests.unit.conftest import UNKNOWN_ORDER_ID
from tests.unit.fakes import FakeRepository

ORDER_ID = "11111111-1111-4111-8111-111111111111"


def _request(sku: str = "SKU-1", quantity: int = 1, price: str = "9.99") -> OrderRequest:
    return OrderRequest(
        customer_id="c-1",
        items=(OrderItem(sku=sku, quantity=quantity, unit_price=Decimal(price)),),
        currency="EUR",
    )


def _store(repository: FakeRepository, order_id: str, request: OrderRequest) -> None:
    repository.orders[order_id] = Order(
        order_id=order_id, request=request, status=OrderStatus.PENDING, created_at="2026-01-01", enqueued=True
    )


def _record(body: str, message_id: str = "m-1") -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:orders",
        "awsRegion": "eu-west-1",
    }


def _message(order_id: str, request: OrderRequest) -> str:
    return encode_order_message(order_id=order_id, request=request)


@pytest.mark.parametrize(
    ("request_", "status", "reason"),
    [
        (_request(), OrderStatus.ACCEPTED, None),
        (_request(sku="UNKNOWN-SKU"), OrderStatus.REJECTED, "unknown SKU: UNKNOWN-SKU"),
        (_request(quantity=2, price="6000"), OrderStatus.REJECTED, "total 12000 exceeds limit 10000"),
    ],
)
def test_the_documented_rules_decide_accepted_or_rejected(
    request_: OrderRequest, status: OrderStatus, reason: str | None
) -> None:
    decision = decide(request=request_, max_order_total=Decimal(10_000))
    assert (decision.status, decision.reason) == (status, reason)


def test_a_batch_with_a_poison_message_reports_only_that_message(
    aws: None, repository: FakeRepository, lambda_context: Any
) -> None:
    _store(repository, ORDER_ID, _request())
    event = {"Records": [_record(_message(ORDER_ID, _request()), "good"), _record("not json", "poison")]}
    response = worker.handler(event, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "poison"}]}
    assert repository.orders[ORDER_ID].status is OrderStatus.ACCEPTED


@pytest.mark.parametrize(
    "body",
    [
        '{"orderId": "not-an-id"}',
        json.dumps({"orderId": ORDER_ID, "items": "x"}),
        json.dumps({"orderId": ORDER_ID, "customerId": "c", "currency": "EUR", "items": [{"sku": "S"}]}),
        json.dumps({"orderId": ORDER_ID, "customerId": "c", "currency": "x", "items": []}),
    ],
)
def test_a_message_that_is_not_an_order_fails_alone(
    aws: None, repository: FakeRepository, lambda_context: Any, body: str
) -> None:
    response = worker.handler({"Records": [_record(body, "poison")]}, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "poison"}]}


def test_a_message_for_an_order_that_was_never_stored_fails(
    aws: None, repository: FakeRepository, lambda_context: Any
) -> None:
    response = worker.handler(
        {"Records": [_record(_message(UNKNOWN_ORDER_ID, _request()), "m")]}, lambda_context
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m"}]}


def test_a_duplicate_delivery_is_written_once(
    aws: None, repository: FakeRepository, lambda_context: Any
) -> None:
    _store(repository, ORDER_ID, _request(sku="UNKNOWN-SKU"))
    body = _message(ORDER_ID, _request(sku="UNKNOWN-SKU"))
    first = worker.handler({"Records": [_record(body, "first")]}, lambda_context)
    second = worker.handler({"Records": [_record(body, "second")]}, lambda_context)
    assert first == second == {"batchItemFailures": []}
    assert repository.finalize_calls == 1
    assert repository.orders[ORDER_ID].reason == "unknown SKU: UNKNOWN-SKU"


def test_a_final_order_is_not_changed_by_a_late_message(repository: FakeRepository) -> None:
    _store(repository, ORDER_ID, _request())
    repository.orders[ORDER_ID] = dataclasses.replace(
        repository.orders[ORDER_ID], status=OrderStatus.REJECTED
    )
    result = worker.process_message(json.loads(_message(ORDER_ID, _request())))
    assert result["status"] == "ACCEPTED"
    assert repository.orders[ORDER_ID].status is OrderStatus.REJECTED


def test_an_empty_batch_touches_nothing(repository: FakeRepository, lambda_context: Any) -> None:
    assert worker.handler({"Records": []}, lambda_context) == {"batchItemFailures": []}
    assert repository.finalize_calls == 0


def test_accepted_orders_emit_the_orders_accepted_metric(
    aws: None, repository: FakeRepository, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(repository, ORDER_ID, _request())
    worker.handler({"Records": [_record(_message(ORDER_ID, _request()))]}, lambda_context)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [blob.get("OrdersAccepted") for blob in emf] == [[1.0]]


class _FailingRepository(FakeRepository):
    """A table the worker can no longer write to (AccessDenied, a deleted table, a bug)."""

    def finalize_order(self, *, order_id: str, status: OrderStatus, reason: str | None) -> Any:
        raise PermissionError("AccessDeniedException: not authorized to perform dynamodb:UpdateItem")


def _emf(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


def test_an_unexpected_record_failure_is_counted_for_the_executing_version(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-ProcessOrdersFunction")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")
    repository = _FailingRepository()
    monkeypatch.setattr(worker.deps, "order_repository", lambda: repository)
    _store(repository, ORDER_ID, _request())
    response = worker.handler({"Records": [_record(_message(ORDER_ID, _request()), "m")]}, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m"}]}
    (failure,) = [blob for blob in _emf(capsys) if "RecordFailures" in blob]
    assert failure["RecordFailures"] == [1.0]
    assert (failure["FunctionName"], failure["ExecutedVersion"], failure["service"]) == (
        "orders-ProcessOrdersFunction",
        "7",
        "orders",
    )
    assert failure["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "OrdersTest"


def test_poison_messages_fail_quietly_without_a_record_failure(
    aws: None, repository: FakeRepository, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    event = {
        "Records": [
            _record("not json", "a"),
            _record(_message(UNKNOWN_ORDER_ID, _request()), "b"),
            _record(json.dumps({"orderId": ORDER_ID, "items": "x"}), "c"),
        ]
    }
    response = worker.handler(event, lambda_context)
    assert len(response["batchItemFailures"]) == 3
    assert not [blob for blob in _emf(capsys) if "RecordFailures" in blob]


@pytest.mark.parametrize(
    "price",
    ["NaN", "sNaN", "Infinity", "-Infinity", "1e-200", "1.000000000000000000000000000000000000001"],
)
def test_a_message_with_a_price_no_order_can_have_is_poison(
    aws: None,
    repository: FakeRepository,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    price: str,
) -> None:
    _store(repository, ORDER_ID, _request())
    body = json.loads(_message(ORDER_ID, _request()))
    body["items"][0]["unitPrice"] = price
    response = worker.handler({"Records": [_record(json.dumps(body), "p")]}, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "p"}]}
    assert not [blob for blob in _emf(capsys) if "RecordFailures" in blob]
    assert repository.orders[ORDER_ID].status is OrderStatus.PENDING


@pytest.mark.parametrize("body", ['{"orderId": NaN}', "[" * 100_000 + "]" * 100_000])
def test_a_message_body_python_would_parse_but_json_does_not_allow_is_poison(
    aws: None, repository: FakeRepository, lambda_context: Any, capsys: pytest.CaptureFixture[str], body: str
) -> None:
    response = worker.handler({"Records": [_record(body, "p")]}, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "p"}]}
    assert not [blob for blob in _emf(capsys) if "RecordFailures" in blob]
