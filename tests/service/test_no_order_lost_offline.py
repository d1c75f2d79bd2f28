"""No order lost, measured (offline): orders through the local gateway while the platform fails.

The faults are the local runtime's, from a seeded `FaultPlan` (rehearsal/runtime/faults.py,
docs/decisions/0052-platform-faults.md): worker processes killed mid-batch, throttled batches and
API requests, DynamoDB throttling, errors, delays and failed calls, failed queue sends. The client
retries a 429 or 5xx with the same Idempotency-Key, as a client should; the outbox sweeper runs
as its schedule would. Then every 202-accepted order must end exactly once: ACCEPTED or REJECTED
in the table, or PENDING with its message in the DLQ and the DLQ alarm in ALARM; none lost,
none created twice, none decided twice (counted from the worker's own log lines, which survive
a killed process, unlike its end-of-invocation metrics). `SOAK_ORDERS` sets the load (`make soak`
runs 10,000) and `SOAK_SEED` the plan's seed; the counts are printed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from rehearsal.base.clock import TimeScale
from rehearsal.runtime.environment import start_environment
from rehearsal.runtime.faults import CallFaults, FaultPlan, InvocationFaults
from tests.rehearsal.polling import wait_for
from tests.service.conftest import TEMPLATE, Service

ORDERS = int(os.environ.get("SOAK_ORDERS", "240"))
VERBOSE = "SOAK_ORDERS" in os.environ  # `make soak`: kills all along, and progress printed
PLAN = FaultPlan(
    seed=int(os.environ.get("SOAK_SEED", "52")),
    # In `make test` the kills come first: each batch a kill interrupts waits out the worker's 30 s
    # timeout before its retry (ADR 0052), so late kills would only make the test longer.
    queue_invocations=InvocationFaults(
        throttle=0.05, kill=0.02 if VERBOSE else 0.2, max_kills=None if VERBOSE else 3
    ),
    api_invocations=InvocationFaults(throttle=0.03),
    dynamodb=CallFaults(transient=0.05, failing=0.003, delay=0.02, delay_seconds=0.2),
    queue_sends=CallFaults(transient=0.05, failing=0.1),
)
# Measured: a few hundred orders settle in ~30 s; a crash's batch waits the worker's 30 s timeout.
DEADLINE_SECONDS = max(120.0, ORDERS / 4)
SUBMIT_ATTEMPTS = 8
DLQ_ALARM = "OrdersDeadLetterQueueDepthAlarm"


@dataclass
class Decisions:
    """The worker's "Order decided" log lines, per order: how many wrote the decision, how many found it."""

    written: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sink(self, record: dict[str, Any]) -> None:
        message = record.get("message", "")
        if record.get("type") != "log" or "Order decided" not in message:
            return
        line = json.loads(message)
        with self.lock:
            (self.written if line.get("written") else self.found)[line["order_id"]] += 1


@pytest.fixture(scope="module")
def decisions() -> Decisions:
    return Decisions()


@pytest.fixture(scope="module")
def service(decisions: Decisions) -> Iterator[Service]:
    """Time compressed 100x: a failed record is visible again 1.8 s later instead of 180 s."""
    environment = start_environment(
        template_path=TEMPLATE,
        environment="local",
        time_scale=TimeScale(seconds_per_minute=0.6),
        log_sink=decisions.sink,
        faults=PLAN,
    )
    try:
        with requests.Session() as http:
            http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))
            yield Service(environment=environment, http=http)
    finally:
        environment.stop()


def _order(number: int) -> dict[str, Any]:
    sku = "SKU-1" if number % 3 else "NOT-IN-CATALOGUE"
    return {
        "customerId": f"c-{number}",
        "currency": "EUR",
        "items": [{"sku": sku, "quantity": 1, "unitPrice": 5}],
    }


