"""The order service over HTTP, as a client sees it: run against the local runtime or staging.

Each test's `aws_wait` is its worst-case wait on AWS, summed from REQUEST_TIMEOUT_SECONDS (10 s a
request), POLL_SECONDS (30 s, plus the request in flight when the deadline passes) and
CLIENT_CALL_SECONDS (30 s an SDK call); see conftest.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.integration.conftest import (
    CLIENT_CALL_SECONDS,
    POLL_SECONDS,
    REQUEST_TIMEOUT_SECONDS,
    Target,
)

GOOD_ORDER = {
    "customerId": "c-1",
    "currency": "EUR",
    "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": 9.99}],
}
REQUEST = REQUEST_TIMEOUT_SECONDS
# A poll ends at its deadline plus the request still in flight then.
POLL = POLL_SECONDS + REQUEST_TIMEOUT_SECONDS


def _poll(condition: Callable[[], Any], timeout: float = POLL_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout}s")


def _final_status(target: Target, order_id: str) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        order: dict[str, Any] = target.request("GET", f"/orders/{order_id}").json()
        return order if order.get("status") in ("ACCEPTED", "REJECTED") else None

    result: dict[str, Any] = _poll(final)
    return result


@pytest.mark.aws_wait(seconds=REQUEST + POLL)  # 50 s: submit, then poll the status
def test_a_submitted_order_is_accepted(target: Target) -> None:
    response = target.request("POST", "/orders", body=GOOD_ORDER)
    assert response.status_code == 202
    assert response.json()["status"] == "PENDING"
    assert _final_status(target, response.json()["orderId"])["status"] == "ACCEPTED"


@pytest.mark.aws_wait(seconds=REQUEST + POLL)  # 50 s: submit, then poll the status
def test_an_order_with_an_unknown_sku_is_rejected_with_the_reason(target: Target) -> None:
    order = {**GOOD_ORDER, "items": [{"sku": "UNKNOWN-SKU", "quantity": 1, "unitPrice": 1}]}
    order_id = target.request("POST", "/orders", body=order).json()["orderId"]
    final = _final_status(target, order_id)
    assert final["status"] == "REJECTED"
    assert "unknown SKU: UNKNOWN-SKU" in final["reason"]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        {},
        {**GOOD_ORDER, "items": []},
        {**GOOD_ORDER, "currency": "euro"},
        {**GOOD_ORDER, "items": [{"sku": "SKU-1", "quantity": 0, "unitPrice": 1}]},
        {**GOOD_ORDER, "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": -1}]},
        {**GOOD_ORDER, "extra": True},
    ],
)
@pytest.mark.aws_wait(seconds=REQUEST + CLIENT_CALL_SECONDS)  # 40 s: one request, one table scan
def test_bad_input_is_a_4xx_and_nothing_is_written(target: Target, body: Any) -> None:
    customer = f"bad-{uuid.uuid4().hex[:12]}"
    if isinstance(body, dict) and "customerId" in body:
        body = {**body, "customerId": customer}
    response = target.request("POST", "/orders", body=body)
    assert 400 <= response.status_code < 500
    table = target.outputs.get("OrdersTableName")
    if table:
        scan = target.client("dynamodb").scan(
            TableName=table,
            FilterExpression="customerId = :c",
            ExpressionAttributeValues={":c": {"S": customer}},
        )
        assert scan["Items"] == []


@pytest.mark.smoke
@pytest.mark.aws_wait(seconds=REQUEST)  # 10 s: one request
def test_an_unknown_order_is_404(target: Target) -> None:
    assert target.request("GET", f"/orders/{uuid.uuid4()}").status_code == 404


@pytest.mark.smoke
@pytest.mark.aws_wait(seconds=REQUEST)  # 10 s: one request
def test_an_unsigned_request_is_refused(target: Target) -> None:
    response = requests.post(f"{target.base_url}/orders", json=GOOD_ORDER, timeout=REQUEST)
    assert response.status_code == 403


@pytest.mark.aws_wait(seconds=2 * REQUEST)  # 20 s: two requests
def test_resubmitting_with_the_same_idempotency_key_returns_the_same_order(target: Target) -> None:
    key = f"key-{uuid.uuid4().hex}"
    first = target.request("POST", "/orders", body=GOOD_ORDER, headers={"Idempotency-Key": key})
    second = target.request("POST", "/orders", body=GOOD_ORDER, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 202
    assert first.json()["orderId"] == second.json()["orderId"]
    assert second.headers.get("Idempotent-Replayed") == "true"


@pytest.mark.aws_wait(seconds=3 * REQUEST + POLL)  # 70 s: submit, presign, upload, poll the order
def test_a_presigned_upload_is_recorded_as_an_attachment(target: Target) -> None:
    order_id = target.request("POST", "/orders", body=GOOD_ORDER).json()["orderId"]
    presign = target.request(
        "POST",
        f"/orders/{order_id}/attachments",
        body={"fileName": "invoice.pdf", "contentType": "application/pdf"},
    )
    assert presign.status_code == 201
    upload = presign.json()
    posted = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("invoice.pdf", b"%PDF-1.4 test")},
        timeout=REQUEST,
    )
    assert posted.status_code in (200, 201, 204)

    def recorded() -> list[dict[str, Any]]:
        attachments: list[dict[str, Any]] = (
            target.request("GET", f"/orders/{order_id}").json().get("attachments", [])
        )
        return attachments

    attachments = _poll(recorded)
    assert any("invoice.pdf" in str(attachment) for attachment in attachments)


# On AWS the redrive takes maxReceiveCount (5) x the visibility timeout (180 s), about 15 minutes:
# far over the 2-minute budget, so this end-to-end check runs only against the local runtime, whose
# clock is compressed. What AWS-side it rests on is checked without waiting: the worker reports a
# poison record as a batch item failure (tests/unit/test_worker.py), and the queue's redrive policy
# and visibility timeout are asserted on the transformed template (tests/infra).
@pytest.mark.offline_only
def test_a_poison_message_ends_in_the_dead_letter_queue(target: Target) -> None:
    queue = target.outputs.get("OrdersQueueUrl")
    dead_letters = target.outputs.get("OrdersDeadLetterQueueUrl")
    assert queue, "the local environment has no OrdersQueueUrl output"
    assert dead_letters, "the local environment has no OrdersDeadLetterQueueUrl output"
    sqs = target.client("sqs")
    marker = f"poison-{uuid.uuid4().hex}"
    sqs.send_message(QueueUrl=queue, MessageBody=marker)

    def in_dead_letters() -> bool:
        messages = sqs.receive_message(
            QueueUrl=dead_letters, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        return any(message["Body"] == marker for message in messages)

    assert _poll(in_dead_letters, timeout=60)
