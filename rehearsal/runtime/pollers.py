"""Event sources: SQS pollers (batches, partial failures, redrive), S3 notifications, SQS metrics.

Like Lambda's SQS poller, a `QueuePoller` gathers up to `BatchSize` messages within the batching
window, invokes the function once per batch, deletes what succeeded and leaves the failed
messages in the queue. Lambda lets those become visible again when the queue's visibility timeout
expires; here their visibility is set to the queue's timeout times `time_scale`, so the same
code path runs in compressed time, except after an invocation that did not finish (its process
died or timed out): its messages stay hidden at least the function's timeout in real seconds,
since the function runs in real time and Lambda requires visibility >= timeout (ADR 0052).
Several pollers share one source, as Lambda runs concurrent batches per mapping; while the queue is
empty only the first of them polls, and the rest join it as soon as it receives (`PollerCrew`).
Redrive to the dead-letter queue after `maxReceiveCount` is
the local cloud's own (moto moves the message on receive). S3 events reach a function through an
internal queue that the bucket notifies (moto delivers S3 notifications to SQS), like Lambda's
asynchronous invocation: a failed event is retried twice, then dropped with a log line.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from rehearsal.alarms.metrics import MetricStore
from rehearsal.base.aws import LAMBDA_ASYNC_ATTEMPTS
from rehearsal.base.clock import REAL_TIME, TimeScale
from rehearsal.cloud.descriptions import BucketSource, QueueSource
from rehearsal.runtime.invocation import InvocationResult

Invoke = Callable[[str, Any], InvocationResult]
LogSink = Callable[[dict[str, Any]], None]


def sqs_record(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS message in the shape Lambda puts it in an event's `Records`."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(
    source: QueueSource, batch: list[dict[str, Any]], result: InvocationResult
) -> set[str]:
    """Which messages of the batch go back to the queue: all on an error, else the reported ones."""
    every = {message["MessageId"] for message in batch}
    if result.failed:
        return every
    if not source.report_batch_item_failures:
        return set()
    failures = (result.payload or {}).get("batchItemFailures") if isinstance(result.payload, dict) else None
    if not failures:
        return set()
    reported = {str(item.get("itemIdentifier")) for item in failures if isinstance(item, dict)}
    # Lambda treats an unknown or empty identifier as a failure of the whole batch.
    return reported if reported <= every else every


class _Loop(threading.Thread):
    def __init__(self, name: str, stopping: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.stopping = stopping

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception as error:  # a poller must outlive a failing call; Lambda's does too
                self.report_error(error)
                self.stopping.wait(0.5)

    def step(self) -> None:
        raise NotImplementedError

    def report_error(self, error: Exception) -> None:
        raise NotImplementedError


_UNFINISHED = ("Runtime.ExitError", "Sandbox.Timedout")


def unfinished(result: InvocationResult) -> bool:
    """Whether the invocation ended without its handler returning (process died, or timed out)."""
    return (result.error or {}).get("errorType") in _UNFINISHED


class PollerCrew:
    """The pollers of one event source mapping. While the queue is idle one of them (the lead)
    long-polls it, as Lambda "uses long polling to poll a queue until it becomes active"; once any
    of them receives messages every poller reads batches, until the lead finds the queue empty and
    none of them has received anything for `quiet_seconds`. The others wait on an event meanwhile:
    an idle mapping costs one request per second, not one per poller (docs/decisions/0064-idle-pollers.md)."""

    def __init__(self, quiet_seconds: float = 5.0) -> None:
        self.quiet_seconds = quiet_seconds
        self.active = threading.Event()
        self.last_received = time.monotonic()

    def received(self, *, lead: bool, messages: int) -> None:
        """What a poller's first receive of a batch found: messages keep the crew at work; the lead
        finding none after a quiet spell sends the others back to waiting."""
        if messages:
            self.last_received = time.monotonic()
            self.active.set()
        elif lead and time.monotonic() - self.last_received >= self.quiet_seconds:
            self.active.clear()

    def wait_for_work(self, stopping: threading.Event) -> bool:
        """Whether a poller other than the lead should poll now (waits up to a second for it)."""
        return self.active.wait(1) and not stopping.is_set()


class QueuePoller(_Loop):
    """Polls one SQS queue for one function, as one of an event source mapping's pollers does."""

    def __init__(
        self,
        source: QueueSource,
        *,
        sqs: Any,
        invoke: Invoke,
        region: str,
        stopping: threading.Event,
        log_sink: LogSink,
        time_scale: TimeScale = REAL_TIME,
        function_timeout: float = 0.0,
        index: int = 0,
        crew: PollerCrew | None = None,
    ) -> None:
        super().__init__(f"poller-{source.logical_id}-{index}", stopping)
        self.lead = index == 0
        self.crew = crew or PollerCrew()
        self.function_timeout = function_timeout
        self.source = source
        self.sqs = sqs
        self.invoke = invoke
        self.region = region
        self.log_sink = log_sink
        self.time_scale = time_scale

    def receive_batch(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages: a long poll for the first, then more until the window closes."""
        batch: list[dict[str, Any]] = []
        window_end: float | None = None
        while len(batch) < self.source.batch_size and not self.stopping.is_set():
            wait = 1 if not batch else 0
            response = self.sqs.receive_message(
                QueueUrl=self.source.queue_url,
                MaxNumberOfMessages=min(10, self.source.batch_size - len(batch)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not batch:
                self.crew.received(lead=self.lead, messages=len(messages))
            batch.extend(messages)
            if not batch:
                return batch
            if window_end is None:
                window_end = time.monotonic() + self.time_scale.real_seconds(self.source.batching_window)
            if time.monotonic() >= window_end:
                break
            if not messages:
                self.stopping.wait(min(0.05, max(window_end - time.monotonic(), 0)))
        return batch

    def step(self) -> None:
        if not self.lead and not self.crew.wait_for_work(self.stopping):
            return
        batch = self.receive_batch()
        if not batch:
            return
        event = {
            "Records": [
                sqs_record(message, queue_arn=self.source.queue_arn, region=self.region) for message in batch
            ]
        }
        result = self.invoke(self.source.function, event)
        failed = failed_message_ids(self.source, batch, result)
        done = [message for message in batch if message["MessageId"] not in failed]
        retry = [message for message in batch if message["MessageId"] in failed]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(done[start : start + 10])
            ]
            self.sqs.delete_message_batch(QueueUrl=self.source.queue_url, Entries=entries)
        visibility = self.time_scale.real_seconds(self.source.visibility_timeout)
        if unfinished(result):
            visibility = max(visibility, self.function_timeout)
        visibility = round(visibility)
        for start in range(0, len(retry), 10):
            entries = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": visibility}
                for index, message in enumerate(retry[start : start + 10])
            ]
            self.sqs.change_message_visibility_batch(QueueUrl=self.source.queue_url, Entries=entries)
        if retry:
            self.log_sink(
                {"type": "batch", "source": self.source.logical_id, "size": len(batch), "failed": len(retry)}
            )

    def report_error(self, error: Exception) -> None:
        self.log_sink({"type": "poller-error", "source": self.source.logical_id, "error": repr(error)})


class BucketEventDelivery(_Loop):
    """Delivers a bucket's S3 notifications (from its internal queue) to a function."""

    def __init__(
        self,
        source: BucketSource,
        *,
        sqs: Any,
        invoke: Invoke,
        stopping: threading.Event,
        log_sink: LogSink,
        time_scale: TimeScale = REAL_TIME,
    ) -> None:
        super().__init__(f"s3-events-{source.bucket}", stopping)
        self.source = source
        self.sqs = sqs
        self.invoke = invoke
        self.log_sink = log_sink
        self.retry_delay = round(
            time_scale.real_seconds(60)
        )  # Lambda retries asynchronous events after about a minute

    def step(self) -> None:
        response = self.sqs.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
        )
        for message in response.get("Messages", []):
            body = json.loads(message["Body"])
            attempts = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            if (
                "Records" in body and self.invoke(self.source.function, body).failed
            ):  # an s3:TestEvent has none
                if attempts < LAMBDA_ASYNC_ATTEMPTS:
                    self.sqs.change_message_visibility(
                        QueueUrl=self.source.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=self.retry_delay,
                    )
                    continue
                self.log_sink({"type": "event-dropped", "bucket": self.source.bucket, "attempts": attempts})
            self.sqs.delete_message(QueueUrl=self.source.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def report_error(self, error: Exception) -> None:
        self.log_sink({"type": "poller-error", "source": self.source.bucket, "error": repr(error)})


class QueueMetricsSampler(_Loop):
    """Samples queue depths into AWS/SQS metrics (what CloudWatch collects every minute)."""

    def __init__(
        self,
        queue_urls: dict[str, str],
        *,
        sqs: Any,
        store: MetricStore,
        stopping: threading.Event,
        interval: float,
    ) -> None:
        super().__init__("sqs-metrics", stopping)
        self.queue_urls = queue_urls
        self.sqs = sqs
        self.store = store
        self.interval = interval

    def sample(self) -> None:
        names = {
            "ApproximateNumberOfMessages": "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
        }
        for queue_name, url in self.queue_urls.items():
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(names))["Attributes"]
            for attribute, metric in names.items():
                self.store.put(
                    "AWS/SQS",
                    metric,
                    {"QueueName": queue_name},
                    float(attributes.get(attribute, 0)),
                    unit="Count",
                )

    def step(self) -> None:
        self.sample()
        self.stopping.wait(self.interval)

    def report_error(self, error: Exception) -> None:
        """A failed sample is skipped: the next one follows after the interval."""