def _submit(service: Service, number: int) -> tuple[str, int]:
    """POST one order, retrying a 429 or 5xx with its Idempotency-Key; (order id, attempts)."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"soak-{PLAN.seed}-{number}"}
    body = json.dumps(_order(number))
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        response = service.request("POST", "/orders", body=body, headers=headers)
        if response.status_code == 202:
            return str(response.json()["orderId"]), attempt
        assert response.status_code == 429 or response.status_code >= 500, response.text
        time.sleep(0.05 * attempt)  # the client's backoff between retries, not a wait for a condition
    raise AssertionError(f"order {number} not accepted after {SUBMIT_ATTEMPTS} attempts")


def _submit_all(service: Service) -> list[tuple[str, int]]:
    started = time.monotonic()

    def submit(number: int) -> tuple[str, int]:
        if VERBOSE and number and number % 1000 == 0:
            print(f"  {time.monotonic() - started:6.1f} s: submitting order {number}", flush=True)
        return _submit(service, number)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(submit, range(ORDERS)))


def _table_scan(service: Service, **options: Any) -> list[dict[str, Any]]:
    table = service.environment.outputs()["OrdersTableName"]
    pages = service.client("dynamodb").get_paginator("scan").paginate(TableName=table, **options)
    return [item for page in pages for item in page["Items"]]


def _statuses(service: Service) -> dict[str, str]:
    return {item["orderId"]["S"]: item["status"]["S"] for item in _table_scan(service)}


def _sweep_until_sent(service: Service) -> int:
    """Let the sweeper's own schedule send the unsent orders, until none is left unsent.

    The environment runs its `rate(1 minute)` rule (time-compressed like everything here, ADR 0040);
    the test only ages the unsent orders past the grace period (real time in the code). A sweep whose
    sends fail raises (its Errors alarm) and the next one tries again, as on AWS. Returns the polls
    that still found unsent orders.
    """
    table = service.environment.outputs()["OrdersTableName"]
    polls = 0

    def swept() -> bool:
        nonlocal polls
        unsent = _table_scan(service, FilterExpression="attribute_exists(unsentShard)")
        if not unsent:
            return True
        past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds")
        for item in unsent:
            service.client("dynamodb").update_item(
                TableName=table,
                Key={"orderId": item["orderId"]},
                UpdateExpression="SET createdAt = :past",
                ExpressionAttributeValues={":past": {"S": past}},
            )
        polls += 1
        return False

    assert _poll(swept, seconds=DEADLINE_SECONDS, every=0.5), "orders still unsent after the sweeps"
    return polls


class DeadLetters:
    """Order ids in the orders DLQ (each message read once, then made visible again for the alarm)."""

    def __init__(self, service: Service) -> None:
        self.sqs = service.client("sqs")
        self.url = service.environment.outputs()["OrdersDeadLetterQueueUrl"]
        self.ids: set[str] = set()
        self.handles: list[str] = []

    def read(self) -> set[str]:
        while batch := self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=3600
        ).get("Messages", []):
            self.ids.update(json.loads(message["Body"])["orderId"] for message in batch)
            self.handles += [message["ReceiptHandle"] for message in batch]
        return self.ids

    def release(self) -> None:
        """Visible again: the DLQ alarm watches ApproximateNumberOfMessagesVisible."""
        for handle in self.handles:
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=handle, VisibilityTimeout=0)


def _dlq_alarm_fires(service: Service) -> None:
    evaluator, _ = service.environment.alarm_evaluator()
    alarm = service.environment.stack.resolver.refs[DLQ_ALARM]

    def fired() -> bool:
        evaluator.evaluate()
        return alarm in evaluator.in_alarm()

    wait_for(fired, timeout=30, what=f"{DLQ_ALARM} in ALARM")


def test_every_accepted_order_ends_exactly_once_under_platform_faults(
    service: Service, decisions: Decisions
) -> None:
    started = time.monotonic()
    submitted = _submit_all(service)
    accepted = [order_id for order_id, _ in submitted]
    submit_seconds = time.monotonic() - started
    unsent = len(_table_scan(service, FilterExpression="attribute_exists(unsentShard)"))
    swept = _sweep_until_sent(service)
    dead = DeadLetters(service)
    waiting: set[str] = set()

    def settled() -> bool:
        waiting.clear()
        waiting.update(order_id for order_id, status in _statuses(service).items() if status == "PENDING")
        done = waiting <= dead.read()
        if VERBOSE:
            print(
                f"  {time.monotonic() - started:6.1f} s: {len(waiting)} PENDING, {len(dead.ids)} in DLQ",
                flush=True,
            )
        return done

    assert _poll(settled, seconds=DEADLINE_SECONDS, every=max(1.0, ORDERS / 2000)), (
        f"{len(waiting - dead.ids)} orders still PENDING, not in the DLQ"
    )
    seconds = time.monotonic() - started
    statuses = _statuses(service)
    decided = {order_id for order_id, status in statuses.items() if status != "PENDING"}
    counts = Counter(statuses.values())
    twice = sorted(order_id for order_id, count in decisions.written.items() if count > 1)
    unlogged = decided - set(decisions.written) - set(decisions.found)
    summary = {
        "accepted (202)": len(set(accepted)),
        "client retries": sum(attempts - 1 for _, attempts in submitted),
        "ACCEPTED": counts["ACCEPTED"],
        "REJECTED": counts["REJECTED"],
        "in the DLQ (PENDING)": len(set(accepted) - decided),
        "DLQ copies of decided orders": len(dead.ids & decided),
        "lost": len(set(accepted) - set(statuses)),
        "created twice": len(statuses) - len(set(accepted)),
        "decided twice": len(twice),
        "decided without a log line (killed, then dead-lettered)": len(unlogged),
        "left unsent by submit": unsent,
        "unsent_polls": swept,
        "orders/s": round(len(accepted) / seconds, 1),
        "submit seconds": round(submit_seconds, 1),
        "seconds": round(seconds, 1),
    }
    print("\nno order lost: " + ", ".join(f"{name} {value}" for name, value in summary.items()))
    print(
        "faults injected: "
        + ", ".join(f"{k} {v}" for k, v in asdict(service.environment.faults.counts).items())
    )

    assert len(set(accepted)) == ORDERS  # each key made one order, whatever the retries
    assert set(statuses) == set(accepted)  # none lost, none created twice
    assert twice == []  # none decided twice
    # Each decision is the worker's: its log line says so, except where a worker was killed between its
    # write and its line and the message then ran out of receives (dead-lettered, no later line).
    assert unlogged <= dead.ids, unlogged
    assert not unlogged or service.environment.faults.counts.killed_invocations > 0, unlogged
    if dead.ids:
        dead.release()
        _dlq_alarm_fires(service)


def _poll(condition: Any, *, seconds: float, every: float) -> bool:
    """Poll `condition` every `every` s until it holds or `seconds` pass (scans are too dear for 50 ms)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)  # polling the local cloud, bounded by the deadline
    return True
