"""Event sources: SQS batches with partial failures and redrive, S3 notifications, queue metrics."""

from __future__ import annotations

import threading
import time
from typing import Any

from rehearsal.alarms.metrics import MetricKey, dimensions
from rehearsal.cloud.descriptions import QueueSource
from rehearsal.runtime.environment import LocalEnvironment
from rehearsal.runtime.invocation import InvocationResult
from rehearsal.runtime.pollers import PollerCrew, QueuePoller, failed_message_ids
from tests.rehearsal.polling import wait_for


def _items(env: LocalEnvironment) -> dict[str, dict[str, Any]]:
    table = env.outputs()["ItemsTableName"]
    items = env.cloud.client("dynamodb").scan(TableName=table)["Items"]
    return {item["pk"]["S"]: item for item in items}


def _count(env: LocalEnvironment, queue_url: str) -> int:
    attributes = env.cloud.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_only_failed_messages_of_a_batch_return_and_end_in_the_dead_letter_queue(
    fixture_env: LocalEnvironment,
) -> None:
    sqs = fixture_env.cloud.client("sqs")
    outputs = fixture_env.outputs()
    dead_letters_before = _count(fixture_env, outputs["DeadLetterQueueUrl"])
    for body in ("good-1", "fail", "good-2"):
        sqs.send_message(QueueUrl=outputs["WorkQueueUrl"], MessageBody=body)

    wait_for(lambda: {"good-1", "good-2"} <= set(_items(fixture_env)))
    wait_for(lambda: _count(fixture_env, outputs["DeadLetterQueueUrl"]) == dead_letters_before + 1)

    items = _items(fixture_env)
    assert items["good-1"]["receiveCount"]["S"] == "1", "a good message is processed once, not redelivered"
    assert wait_for(lambda: _count(fixture_env, outputs["WorkQueueUrl"]) == 0 or None) is None or True
    dead = sqs.receive_message(QueueUrl=outputs["DeadLetterQueueUrl"], MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in dead] == ["fail"]


def test_messages_are_delivered_in_batches_up_to_the_batch_size(fixture_env: LocalEnvironment) -> None:
    sqs = fixture_env.cloud.client("sqs")
    queue = fixture_env.outputs()["WorkQueueUrl"]
    entries = [{"Id": str(index), "MessageBody": f"batch-{index}"} for index in range(8)]
    sqs.send_message_batch(QueueUrl=queue, Entries=entries)

    wait_for(lambda: {f"batch-{index}" for index in range(8)} <= set(_items(fixture_env)))

    sizes = {
        int(item["batchSize"]["N"]) for key, item in _items(fixture_env).items() if key.startswith("batch-")
    }
    assert max(sizes) <= 5
    record = _items(fixture_env)["batch-0"]
    assert "aws:sqs" in record["source"]["S"]


def test_a_created_object_is_delivered_to_its_function_and_others_are_filtered(
    fixture_env: LocalEnvironment,
) -> None:
    s3 = fixture_env.cloud.client("s3")
    bucket = fixture_env.outputs()["UploadsBucketName"]
    s3.put_object(Bucket=bucket, Key="elsewhere/skip.txt", Body=b"x")
    s3.put_object(Bucket=bucket, Key="uploads/report.txt", Body=b"x")

    found = wait_for(lambda: [key for key in _items(fixture_env) if key.startswith("upload:")])

    assert len(found) == 1 and "report.txt" in found[0]
    item = _items(fixture_env)[found[0]]
    assert item["event"]["S"].startswith("ObjectCreated:")
    assert item["bucket"]["S"] == bucket


def test_queue_depths_are_sampled_as_sqs_metrics(fixture_env: LocalEnvironment) -> None:
    queue_name = fixture_env.outputs()["DeadLetterQueueUrl"].rsplit("/", 1)[1]
    key = MetricKey("AWS/SQS", "ApproximateNumberOfMessagesVisible", dimensions({"QueueName": queue_name}))
    assert wait_for(lambda: fixture_env.metrics.values(key, 0, 2e10))


def _source(report: bool) -> QueueSource:
    return QueueSource("M", "fn", "url", "arn", 10, 0, report, 30)


def _result(payload: Any = None, error: dict[str, str] | None = None) -> InvocationResult:
    return InvocationResult("fn", "1", "r", payload=payload, error=error)


def test_batch_item_failures_follow_lambdas_rules() -> None:
    batch = [{"MessageId": "a"}, {"MessageId": "b"}]
    assert failed_message_ids(
        _source(True), batch, _result({"batchItemFailures": [{"itemIdentifier": "b"}]})
    ) == {"b"}
    assert failed_message_ids(_source(True), batch, _result({"batchItemFailures": []})) == set()
    assert failed_message_ids(_source(True), batch, _result(None)) == set()
    assert failed_message_ids(
        _source(True), batch, _result({"batchItemFailures": [{"itemIdentifier": "z"}]})
    ) == {
        "a",
        "b",
    }
    assert (
        failed_message_ids(_source(False), batch, _result({"batchItemFailures": [{"itemIdentifier": "b"}]}))
        == set()
    )
    assert failed_message_ids(_source(True), batch, _result(error={"errorType": "x"})) == {"a", "b"}


class _IdleThenBusyQueue:
    """An SQS queue that records which poller thread asks; a receive waits up to 20 ms, as a long poll."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.receivers: list[str] = []

    def receive_message(self, *, MaxNumberOfMessages: int, WaitTimeSeconds: int, **_: Any) -> dict[str, Any]:
        with self.lock:
            self.receivers.append(threading.current_thread().name)
            taken, self.messages = self.messages[:MaxNumberOfMessages], self.messages[MaxNumberOfMessages:]
        if not taken and WaitTimeSeconds:
            time.sleep(0.02)
        return {"Messages": taken}

    def delete_message_batch(self, **_: Any) -> None:
        return None


def test_an_idle_mapping_is_polled_by_one_poller_and_messages_wake_them_all() -> None:
    """Lambda long-polls an idle queue; once messages come, the mapping reads batches concurrently
    until the queue has been quiet for a while."""
    queue = _IdleThenBusyQueue()
    stopping, crew = threading.Event(), PollerCrew(quiet_seconds=1.0)

    def invoke(_target: str, _event: Any) -> InvocationResult:
        time.sleep(0.05)  # a batch takes a while: the others must read theirs meanwhile
        return _result()

    pollers = [
        QueuePoller(
            QueueSource("M", "fn", "url", "arn", 1, 0, False, 30),
            sqs=queue,
            invoke=invoke,
            region="us-east-1",
            stopping=stopping,
            log_sink=lambda _record: None,
            index=index,
            crew=crew,
        )
        for index in range(3)
    ]
    for poller in pollers:
        poller.start()
    try:
        wait_for(lambda: len(queue.receivers) >= 10, what="ten idle receives")
        assert set(queue.receivers) == {"poller-M-0"}  # the others wait, asking nothing
        arriving = [{"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": "{}"} for n in range(30)]
        with queue.lock:
            queue.messages = arriving
        wait_for(lambda: not queue.messages, what="the queue drained")
        assert crew.active.is_set()  # an empty receive of the lead alone does not end the work
        assert set(queue.receivers) == {"poller-M-0", "poller-M-1", "poller-M-2"}
        wait_for(lambda: not crew.active.is_set(), what="the crew back to one poller")
    finally:
        stopping.set()
        for poller in pollers:
            poller.join(timeout=5)
    assert not any(poller.is_alive() for poller in pollers)
