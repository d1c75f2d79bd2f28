"""Platform faults of the local runtime (rehearsal/runtime/faults.py): each fault as the platform shows it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from rehearsal.alarms.metrics import MetricKey, MetricStore, dimensions
from rehearsal.base.clock import TimeScale
from rehearsal.cloud.descriptions import QueueSource
from rehearsal.runtime.environment import LocalEnvironment
from rehearsal.runtime.faults import CallFaults, FaultInjector, FaultPlan, InvocationFaults
from rehearsal.runtime.functions import FunctionConfig, LocalFunctions
from rehearsal.runtime.invocation import InvocationResult
from rehearsal.runtime.pollers import QueuePoller

CODE = Path(__file__).parent / "fixtures" / "app" / "src"
SLOW = {"queryStringParameters": {"seconds": "3"}}


@pytest.fixture
def functions() -> Iterator[LocalFunctions]:
    local = LocalFunctions(
        metrics=MetricStore(), region="us-east-1", account_id="123456789012", base_environ={}
    )
    local.put_function(FunctionConfig(name="slow", handler="fixture_app.api.slow", code_dir=CODE, timeout=10))
    local.publish_version("slow")
    try:
        yield local
    finally:
        local.close()


def _proxied(env: LocalEnvironment, plan: FaultPlan, service: str) -> tuple[FaultInjector, Any]:
    injector = FaultInjector(plan, metrics=env.metrics)
    endpoint = injector.start_proxy(env.cloud.endpoint_url)
    client = boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=env.cloud.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return injector, client


def test_a_worker_killed_mid_invocation_fails_as_an_exit_error_and_the_next_call_starts_afresh(
    functions: LocalFunctions,
) -> None:
    plan = FaultPlan(seed=1, queue_invocations=InvocationFaults(kill=1.0, kill_within=0.2))
    injector = FaultInjector(plan, metrics=functions.metrics)

    killed = injector.invoker(functions.invoke, caller="queue")("slow", SLOW)
    after = functions.invoke("slow", {"queryStringParameters": {"seconds": "0"}})

    assert killed.error is not None and killed.error["errorType"] == "Runtime.ExitError"
    assert killed.duration_ms < 3000, "killed while it ran, not after"
    assert injector.counts.killed_invocations == 1
    assert after.error is None and after.init_ms is not None, "a new execution environment, cold"


def test_a_throttled_invocation_runs_no_code_and_counts_as_a_lambda_throttle(
    functions: LocalFunctions,
) -> None:
    injector = FaultInjector(
        FaultPlan(seed=1, api_invocations=InvocationFaults(throttle=1.0)), metrics=functions.metrics
    )

    result = injector.invoker(functions.invoke, caller="api")("slow:live", SLOW)

    assert result.throttled and result.error == {
        "errorType": "TooManyRequestsException",
        "errorMessage": "Rate Exceeded.",
    }
    for dims in ({"FunctionName": "slow"}, {"FunctionName": "slow", "Resource": "slow:live"}):
        throttles = MetricKey("AWS/Lambda", "Throttles", dimensions(dims))
        assert functions.metrics.values(throttles, 0, 2e10) == [1.0]
    assert injector.counts.throttled_requests == 1


def test_a_failing_dynamodb_call_is_refused_once_with_an_error_the_sdk_does_not_retry(
    fixture_env: LocalEnvironment,
) -> None:
    injector, dynamodb = _proxied(
        fixture_env, FaultPlan(seed=1, dynamodb=CallFaults(failing=1.0)), "dynamodb"
    )
    try:
        with pytest.raises(ClientError) as refused:
            dynamodb.list_tables()
    finally:
        injector.stop()

    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert injector.counts.dynamodb_failed_calls == 1  # one attempt: the SDK did not retry


def test_transient_dynamodb_errors_are_absorbed_by_the_sdks_retries(fixture_env: LocalEnvironment) -> None:
    plan = FaultPlan(seed=3, dynamodb=CallFaults(transient=0.5, delay=0.2, delay_seconds=0.01))
    injector, dynamodb = _proxied(fixture_env, plan, "dynamodb")
    try:
        tables = [dynamodb.list_tables()["TableNames"] for _ in range(8)]
    finally:
        injector.stop()

    assert len({tuple(names) for names in tables}) == 1
    assert injector.counts.dynamodb_transient > 0 and injector.counts.dynamodb_delayed > 0


def test_only_queue_sends_fail_other_sqs_calls_pass_through(fixture_env: LocalEnvironment) -> None:
    injector, sqs = _proxied(fixture_env, FaultPlan(seed=1, queue_sends=CallFaults(failing=1.0)), "sqs")
    queue = fixture_env.outputs()["WorkQueueUrl"]
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        with pytest.raises(ClientError) as refused:
            sqs.send_message(QueueUrl=queue, MessageBody="never sent")
    finally:
        injector.stop()

    assert attributes["Attributes"]["QueueArn"].endswith(queue.rsplit("/", 1)[1])
    assert refused.value.response["Error"]["Code"] in (
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
    )


def test_the_same_seed_draws_the_same_faults_and_another_seed_others() -> None:
    def verdicts(seed: int) -> list[Any]:
        plan = FaultPlan(
            seed=seed, dynamodb=CallFaults(transient=0.3, failing=0.1, delay=0.1, delay_seconds=1)
        )
        injector = FaultInjector(plan, metrics=MetricStore())
        return [injector.answer("DynamoDB_20120810.PutItem", f"call-{n}") for n in range(200)]

    assert verdicts(7) == verdicts(7)
    assert verdicts(7) != verdicts(8)


def test_a_plan_with_a_probability_outside_zero_to_one_is_refused_with_one_line() -> None:
    with pytest.raises(
        ValueError, match=r"^fault plan dynamodb.failing = 1.5: use a probability in \[0, 1\]$"
    ):
        FaultPlan(seed=1, dynamodb=CallFaults(failing=1.5))


class _Queue:
    """The SQS calls a poller makes, recorded; one batch of two messages, then nothing."""

    def __init__(self) -> None:
        self.batches = [[{"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": "{}"} for n in (1, 2)]]
        self.visibility: list[int] = []

    def receive_message(self, **_: Any) -> dict[str, Any]:
        return {"Messages": self.batches.pop() if self.batches else []}

    def change_message_visibility_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> None:
        self.visibility += [entry["VisibilityTimeout"] for entry in Entries]

    def delete_message_batch(self, **_: Any) -> None:
        raise AssertionError("nothing succeeded")


@pytest.mark.parametrize(
    ("error_type", "hidden"),
    [
        ("Runtime.ExitError", 30),
        ("Sandbox.Timedout", 30),
        ("RuntimeError", 2),
        ("TooManyRequestsException", 2),
    ],
)
def test_a_batch_whose_invocation_did_not_finish_stays_hidden_for_the_functions_timeout(
    error_type: str, hidden: int
) -> None:
    """Compressed, the visibility (180 s) would be 1.8 s; a crash's batch waits the real 30 s timeout."""
    source = QueueSource(
        logical_id="Orders",
        function="worker",
        queue_url="http://queue",
        queue_arn="arn:aws:sqs:us-east-1:123456789012:queue",
        batch_size=10,
        batching_window=0,
        report_batch_item_failures=True,
        visibility_timeout=180,
    )
    queue = _Queue()
    failed = InvocationResult(function_name="worker", executed_version="1", request_id="r")
    failed.error = {"errorType": error_type, "errorMessage": "failed"}
    poller = QueuePoller(
        source,
        sqs=queue,
        invoke=lambda _target, _event: failed,
        region="us-east-1",
        stopping=threading.Event(),
        log_sink=lambda _record: None,
        time_scale=TimeScale(seconds_per_minute=0.6),
        function_timeout=30,
    )

    poller.step()

    assert queue.visibility == [hidden, hidden]
