"""The ports the logic needs; `dal/` implements them with boto3, tests with in-memory fakes."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from orders.models.order import Attachment, Order, OrderStatus


@dataclass(frozen=True, kw_only=True)
class Submission:
    """A claimed Idempotency-Key: which order it created, and a hash of the body it came with."""

    key: str
    order_id: str
    body_hash: str


class SubmissionExistsError(Exception):
    """The Idempotency-Key was claimed already (possibly by a concurrent request)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} is already claimed")
        self.key = key


class WriteOutcome(enum.StrEnum):
    """What a conditional write did; none of these is an error on its own."""

    WRITTEN = "written"
    ALREADY_DONE = "already-done"
    ORDER_MISSING = "order-missing"
    LIMIT_REACHED = "limit-reached"


class OrderRepository(Protocol):
    """Orders and claimed Idempotency-Keys."""

    def create_order(self, *, order: Order, submission: Submission | None) -> None:
        """Store a new PENDING order, and claim its key atomically; SubmissionExistsError if taken."""

    def find_submission(self, *, key: str) -> Submission | None:
        """The claim on `key`, if any."""

    def get_order(self, *, order_id: str) -> Order | None:
        """The order, or None."""

    def mark_enqueued(self, *, order_id: str) -> None:
        """Record that the order's message was sent (clears the unsent mark)."""

    def unsent_orders(self, *, created_before: str, limit: int) -> list[Order]:
        """Orders created before `created_before` whose message was never sent, oldest first."""

    def finalize_order(self, *, order_id: str, status: OrderStatus, reason: str | None) -> WriteOutcome:
        """Move a PENDING order to a final status; only PENDING orders change."""

    def add_attachment(self, *, order_id: str, attachment: Attachment, limit: int) -> WriteOutcome:
        """Append an attachment once per key, while the order has fewer than `limit`."""


class OrderQueue(Protocol):
    """Where new orders wait for the worker."""

    def send(self, *, order_id: str, body: str) -> None:
        """Enqueue one message."""


class AttachmentStorage(Protocol):
    """Where attachments are uploaded."""

    def presign_upload(
        self, *, key: str, content_type: str, max_bytes: int, expires_in: int
    ) -> dict[str, Any]:
        """A presigned POST (`url`, `fields`) limited to this key, type and size."""


@dataclass(frozen=True, kw_only=True)
class InvocationResult:
    """What a Lambda invocation returned: the FunctionError header and the decoded payload."""

    function_error: str | None
    payload: Any


class FunctionInvoker(Protocol):
    """Invokes a published Lambda version; the PreTraffic hook calls it from several threads at once."""

    def invoke(self, *, function_arn: str, event: dict[str, Any]) -> InvocationResult:
        """Invoke synchronously and return the result."""


class HookReporter(Protocol):
    """Tells CodeDeploy how a lifecycle hook went."""

    def report(self, *, deployment_id: str, execution_id: str, succeeded: bool) -> None:
        """Report Succeeded or Failed."""


@dataclass(frozen=True, kw_only=True)
class ApiAnswer:
    """An HTTP answer: the status code and the JSON body (None when the body is not JSON)."""

    status: int
    body: Any


class ApiClient(Protocol):
    """The service's own API, called the way a client calls it (SigV4-signed)."""

    def call(self, *, method: str, path: str, body: dict[str, Any] | None = None) -> ApiAnswer:
        """One request; the answer whatever its status."""


class FormPoster(Protocol):
    """Posts a multipart form, as a browser uploads to a presigned S3 POST."""

    def post(self, *, url: str, fields: dict[str, str], file_name: str, content: bytes) -> int:
        """Upload `content` as the form's file; the HTTP status."""
