"""The boto3 adapters on moto (in-process); the Lambda and CodeDeploy adapters with botocore's Stubber."""

from __future__ import annotations

import base64
import io
import json
import time
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from orders.dal import clients
from orders.dal.deployment import CodeDeployHookReporter, LambdaInvoker
from orders.dal.orders_table import DynamoOrderRepository
from orders.dal.queue import SqsOrderQueue
from orders.dal.storage import S3AttachmentStorage
from orders.logic.ports import Submission, SubmissionExistsError, WriteOutcome
from orders.models.errors import ConfigurationError
from orders.models.order import Attachment, Order, OrderItem, OrderRequest, OrderStatus
from orders.settings import get_settings

ORDER_ID = "55555555-5555-4555-8555-555555555555"


def _order(order_id: str = ORDER_ID) -> Order:
    item = OrderItem(sku="SKU-1", quantity=3, unit_price=Decimal("1.10"))
    request = OrderRequest(customer_id="c", items=(item,), currency="EUR")
    return Order(order_id=order_id, request=request, status=OrderStatus.PENDING, created_at="t")


@pytest.fixture
def table(aws: None) -> DynamoOrderRepository:
    return DynamoOrderRepository(orders_table="orders", idempotency_table="idempotency")


def test_a_stored_order_reads_back_unchanged(table: DynamoOrderRepository) -> None:
    table.create_order(order=_order(), submission=None)
    assert table.get_order(order_id=ORDER_ID) == _order()


def test_a_claimed_key_cannot_be_claimed_again_and_is_found(table: DynamoOrderRepository) -> None:
    claim = Submission(key="k", order_id=ORDER_ID, body_hash="h")
    table.create_order(order=_order(), submission=claim)
    with pytest.raises(SubmissionExistsError):
        table.create_order(order=_order("66666666-6666-4666-8666-666666666666"), submission=claim)
    assert table.find_submission(key="k") == claim
    assert table.get_order(order_id="66666666-6666-4666-8666-666666666666") is None


def test_an_expired_claim_is_not_found(table: DynamoOrderRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    table.create_order(order=_order(), submission=Submission(key="k", order_id=ORDER_ID, body_hash="h"))
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)
    assert table.find_submission(key="k") is None


def test_an_unclaimed_key_is_not_found(table: DynamoOrderRepository) -> None:
    assert table.find_submission(key="never") is None


def test_an_order_is_marked_enqueued(table: DynamoOrderRepository) -> None:
    table.create_order(order=_order(), submission=None)
    table.mark_enqueued(order_id=ORDER_ID)
    stored = table.get_order(order_id=ORDER_ID)
    assert stored is not None and stored.enqueued


def test_only_a_pending_order_is_finalized(table: DynamoOrderRepository) -> None:
    table.create_order(order=_order(), submission=None)
    first = table.finalize_order(order_id=ORDER_ID, status=OrderStatus.REJECTED, reason="unknown SKU: X")
    second = table.finalize_order(order_id=ORDER_ID, status=OrderStatus.ACCEPTED, reason=None)
    stored = table.get_order(order_id=ORDER_ID)
    assert (first, second) == (WriteOutcome.WRITTEN, WriteOutcome.ALREADY_DONE)
    assert stored is not None and (stored.status, stored.reason) == (OrderStatus.REJECTED, "unknown SKU: X")


def test_finalizing_a_missing_order_says_so(table: DynamoOrderRepository) -> None:
    outcome = table.finalize_order(order_id=ORDER_ID, status=OrderStatus.ACCEPTED, reason=None)
    assert outcome is WriteOutcome.ORDER_MISSING


def test_an_attachment_is_appended_once_per_key(table: DynamoOrderRepository) -> None:
    table.create_order(order=_order(), submission=None)
    attachment = Attachment(key="orders/x/attachments/y/a.pdf", size=10, content_type=None)
    outcomes = [table.add_attachment(order_id=ORDER_ID, attachment=attachment, limit=50) for _ in range(2)]
    stored = table.get_order(order_id=ORDER_ID)
    assert outcomes == [WriteOutcome.WRITTEN, WriteOutcome.ALREADY_DONE]
    assert stored is not None and stored.attachments == (attachment,)


def test_a_sent_message_arrives_on_the_queue(aws: None) -> None:
    url = get_settings().require("orders_queue_url")
    SqsOrderQueue(queue_url=url).send(order_id=ORDER_ID, body='{"orderId": "x"}')
    messages = boto3.client("sqs").receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert messages[0]["MessageAttributes"]["orderId"]["StringValue"] == ORDER_ID


