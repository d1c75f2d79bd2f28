"""Every handler fed the events `sam local generate-event` produces (tests/unit/events/), with the
encodings AWS uses: base64 API bodies without a Content-Type, URL-encoded S3 keys (`+` for a space,
`%2B` for a plus, `%2F` for a slash), S3 notifications inside SQS messages."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orders.handlers import attach, presign, status, submit, sweeper, worker
from orders.models.message import encode_order_message
from orders.models.order import Order, OrderItem, OrderRequest, OrderStatus
from tests.unit.fakes import FakeQueue, FakeRepository, FakeStorage

EVENTS = Path(__file__).parent / "events"
ORDER_ID = "22222222-2222-4222-8222-222222222222"
PREFIX = f"orders/{ORDER_ID}/attachments/33333333-3333-4333-8333-333333333333/"


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def _sqs(body: str) -> dict[str, Any]:
    event = _event("sqs-receive-message")
    event["Records"][0]["body"] = body
    return event


def _s3_put(key: str | None = None, bucket: str = "attachments") -> dict[str, Any]:
    notification = copy.deepcopy(_event("s3-put"))
    record = notification["Records"][0]["s3"]
    record["bucket"]["name"] = bucket
    if key is not None:
        record["object"]["key"] = key
    return notification


@pytest.fixture
def stored(repository: FakeRepository) -> FakeRepository:
    request = OrderRequest(
        customer_id="c", items=(OrderItem(sku="SKU-1", quantity=1, unit_price=Decimal(1)),), currency="EUR"
    )
    repository.orders[ORDER_ID] = Order(
        order_id=ORDER_ID, request=request, status=OrderStatus.PENDING, created_at="t", enqueued=True
    )
    return repository


def test_a_base64_post_without_content_type_as_api_gateway_sends_it_is_accepted(
    repository: FakeRepository, queue: FakeQueue, lambda_context: Any
) -> None:
    event = _event("apigateway-post-orders")
    assert event["isBase64Encoded"] and "Content-Type" not in event["headers"]
    response = submit.handler(event, lambda_context)
    assert response["statusCode"] == 202, response
    assert len(queue.sent) == 1


def test_the_generated_post_with_a_form_content_type_gets_415(
    repository: FakeRepository, queue: FakeQueue, lambda_context: Any
) -> None:
    event = _event("apigateway-post-orders")
    event["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
    assert submit.handler(event, lambda_context)["statusCode"] == 415
    assert queue.sent == []


def test_a_generated_get_reaches_the_status_route(stored: FakeRepository, lambda_context: Any) -> None:
    event = _event("apigateway-get-order")
    # SAM's template is a {proxy+} route; for /orders/{orderId} API Gateway names the parameter.
    event["path"] = f"/orders/{ORDER_ID}"
    event["pathParameters"] = {"orderId": ORDER_ID}
    response = status.handler(event, lambda_context)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["orderId"] == ORDER_ID


def test_the_generated_s3_put_in_an_sqs_message_is_recorded_with_its_key_decoded(
    stored: FakeRepository, lambda_context: Any
) -> None:
    # SAM encodes the space as %20 and the plus as %2B.
    assert attach.handler(_sqs(json.dumps(_s3_put())), lambda_context) == {"batchItemFailures": []}
    (attachment,) = stored.orders[ORDER_ID].attachments
    assert attachment.key == PREFIX + "my invoice+v2.pdf"


def test_a_key_with_a_plus_for_a_space_as_s3_sends_it_is_decoded(
    stored: FakeRepository, lambda_context: Any
) -> None:
    notification = _s3_put(key=PREFIX + "my+invoice%2Bv2.pdf")
    attach.handler(_sqs(json.dumps(notification)), lambda_context)
    (attachment,) = stored.orders[ORDER_ID].attachments
    assert attachment.key == PREFIX + "my invoice+v2.pdf"


def test_an_encoded_slash_in_a_file_name_puts_the_key_outside_the_layout(
    stored: FakeRepository, lambda_context: Any
) -> None:
    notification = _s3_put(key=PREFIX + "a%2Fb.pdf")
    assert attach.handler(_sqs(json.dumps(notification)), lambda_context) == {"batchItemFailures": []}
    assert stored.orders[ORDER_ID].attachments == ()


def test_the_generated_s3_put_of_another_bucket_is_skipped(
    stored: FakeRepository, lambda_context: Any
) -> None:
    notification = _s3_put(bucket="example-bucket")
    assert attach.handler(_sqs(json.dumps(notification)), lambda_context) == {"batchItemFailures": []}
    assert stored.orders[ORDER_ID].attachments == ()


def test_the_generated_sqs_message_carrying_an_order_is_decided(
    aws: None, stored: FakeRepository, lambda_context: Any
) -> None:
    body = encode_order_message(order_id=ORDER_ID, request=stored.orders[ORDER_ID].request)
    assert worker.handler(_sqs(body), lambda_context) == {"batchItemFailures": []}
    assert stored.orders[ORDER_ID].status is OrderStatus.ACCEPTED


def test_the_generated_attachment_post_with_a_base64_body_gets_a_presigned_form(
    stored: FakeRepository, storage: FakeStorage, lambda_context: Any
) -> None:
    event = _event("apigateway-post-attachments")
    assert event["isBase64Encoded"] and "Content-Type" not in event["headers"]
    # SAM's template is a {proxy+} route; for /orders/{orderId}/attachments API Gateway names the parameter.
    event["pathParameters"] = {"orderId": ORDER_ID}
    response = presign.handler(event, lambda_context)
    assert response["statusCode"] == 201, response
    (call,) = storage.calls
    assert (
        call["key"].startswith(f"orders/{ORDER_ID}/attachments/")
        and call["content_type"] == "application/pdf"
    )


def test_the_generated_scheduled_event_runs_a_sweep_that_sends_an_unsent_order(
    repository: FakeRepository, queue: FakeQueue, lambda_context: Any
) -> None:
    request = OrderRequest(
        customer_id="c", items=(OrderItem(sku="SKU-1", quantity=1, unit_price=Decimal(1)),), currency="EUR"
    )
    repository.orders[ORDER_ID] = Order(
        order_id=ORDER_ID, request=request, status=OrderStatus.PENDING, created_at="2000-01-01T00:00:00Z"
    )
    assert sweeper.handler(_event("cloudwatch-scheduled-event"), lambda_context) == {"resent": 1, "failed": 0}
    assert [order_id for order_id, _ in queue.sent] == [ORDER_ID]
