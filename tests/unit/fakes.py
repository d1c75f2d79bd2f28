"""In-memory fakes of the service's own ports (logic/ports.py). Prefer these over mocks."""

from __future__ import annotations

import dataclasses
from typing import Any

from orders.logic.ports import InvocationResult, Submission, SubmissionExistsError, WriteOutcome
from orders.models.order import Attachment, Order, OrderStatus


class FakeRepository:
    """OrderRepository in dicts, with the same conditional semantics as DynamoDB's."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.submissions: dict[str, Submission] = {}
        self.finalize_calls = 0

    def create_order(self, *, order: Order, submission: Submission | None) -> None:
        if submission is not None:
            if submission.key in self.submissions:
                raise SubmissionExistsError(submission.key)
            self.submissions[submission.key] = submission
        self.orders[order.order_id] = order

    def find_submission(self, *, key: str) -> Submission | None:
        return self.submissions.get(key)

    def get_order(self, *, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def mark_enqueued(self, *, order_id: str) -> None:
        if order_id in self.orders:
            self.orders[order_id] = dataclasses.replace(self.orders[order_id], enqueued=True)

    def unsent_orders(self, *, created_before: str, limit: int) -> list[Order]:
        unsent = [o for o in self.orders.values() if not o.enqueued and o.created_at < created_before]
        return sorted(unsent, key=lambda order: order.created_at)[:limit]

    def finalize_order(self, *, order_id: str, status: OrderStatus, reason: str | None) -> WriteOutcome:
        self.finalize_calls += 1
        order = self.orders.get(order_id)
        if order is None:
            return WriteOutcome.ORDER_MISSING
        if order.status is not OrderStatus.PENDING:
            return WriteOutcome.ALREADY_DONE
        self.orders[order_id] = dataclasses.replace(order, status=status, reason=reason)
        return WriteOutcome.WRITTEN

    def add_attachment(self, *, order_id: str, attachment: Attachment, limit: int) -> WriteOutcome:
        order = self.orders.get(order_id)
        if order is None:
            return WriteOutcome.ORDER_MISSING
        if any(existing.key == attachment.key for existing in order.attachments):
            return WriteOutcome.ALREADY_DONE
        if len(order.attachments) >= limit:
            return WriteOutcome.LIMIT_REACHED
        attachments = (*order.attachments, attachment)
        self.orders[order_id] = dataclasses.replace(order, attachments=attachments)
        return WriteOutcome.WRITTEN


class FakeQueue:
    """OrderQueue that keeps what was sent; `fail_next` makes the next send raise."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail_next = False

    def send(self, *, order_id: str, body: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("queue unavailable")
        self.sent.append((order_id, body))


class FakeStorage:
    """AttachmentStorage that records its calls and returns a recognisable form."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def presign_upload(
        self, *, key: str, content_type: str, max_bytes: int, expires_in: int
    ) -> dict[str, Any]:
        self.calls.append(
            {"key": key, "content_type": content_type, "max_bytes": max_bytes, "expires_in": expires_in}
        )
        return {"url": "https://attachments.example", "fields": {"key": key}}


class FakeInvoker:
    """FunctionInvoker answering from a dict of ARN -> result (or exception)."""

    def __init__(self, results: dict[str, InvocationResult | Exception]) -> None:
        self.results = results
        self.events: dict[str, dict[str, Any]] = {}

    def invoke(self, *, function_arn: str, event: dict[str, Any]) -> InvocationResult:
        self.events[function_arn] = event
        result = self.results[function_arn]
        if isinstance(result, Exception):
            raise result
        return result


class FakeReporter:
    """HookReporter that keeps the reports."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, str, bool]] = []

    def report(self, *, deployment_id: str, execution_id: str, succeeded: bool) -> None:
        self.reports.append((deployment_id, execution_id, succeeded))