def test_the_presigned_policy_pins_key_content_type_size_and_a_short_expiry(aws: None) -> None:
    """moto does not enforce POST policy conditions (a larger upload is accepted), so this
    test decodes the signed policy and asserts the conditions S3 itself would enforce."""
    post = S3AttachmentStorage(bucket="attachments").presign_upload(
        key="orders/a/attachments/b/c.pdf",
        content_type="application/pdf",
        max_bytes=5 * 1024 * 1024,
        expires_in=300,
    )
    policy = json.loads(base64.b64decode(post["fields"]["policy"]))
    assert {"Content-Type": "application/pdf"} in policy["conditions"]
    assert ["content-length-range", 1, 5 * 1024 * 1024] in policy["conditions"]
    assert {"key": "orders/a/attachments/b/c.pdf"} in policy["conditions"]
    assert post["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    expires = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 0 < expires - time.time() <= 300


def test_a_missing_setting_names_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_QUEUE_URL")
    with pytest.raises(ConfigurationError, match="ORDERS_QUEUE_URL is not set"):
        get_settings().require("orders_queue_url")


@pytest.mark.parametrize("raw", ["abc", "-5", "Infinity"])
def test_an_invalid_max_order_total_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("MAX_ORDER_TOTAL", raw)
    with pytest.raises(ConfigurationError, match="MAX_ORDER_TOTAL"):
        get_settings()


def test_max_order_total_defaults_to_ten_thousand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAX_ORDER_TOTAL")
    assert get_settings().max_order_total == Decimal(10_000)


def _stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service)  # type: ignore[call-overload]
    return client, Stubber(client)


@pytest.mark.parametrize(
    ("raw", "payload"), [(b'{"statusCode": 404}', {"statusCode": 404}), (b"oops", "oops")]
)
def test_the_invoker_decodes_the_payload_and_keeps_the_function_error(raw: bytes, payload: Any) -> None:
    client, stubber = _stubbed("lambda")
    body = StreamingBody(io.BytesIO(raw), len(raw))
    stubber.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": body})
    with stubber:
        result = LambdaInvoker(client=client).invoke(
            function_arn="arn:aws:lambda:eu-west-1:1:function:f:1", event={}
        )
    assert (result.function_error, result.payload) == ("Unhandled", payload)


@pytest.mark.parametrize(("succeeded", "status"), [(True, "Succeeded"), (False, "Failed")])
def test_the_reporter_tells_codedeploy_the_hook_status(succeeded: bool, status: str) -> None:
    client, stubber = _stubbed("codedeploy")
    expected = {"deploymentId": "d", "lifecycleEventHookExecutionId": "e", "status": status}
    stubber.add_response("put_lifecycle_event_hook_execution_status", {}, expected)
    with stubber:
        CodeDeployHookReporter(client=client).report(deployment_id="d", execution_id="e", succeeded=succeeded)
    stubber.assert_no_pending_responses()


def test_every_client_is_created_once_per_process(aws: None) -> None:
    for factory in (clients.dynamodb, clients.sqs, clients.s3, clients.lambda_, clients.codedeploy):
        assert factory() is factory()


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1", "af-south-1"])
def test_a_presigned_post_targets_the_buckets_regional_endpoint(
    monkeypatch: pytest.MonkeyPatch, region: str
) -> None:
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    post = S3AttachmentStorage(bucket="attachments").presign_upload(
        key="orders/x", content_type="application/pdf", max_bytes=10, expires_in=60
    )
    assert post["url"] == f"https://attachments.s3.{region}.amazonaws.com/"


def test_an_endpoint_set_in_the_environment_wins_over_the_regional_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert clients.regional_s3_endpoint("eu-west-1") is None
    post = S3AttachmentStorage(bucket="attachments").presign_upload(
        key="orders/x", content_type="application/pdf", max_bytes=10, expires_in=60
    )
    assert post["url"].startswith("http://127.0.0.1:4566/")


def test_an_order_at_its_attachment_limit_takes_no_more(table: DynamoOrderRepository) -> None:
    table.create_order(order=_order(), submission=None)
    first, second = (Attachment(key=f"orders/{name}.pdf", size=1, content_type=None) for name in ("a", "b"))
    assert table.add_attachment(order_id=ORDER_ID, attachment=first, limit=1) is WriteOutcome.WRITTEN
    assert table.add_attachment(order_id=ORDER_ID, attachment=second, limit=1) is WriteOutcome.LIMIT_REACHED
    assert table.add_attachment(order_id=ORDER_ID, attachment=first, limit=1) is WriteOutcome.ALREADY_DONE
