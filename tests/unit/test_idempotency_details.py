"""Idempotency-Key details: expiry before TTL deletion, equal prices, keys per caller, what a
cancelled transaction means, and no stub items. The DynamoDB adapter runs on moto."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from orders.dal.orders_table import DynamoOrderRepository
from orders.handlers import submit
from orders.logic.ports import Submission, SubmissionExistsError
from orders.models.order import Order, OrderItem, OrderRequest, OrderStatus
from tests.unit.conftest import api_event, order_body

ORDER_ID = "55555555-5555-4555-8555-555555555555"
OTHER_ID = "66666666-6666-4666-8666-666666666666"
ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"


def _order(order_id: str = ORDER_ID) -> Order:
    item = OrderItem(sku="SKU-1", quantity=1, unit_price=Decimal("1.10"))
    request = OrderRequest(customer_id="c", items=(item,), currency="EUR")
    return Order(order_id=order_id, request=request, status=OrderStatus.PENDING, created_at="t")


@pytest.fixture
def table(aws: None) -> DynamoOrderRepository:
    return DynamoOrderRepository(orders_table="orders", idempotency_table="idempotency")


def _submit(body: str, *, key: str, caller: str, context: Any) -> tuple[int, dict[str, Any]]:
    event = api_event(
        method="POST",
        path="/orders",
        resource="/orders",
        body=body,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    event["requestContext"]["identity"] = {"userArn": caller, "caller": caller.rsplit("/", 1)[-1]}
    response = submit.handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_an_expired_claim_not_yet_deleted_by_ttl_frees_its_key(
    table: DynamoOrderRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    table.create_order(order=_order(), submission=Submission(key="k", order_id=ORDER_ID, body_hash="h"))
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)  # long past the 24 h expiry
    claim = Submission(key="k", order_id=OTHER_ID, body_hash="h2")
    table.create_order(order=_order(OTHER_ID), submission=claim)
    assert table.find_submission(key="k") == claim


def test_a_price_with_trailing_zeros_replays_the_same_order(aws: None, lambda_context: Any) -> None:
    first = json.dumps(order_body()).replace("9.99", "9.99")
    second = json.dumps(order_body()).replace("9.99", "9.990")
    code_1, body_1 = _submit(first, key="k-1", caller=ALICE, context=lambda_context)
    code_2, body_2 = _submit(second, key="k-1", caller=ALICE, context=lambda_context)
    assert (code_1, code_2) == (202, 202)
    assert body_1["orderId"] == body_2["orderId"]


def test_equal_keys_of_two_callers_are_two_orders(aws: None, lambda_context: Any) -> None:
    code_1, body_1 = _submit(json.dumps(order_body()), key="k-1", caller=ALICE, context=lambda_context)
    code_2, body_2 = _submit(
        json.dumps(order_body(currency="USD")), key="k-1", caller=BOB, context=lambda_context
    )
    assert (code_1, code_2) == (202, 202)
    assert body_1["orderId"] != body_2["orderId"]


def test_a_conflict_does_not_reveal_the_order_id_of_the_first_request(aws: None, lambda_context: Any) -> None:
    _, first = _submit(json.dumps(order_body()), key="k-1", caller=ALICE, context=lambda_context)
    code, body = _submit(
        json.dumps(order_body(currency="USD")), key="k-1", caller=ALICE, context=lambda_context
    )
    assert code == 409
    assert first["orderId"] not in json.dumps(body)


def test_a_throttled_transaction_is_an_error_not_a_replay(aws: None) -> None:
    client = boto3.client("dynamodb")
    table = DynamoOrderRepository(orders_table="orders", idempotency_table="idempotency", client=client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            service_message="Transaction cancelled",
            response_meta={},
            modeled_fields={
                "CancellationReasons": [{"Code": "ThrottlingError"}, {"Code": "None"}],
            },
        )
        with pytest.raises(client.exceptions.TransactionCanceledException):
            table.create_order(
                order=_order(), submission=Submission(key="k", order_id=ORDER_ID, body_hash="h")
            )


def test_marking_a_missing_order_enqueued_creates_no_item(table: DynamoOrderRepository) -> None:
    table.mark_enqueued(order_id=ORDER_ID)
    assert boto3.client("dynamodb").scan(TableName="orders")["Items"] == []


def test_a_claim_condition_named_only_in_the_message_still_means_already_claimed(aws: None) -> None:
    client = boto3.client("dynamodb")
    table = DynamoOrderRepository(orders_table="orders", idempotency_table="idempotency", client=client)
    message = "Transaction cancelled, please refer cancellation reasons for specific reasons "
    message += "[ConditionalCheckFailed, None]"
    with Stubber(client) as stub:
        stub.add_client_error(
            "transact_write_items", service_error_code="TransactionCanceledException", service_message=message
        )
        with pytest.raises(SubmissionExistsError):
            table.create_order(
                order=_order(), submission=Submission(key="k", order_id=ORDER_ID, body_hash="h")
            )
