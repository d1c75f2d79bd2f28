"""S3 ObjectCreated (RecordAttachmentFunction): record each upload on its order.

Tolerated and skipped with a log line: the `s3:TestEvent` S3 sends when notifications are
configured, keys outside `orders/{orderId}/attachments/{attachmentId}/{fileName}`, and
uploads for an order that does not exist. S3 events wrapped in SQS records (how the
rehearsal's local cloud delivers them) are unwrapped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.logic.attachments import UploadedObject, record_attachment
from orders.logic.ports import WriteOutcome
from orders.observability import logger, traced


def uploads(event: dict[str, Any]) -> Iterator[UploadedObject]:
    """The created objects an event carries."""
    if event.get("Event") == "s3:TestEvent":
        logger.info("Skipping s3:TestEvent", bucket=event.get("Bucket"))
        return
    for record in event.get("Records") or []:
        source = record.get("eventSource")
        if source == "aws:sqs":
            yield from uploads(json.loads(record["body"]))
        elif source == "aws:s3" and str(record.get("eventName", "")).startswith("ObjectCreated"):
            created = record["s3"]["object"]
            yield UploadedObject(key=created["key"], size=int(created.get("size", 0)))
        else:
            logger.info("Skipping record", event_source=source, event_name=record.get("eventName"))


@logger.inject_lambda_context
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """Lambda entry point; returns counts per outcome for the logs and the canary."""
    counts = {"recorded": 0, "skipped": 0}
    repository = None
    for upload in uploads(event):
        repository = repository or deps.order_repository()
        outcome = record_attachment(upload=upload, repository=repository)
        if outcome is WriteOutcome.WRITTEN:
            counts["recorded"] += 1
        else:
            counts["skipped"] += 1
            logger.info("Attachment not recorded", key=upload.key, outcome=outcome or "outside-layout")
    return counts
