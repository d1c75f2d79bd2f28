"""The attach function (S3 notifications through SQS) and the PreTraffic hook, with in-memory fakes."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

import pytest

from orders.handlers import attach, deps, pre_traffic
from orders.logic.attachments import MAX_ATTACHMENTS_PER_ORDER
from orders.logic.canary import EXPECTATIONS, load_canary_event, parse_versions_under_test
from orders.logic.ports import InvocationResult
from orders.models.order import Attachment, Order, OrderItem, OrderRequest, OrderStatus
from orders.settings import get_settings
from tests.unit.fakes import FakeInvoker, FakeReporter, FakeRepository

ORDER_ID = "22222222-2222-4222-8222-222222222222"
KEY = f"orders/{ORDER_ID}/attachments/33333333-3333-4333-8333-333333333333/invoice.pdf"
HOOK_EVENT = {"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "e-1"}


def _s3_record(
    key: str, event_name: str = "ObjectCreated:Post", bucket: str = "attachments"
) -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "eventName": event_name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1234}},
    }


def _batch(*notifications: Any) -> dict[str, Any]:
    """An SQS batch whose messages are S3 notifications, as the attachments queue delivers them."""
    return {
        "Records": [
            {"messageId": f"m-{index}", "eventSource": "aws:sqs", "body": json.dumps(notification)}
            for index, notification in enumerate(notifications)
        ]
    }


@pytest.fixture
def stored(repository: FakeRepository) -> FakeRepository:
    item = OrderItem(sku="SKU-1", quantity=1, unit_price=Decimal(1))
    request = OrderRequest(customer_id="c", items=(item,), currency="EUR")
    repository.orders[ORDER_ID] = Order(
        order_id=ORDER_ID, request=request, status=OrderStatus.PENDING, created_at="t"
    )
    return repository


def test_an_upload_is_recorded_on_its_order_with_size_and_content_type(
    stored: FakeRepository, lambda_context: Any
) -> None:
    assert attach.handler(_batch({"Records": [_s3_record(KEY)]}), lambda_context) == {"batchItemFailures": []}
    assert stored.orders[ORDER_ID].attachments == (
        Attachment(key=KEY, size=1234, content_type="application/pdf"),
    )


def test_the_same_upload_event_twice_is_recorded_once(stored: FakeRepository, lambda_context: Any) -> None:
    attach.handler(_batch({"Records": [_s3_record(KEY)]}), lambda_context)
    attach.handler(_batch({"Records": [_s3_record(KEY)]}), lambda_context)
    assert len(stored.orders[ORDER_ID].attachments) == 1


@pytest.mark.parametrize(
    "notification",
    [
        {"Event": "s3:TestEvent", "Bucket": "attachments"},
        {"Records": [_s3_record("elsewhere/file.pdf")]},
        {"Records": [_s3_record(KEY, event_name="ObjectRemoved:Delete")]},
        {"Records": [_s3_record(KEY, bucket="someone-elses-bucket")]},
        {"Records": [_s3_record(KEY.replace(ORDER_ID, "44444444-4444-4444-8444-444444444444"))]},
        {"Records": [_s3_record(KEY.replace(ORDER_ID, "22222222-2222-1222-8222-222222222222"))]},
        "not an S3 notification",
    ],
)
def test_test_events_other_buckets_foreign_keys_and_unknown_orders_are_skipped(
    stored: FakeRepository, lambda_context: Any, notification: Any
) -> None:
    assert attach.handler(_batch(notification), lambda_context) == {"batchItemFailures": []}
    assert stored.orders[ORDER_ID].attachments == ()


def test_an_order_holds_at_most_the_attachment_limit(stored: FakeRepository, lambda_context: Any) -> None:
    keys = [KEY.replace("invoice.pdf", f"page-{index}.pdf") for index in range(MAX_ATTACHMENTS_PER_ORDER + 3)]
    attach.handler(_batch(*({"Records": [_s3_record(key)]} for key in keys)), lambda_context)
    assert len(stored.orders[ORDER_ID].attachments) == MAX_ATTACHMENTS_PER_ORDER


def test_a_notification_that_fails_unexpectedly_fails_alone_and_is_counted(
    stored: FakeRepository,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def denied(**_: Any) -> Any:
        raise PermissionError("AccessDeniedException")

    monkeypatch.setattr(stored, "add_attachment", denied)
    response = attach.handler(
        _batch({"Event": "s3:TestEvent"}, {"Records": [_s3_record(KEY)]}), lambda_context
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"RecordFailures"' in line]
    assert [blob["RecordFailures"] for blob in emf] == [[1.0]]


def _healthy_results(arns: dict[str, str]) -> dict[str, InvocationResult | Exception]:
    payloads = {
        "submit": {"statusCode": 400},
        "status": {"statusCode": 404},
        "presign": {"statusCode": 404},
        "worker": {"batchItemFailures": []},
        "attach": {"batchItemFailures": []},
        "sweeper": {"resent": 0, "failed": 0},
    }
    return {
        arns[name]: InvocationResult(function_error=None, payload=payload)
        for name, payload in payloads.items()
    }


@pytest.fixture
def arns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    names = {name: f"arn:aws:lambda:eu-west-1:123456789012:function:{name}:7" for name in EXPECTATIONS}
    monkeypatch.setenv("VERSIONS_UNDER_TEST", ",".join(f"{name}={arn}" for name, arn in names.items()))
    get_settings.cache_clear()
    return names


@pytest.fixture
def reporter(monkeypatch: pytest.MonkeyPatch) -> FakeReporter:
    fake = FakeReporter()
    monkeypatch.setattr(deps, "hook_reporter", lambda: fake)
    return fake


def _run_hook(monkeypatch: pytest.MonkeyPatch, invoker: FakeInvoker, context: Any) -> dict[str, Any]:
    monkeypatch.setattr(deps, "function_invoker", lambda: invoker)
    result: dict[str, Any] = pre_traffic.handler(HOOK_EVENT, context)
    return result


def test_healthy_versions_are_reported_succeeded_after_each_got_its_canary_event(
    monkeypatch: pytest.MonkeyPatch, arns: dict[str, str], reporter: FakeReporter, lambda_context: Any
) -> None:
    invoker = FakeInvoker(_healthy_results(arns))
    assert _run_hook(monkeypatch, invoker, lambda_context)["status"] == "Succeeded"
    assert reporter.reports == [("d-1", "e-1", True)]
    assert invoker.events[arns["attach"]] == load_canary_event("attach")


class _SideBySideInvoker(FakeInvoker):
    """Answers only once every version under test is being invoked at the same time."""

    def __init__(self, results: dict[str, InvocationResult | Exception]) -> None:
        super().__init__(results)
        self.all_started = threading.Barrier(len(results), timeout=5)

    def invoke(self, *, function_arn: str, event: dict[str, Any]) -> InvocationResult:
        self.all_started.wait()  # one at a time, the first would wait here until the timeout, then fail
        return super().invoke(function_arn=function_arn, event=event)


def test_the_hook_invokes_the_versions_under_test_side_by_side(
    monkeypatch: pytest.MonkeyPatch, arns: dict[str, str], reporter: FakeReporter, lambda_context: Any
) -> None:
    """The hook lasts one cold start, not one per version (each new version starts cold)."""
    invoker = _SideBySideInvoker(_healthy_results(arns))
    assert _run_hook(monkeypatch, invoker, lambda_context)["status"] == "Succeeded"
    assert set(invoker.events) == set(arns.values())


@pytest.mark.parametrize(
    ("name", "result"),
    [
        ("submit", InvocationResult(function_error="Unhandled", payload={"errorMessage": "boom"})),
        ("status", InvocationResult(function_error=None, payload={"statusCode": 500})),
        (
            "worker",
            InvocationResult(function_error=None, payload={"batchItemFailures": [{"itemIdentifier": "x"}]}),
        ),
        ("presign", InvocationResult(function_error=None, payload="not json")),
        ("attach", PermissionError("AccessDenied")),
    ],
)
def test_a_misbehaving_version_is_reported_failed(
    *,
    monkeypatch: pytest.MonkeyPatch,
    arns: dict[str, str],
    reporter: FakeReporter,
    lambda_context: Any,
    name: str,
    result: InvocationResult | Exception,
) -> None:
    results = _healthy_results(arns) | {arns[name]: result}
    outcome = _run_hook(monkeypatch, FakeInvoker(results), lambda_context)
    assert outcome["status"] == "Failed"
    assert outcome["problems"][0].startswith(f"{name}:")
    assert reporter.reports == [("d-1", "e-1", False)]


@pytest.mark.parametrize("raw", ["", "submit", "submit=", "mystery=arn:aws:lambda:eu-west-1:1:function:x:1"])
def test_a_missing_or_malformed_version_list_is_reported_failed(
    monkeypatch: pytest.MonkeyPatch, reporter: FakeReporter, lambda_context: Any, raw: str
) -> None:
    monkeypatch.setenv("VERSIONS_UNDER_TEST", raw)
    outcome = _run_hook(monkeypatch, FakeInvoker({}), lambda_context)
    assert outcome["status"] == "Failed"
    assert reporter.reports == [("d-1", "e-1", False)]


def test_the_version_list_ignores_spaces_and_empty_entries() -> None:
    assert parse_versions_under_test(" submit = arn:1 ,, worker=arn:2 ") == {
        "submit": "arn:1",
        "worker": "arn:2",
    }


def test_every_canary_event_ships_inside_the_package() -> None:
    assert all(isinstance(load_canary_event(name), dict) for name in EXPECTATIONS)


def test_versions_named_by_their_template_logical_ids_get_their_canary_events(
    monkeypatch: pytest.MonkeyPatch, reporter: FakeReporter, lambda_context: Any
) -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:orders-GetOrderFunction:3"
    monkeypatch.setenv("VERSIONS_UNDER_TEST", f"GetOrderFunction={arn}")
    invoker = FakeInvoker({arn: InvocationResult(function_error=None, payload={"statusCode": 404})})
    assert _run_hook(monkeypatch, invoker, lambda_context)["status"] == "Succeeded"
    assert invoker.events[arn] == load_canary_event("status")
