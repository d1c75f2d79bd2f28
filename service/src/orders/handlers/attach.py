"""Uploads (RecordAttachmentFunction): SQS batches of S3 notifications; record each upload on its order.

S3 sends ObjectCreated notifications to AttachmentsQueue and the function reads the queue, so
a notification that cannot be recorded now is retried and then kept in the attachments DLQ,
instead of being discarded after S3's two asynchronous retries
(docs/decisions/0024-attachments-through-a-queue.md).

Skipped with a log line: the `s3:TestEvent` S3 sends when notifications are configured, records of
another bucket, keys outside `orders/{orderId}/attachments/{attachmentId}/{fileName}`, uploads for
an order that does not exist or already holds the most attachments it may. Any other failure fails
its SQS record (partial batch response) and counts as `RecordFailures` of this version.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.logic.attachments import UploadedObject, record_attachment
from orders.logic.ports import WriteOutcome
from orders.models.validation import parse_json
from orders.observability import count_record_failure, logger, traced
from orders.settings import get_settings


def uploads(notification: Any) -> Iterator[UploadedObject]:
    """The created objects of the attachments bucket that one S3 notification carries."""
    if not isinstance(notification, dict) or notification.get("Event") == "s3:TestEvent":
        logger.info("Skipping notification", event=str(notification)[:200])
        return
    for record in notification.get("Records") or []:
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith(
            "ObjectCreated"
        ):
            logger.info(
                "Skipping record", event_source=record.get("eventSource"), event_name=record.get("eventName")
            )
        elif bucket != get_settings().require("attachments_bucket_name"):
            logger.warning("Skipping an upload to another bucket", bucket=bucket)
        else:
            created = s3.get("object") or {}
            yield UploadedObject(key=str(created.get("key", "")), size=int(created.get("size", 0)))


def record_message(body: str) -> Counter[str]:
    """Record the uploads of one SQS message; counts per outcome."""
    try:
        notification = parse_json(body)
    except ValueError:
        # Only S3 may send to the queue (its policy), and S3 sends JSON: retrying cannot help.
        logger.warning("Skipping a message that is not JSON")
        return Counter(skipped=1)
    counts: Counter[str] = Counter()
    for upload in uploads(notification):
        outcome = record_attachment(upload=upload, repository=deps.order_repository())
        if outcome is WriteOutcome.WRITTEN:
            counts["recorded"] += 1
        else:
            counts["skipped"] += 1
            logger.info("Attachment not recorded", key=upload.key, outcome=outcome or "outside-layout")
    return counts


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point: a partial batch response."""
    failures: list[dict[str, str]] = []
    counts: Counter[str] = Counter()
    for record in event.get("Records") or []:
        try:
            counts.update(record_message(str(record.get("body", ""))))
        except Exception:
            count_record_failure()
            logger.exception("Record failed unexpectedly", message_id=record.get("messageId"))
            failures.append({"itemIdentifier": str(record.get("messageId", ""))})
    logger.info("Attachment batch done", recorded=counts["recorded"], skipped=counts["skipped"])
    return {"batchItemFailures": failures}
