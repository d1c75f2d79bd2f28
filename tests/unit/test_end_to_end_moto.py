"""A whole order through the real adapters on moto: submit, worker, status, presign, attach."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from orders.handlers import attach, deps, http, presign, status, submit, worker
from orders.logic.attachments import content_type_for
from orders.logic.submit import submit_order
from orders.models.errors import IdempotencyConflictError
from orders.models.validation import parse_order_request
from orders.settings import get_settings
from tests.unit.conftest import api_event, order_body, submit_event
from tests.unit.fakes import FakeQueue, FakeRepository


def _deliver_queue(context: Any) -> dict[str, Any]:
    messages = boto3.client("sqs").receive_message(
        QueueUrl=get_settings().orders_queue_url, MaxNumberOfMessages=10
    )
    records = [
        {
            "messageId": m["MessageId"],
            "body": m["Body"],
            "receiptHandle": m["ReceiptHandle"],
            "attributes": {},
        }
        for m in messages.get("Messages", [])
    ]
    result: dict[str, Any] = worker.handler({"Records": records}, context)
    return result


def _get(order_id: str, context: Any) -> dict[str, Any]:
    event = api_event(
        method="GET",
        path=f"/orders/{order_id}",
        resource="/orders/{orderId}",
        path_parameters={"orderId": order_id},
    )
    body: dict[str, Any] = json.loads(status.handler(event, context)["body"])
    return body


def test_an_order_with_an_unknown_sku_ends_rejected_with_its_reason(aws: None, lambda_context: Any) -> None:
    items = [{"sku": "UNKNOWN-SKU", "quantity": 1, "unitPrice": 5}]
    order_id = json.loads(
        submit.handler(submit_event(order_body(items=items), key="k-1"), lambda_context)["body"]
    )["orderId"]
    assert _get(order_id, lambda_context)["status"] == "PENDING"
    assert _deliver_queue(lambda_context) == {"batchItemFailures": []}
    assert (_get(order_id, lambda_context)["status"], _get(order_id, lambda_context)["reason"]) == (
        "REJECTED",
        "unknown SKU: UNKNOWN-SKU",
    )


def test_a_replayed_key_enqueues_nothing_new_on_the_real_queue(aws: None, lambda_context: Any) -> None:
    for _ in range(2):
        submit.handler(submit_event(order_body(), key="k-2"), lambda_context)
    messages = boto3.client("sqs").receive_message(
        QueueUrl=get_settings().orders_queue_url, MaxNumberOfMessages=10
    )
    assert len(messages["Messages"]) == 1


def test_an_uploaded_attachment_shows_on_the_order(aws: None, lambda_context: Any) -> None:
    order_id = json.loads(submit.handler(submit_event(order_body()), lambda_context)["body"])["orderId"]
    event = api_event(
        method="POST",
        path=f"/orders/{order_id}/attachments",
        resource="/orders/{orderId}/attachments",
        body=json.dumps({"fileName": "photo.png", "contentType": "image/png"}),
        path_parameters={"orderId": order_id},
    )
    key = json.loads(presign.handler(event, lambda_context)["body"])["key"]
    # The bucket notifies a queue, as the template wires it; the function reads that queue.
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    queue_url = sqs.create_queue(QueueName="attachments")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket="attachments",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    s3.put_object(Bucket="attachments", Key=key, Body=b"\x89PNG", ContentType="image/png")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    records = [{"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"} for m in messages]
    assert attach.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}
    assert _get(order_id, lambda_context)["attachments"] == [
        {"key": key, "size": 4, "contentType": "image/png"}
    ]


def test_the_pre_traffic_adapters_are_built_lazily_once() -> None:
    assert deps.function_invoker() is deps.function_invoker()
    assert deps.hook_reporter() is deps.hook_reporter()


def test_a_claim_without_its_order_is_a_retryable_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    repository, queue = FakeRepository(), FakeQueue()
    arguments: dict[str, Any] = {
        "request": parse_order_request(json.dumps(order_body())),
        "idempotency_key": "k",
        "caller": "arn:aws:iam::123456789012:user/alice",
        "repository": repository,
        "queue": queue,
        "new_order_id": lambda: "id-1",
        "now": lambda: "t",
    }
    submit_order(**arguments)
    repository.orders.clear()
    with pytest.raises(IdempotencyConflictError, match="retry"):
        submit_order(**arguments)


def test_a_file_name_without_a_known_extension_has_no_content_type() -> None:
    assert content_type_for("notes.txt") is None


def test_json_responses_refuse_values_that_are_not_json() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        http.json_response(200, {"bad": {1}})
