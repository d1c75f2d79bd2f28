"""The API handlers with in-memory fakes: status codes, bodies, idempotent submit, no writes on errors."""

from __future__ import annotations

import json
from typing import Any

from orders.handlers import presign, status, submit
from orders.logic.submit import submit_order
from orders.models.validation import parse_order_request
from tests.unit.conftest import UNKNOWN_ORDER_ID, api_event, order_body, submit_event
from tests.unit.fakes import FakeQueue, FakeRepository, FakeStorage


def _call(module: Any, event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any]]:
    response = module.handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def _status_event(order_id: str) -> dict[str, Any]:
    return api_event(
        method="GET",
        path=f"/orders/{order_id}",
        resource="/orders/{orderId}",
        path_parameters={"orderId": order_id},
    )


def _presign_event(order_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return api_event(
        method="POST",
        path=f"/orders/{order_id}/attachments",
        resource="/orders/{orderId}/attachments",
        body=json.dumps(body),
        path_parameters={"orderId": order_id},
    )


def test_a_valid_order_is_accepted_with_202_stored_pending_and_enqueued(
    repository: FakeRepository, queue: FakeQueue, lambda_context: Any
) -> None:
    code, body = _call(submit, submit_event(order_body()), lambda_context)
    assert (code, body["status"]) == (202, "PENDING")
    assert repository.orders[body["orderId"]].enqueued
    assert [order_id for order_id, _ in queue.sent] == [body["orderId"]]


def test_an_invalid_order_gets_400_with_errors_and_writes_nothing(
    repository: FakeRepository, queue: FakeQueue, lambda_context: Any
) -> None:
    code, body = _call(submit, submit_event(order_body(items=[])), lambda_context)
    assert code == 400
    assert body["errors"] == ["body.items: must have at least 1 items"]
    assert (repository.orders, queue.sent) == ({}, [])


def test_an_oversized_order_gets_413(
    repository: FakeRepository, queue: FakeQueue, lambda_context: Any
) -> None:
    code, body = _call(submit, submit_event("x" * 20_000), lambda_context)
    assert (code, body["message"]) == (413, "Request body is too large")


def test_the_same_key_and_body_return_the_same_order_and_enqueue_once(
    repository: FakeRepository, queue: FakeQueue, lambda_context: Any
) -> None:
    first = submit.handler(submit_event(order_body(), key="key-1"), lambda_context)
    second = submit.handler(submit_event(order_body(), key="key-1"), lambda_context)
    assert json.loads(first["body"]) == json.loads(second["body"])
    assert second["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert len(queue.sent) == 1


def test_the_same_key_with_a_different_body_gets_409(
    repository: FakeRepository, queue: FakeQueue, lambda_context: Any
) -> None:
    submit.handler(submit_event(order_body(), key="key-1"), lambda_context)
    code, body = _call(submit, submit_event(order_body(currency="USD"), key="key-1"), lambda_context)
    assert code == 409
    assert "different request body" in body["message"]
    assert len(queue.sent) == 1


def test_a_retry_after_a_failed_send_finishes_the_send(repository: FakeRepository, queue: FakeQueue) -> None:
    request = parse_order_request(json.dumps(order_body()))
    queue.fail_next = True
    arguments: dict[str, Any] = {
        "request": request,
        "idempotency_key": "key-1",
        "caller": "arn:aws:iam::123456789012:user/alice",
        "repository": repository,
        "queue": queue,
        "new_order_id": lambda: UNKNOWN_ORDER_ID,
        "now": lambda: "2026-01-01T00:00:00.000+00:00",
    }
    first = submit_order(**arguments)
    assert (first.created, first.sent, queue.sent) == (True, False, [])
    result = submit_order(**arguments)
    assert (result.created, [order_id for order_id, _ in queue.sent]) == (False, [UNKNOWN_ORDER_ID])


def test_a_stored_order_is_returned_with_its_status(
    repository: FakeRepository, queue: FakeQueue, lambda_context: Any
) -> None:
    _, submitted = _call(submit, submit_event(order_body()), lambda_context)
    code, body = _call(status, _status_event(submitted["orderId"]), lambda_context)
    assert (code, body["status"], body["total"], body["items"][0]["unitPrice"]) == (
        200,
        "PENDING",
        19.98,
        9.99,
    )


def test_an_unknown_order_id_gets_404(repository: FakeRepository, lambda_context: Any) -> None:
    code, body = _call(status, _status_event(UNKNOWN_ORDER_ID), lambda_context)
    assert (code, body["message"]) == (404, f"Order {UNKNOWN_ORDER_ID} does not exist")


def test_a_malformed_order_id_gets_400(repository: FakeRepository, lambda_context: Any) -> None:
    code, _ = _call(status, _status_event("nope"), lambda_context)
    assert code == 400


def test_an_unknown_route_gets_a_json_404(repository: FakeRepository, lambda_context: Any) -> None:
    code, body = _call(
        status, api_event(method="GET", path="/elsewhere", resource="/elsewhere"), lambda_context
    )
    assert (code, body["errors"]) == (404, [])


def test_an_attachment_for_an_existing_order_gets_201_with_a_presigned_post_at_the_contract_key(
    repository: FakeRepository, queue: FakeQueue, storage: FakeStorage, lambda_context: Any
) -> None:
    _, submitted = _call(submit, submit_event(order_body()), lambda_context)
    order_id = submitted["orderId"]
    event = _presign_event(order_id, {"fileName": "invoice.pdf", "contentType": "application/pdf"})
    code, body = _call(presign, event, lambda_context)
    assert (code, body["expiresIn"]) == (201, 300)
    assert body["key"].startswith(f"orders/{order_id}/attachments/")
    assert body["key"].endswith("/invoice.pdf")
    assert storage.calls[0]["max_bytes"] == 5 * 1024 * 1024


def test_an_attachment_for_an_unknown_order_gets_404_and_presigns_nothing(
    repository: FakeRepository, storage: FakeStorage, lambda_context: Any
) -> None:
    event = _presign_event(UNKNOWN_ORDER_ID, {"fileName": "invoice.pdf", "contentType": "application/pdf"})
    code, _ = _call(presign, event, lambda_context)
    assert (code, storage.calls) == (404, [])


def test_an_attachment_with_a_forbidden_content_type_gets_400(
    repository: FakeRepository, storage: FakeStorage, lambda_context: Any
) -> None:
    event = _presign_event(UNKNOWN_ORDER_ID, {"fileName": "page.html", "contentType": "text/html"})
    code, body = _call(presign, event, lambda_context)
    assert code == 400
    assert body["errors"][0].startswith("body.contentType: must be one of")
