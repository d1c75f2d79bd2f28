"""No order lost, measured (offline): orders through the local gateway while the platform fails.

Faults, injected from outside the service the way AWS can fail it:
* the orders queue is gone for the first third of the load (every send fails: the outbox keeps
  those orders, the sweeper sends them once the queue is back);
* the idempotency table the worker writes through is gone for a while (every record fails and is
  retried after its visibility timeout; time runs 100x faster here).

Then every 202-accepted order must end exactly once: ACCEPTED or REJECTED in the table (or in the
DLQ), none lost, and the worker's decision metrics must count each order once (no duplicate
decision). `SOAK_ORDERS` sets the load (`make soak` runs 10,000); the counts are printed.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from rehearsal.alarms.metrics import MetricKey, dimensions
from rehearsal.base.clock import TimeScale
from rehearsal.runtime.environment import start_environment
from tests.service.conftest import TEMPLATE, Service

ORDERS = int(os.environ.get("SOAK_ORDERS", "300"))
# Measured here: ~15 orders/s end to end on 2 shared cores; the deadline leaves 3x that.
DEADLINE_SECONDS = max(120.0, ORDERS / 5)


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    """Time compressed 100x: a failed record is visible again 1.8 s later instead of 180 s."""
    environment = start_environment(
        template_path=TEMPLATE, environment="local", time_scale=TimeScale(seconds_per_minute=0.6)
    )
    try:
        with requests.Session() as http:
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


def _submit_all(service: Service, numbers: range) -> list[str]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda number: service.submit(_order(number)), numbers))
    assert all(response.status_code == 202 for response in responses), Counter(
        r.status_code for r in responses
    )
    return [response.json()["orderId"] for response in responses]


def _statuses(service: Service) -> dict[str, str]:
    table = service.environment.outputs()["OrdersTableName"]
    statuses: dict[str, str] = {}
    for page in service.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        statuses.update({item["orderId"]["S"]: item["status"]["S"] for item in page["Items"]})
    return statuses


def _decisions(service: Service) -> int:
    metrics = service.environment.metrics
    total = 0.0
    for name in ("OrdersAccepted", "OrdersRejected"):
        key = MetricKey("OrderService", name, dimensions({"service": "orders"}))
        total += sum(metrics.values(key, 0.0, math.inf))
    return int(total)


def _metric_sum(service: Service, name: str) -> int:
    metrics = service.environment.metrics
    named = [key for key in metrics.keys() if key.name == name]  # noqa: SIM118 - a MetricStore, not a dict
    return int(sum(sum(metrics.values(key, 0.0, math.inf)) for key in named))


def _sweep(service: Service) -> dict[str, Any]:
    """Let the sweeper's own schedule send the unsent orders, once they are past its grace period.

    The environment runs its `rate(1 minute)` rule (time-compressed like everything here); the test
    only ages the unsent orders (the grace period is real time in the code) and waits until none is
    left, then counts what the sweeps sent (their `OrdersResent` metric).
    """
    table = service.environment.outputs()["OrdersTableName"]
    dynamodb = service.client("dynamodb")
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds")

    def unsent() -> list[dict[str, Any]]:
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=table, FilterExpression="attribute_exists(unsentShard)"
        )
        return [item for page in pages for item in page["Items"]]

    for item in unsent():
        dynamodb.update_item(
            TableName=table,
            Key={"orderId": item["orderId"]},
            UpdateExpression="SET createdAt = :past",
            ExpressionAttributeValues={":past": {"S": past}},
        )
    assert _poll(lambda: not unsent(), seconds=DEADLINE_SECONDS, every=1.0), "orders left unsent"
    return {"resent": _metric_sum(service, "OrdersResent")}


def _poll(condition: Any, *, seconds: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)  # polling the local cloud, bounded by the deadline
    return True


class DeadLetters:
    """Order ids read from the orders DLQ so far (read once each: nothing else consumes it)."""

    def __init__(self, service: Service) -> None:
        self.sqs = service.client("sqs")
        self.url = service.environment.outputs()["OrdersDeadLetterQueueUrl"]
        self.ids: set[str] = set()

    def read(self) -> set[str]:
        while batch := self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=3600
        ).get("Messages", []):
            self.ids.update(json.loads(message["Body"])["orderId"] for message in batch)
        return self.ids


def _inject_faults_while_submitting(service: Service) -> tuple[list[str], dict[str, Any]]:
    """Submit ORDERS orders in thirds: queue gone, then the worker's table gone, then healthy."""
    sqs, dynamodb = service.client("sqs"), service.client("dynamodb")
    queue_url = service.environment.outputs()["OrdersQueueUrl"]
    idempotency = str(service.environment.stack.resolver.refs["IdempotencyTable"])
    kept = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"])
    table = dynamodb.describe_table(TableName=idempotency)["Table"]
    third = ORDERS // 3

    sqs.delete_queue(QueueUrl=queue_url)  # fault 1: every send fails
    accepted = _submit_all(service, range(third))
    sqs.create_queue(QueueName=queue_url.rsplit("/", 1)[-1], Attributes=kept["Attributes"])

    dynamodb.delete_table(TableName=idempotency)  # fault 2: the worker's writes fail
    accepted += _submit_all(service, range(third, 2 * third))
    assert _poll(lambda: _metric_sum(service, "RecordFailures") > 0, seconds=60)
    dynamodb.create_table(
        TableName=idempotency,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
    )
    accepted += _submit_all(service, range(2 * third, ORDERS))
    return accepted, _sweep(service)


def test_every_accepted_order_ends_exactly_once_under_platform_faults(service: Service) -> None:
    started = time.monotonic()
    accepted, swept = _inject_faults_while_submitting(service)
    dead = DeadLetters(service)

    waiting: set[str] = set()

    def settled() -> bool:
        waiting.clear()
        waiting.update(order_id for order_id, status in _statuses(service).items() if status == "PENDING")
        return waiting <= dead.read()

    assert _poll(settled, seconds=DEADLINE_SECONDS, every=1.0), (
        f"{len(waiting - dead.ids)} orders still PENDING"
    )
    statuses = _statuses(service)
    counts = Counter(statuses.values())
    summary = {
        "accepted (202)": len(accepted),
        "sent by the outbox sweeper": swept.get("resent"),
        "ACCEPTED": counts["ACCEPTED"],
        "REJECTED": counts["REJECTED"],
        "in the DLQ": len(dead.ids),
        "record failures (retried)": _metric_sum(service, "RecordFailures"),
        "decisions written": _decisions(service),
        "seconds": round(time.monotonic() - started, 1),
    }
    print("\nno order lost: " + ", ".join(f"{name} {value}" for name, value in summary.items()))
    assert set(statuses) == set(accepted)  # none lost, none created twice
    assert {order_id for order_id, status in statuses.items() if status == "PENDING"} <= dead.ids
    assert summary["decisions written"] == counts["ACCEPTED"] + counts["REJECTED"]  # each decided once
    assert swept.get("resent") == ORDERS // 3
