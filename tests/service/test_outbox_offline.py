"""No order stranded PENDING, offline: the queue is gone when the order is written, the client
still gets 202, and the outbox sweeper (run as the schedule would run it) sends the order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.rehearsal.polling import wait_for
from tests.service.conftest import Service

DEADLINE_SECONDS = 60
SCHEDULED_EVENT = Path(__file__).resolve().parents[2] / "service/src/orders/canary_events/sweeper.json"


def test_an_order_whose_send_failed_is_sent_by_the_sweeper_and_decided(service: Service) -> None:
    sqs, dynamodb = service.client("sqs"), service.client("dynamodb")
    outputs = service.environment.outputs()
    queue_url = outputs["OrdersQueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
    )
    sqs.delete_queue(QueueUrl=queue_url)  # the fault: every send fails

    response = service.submit(
        {"customerId": "c-1", "currency": "EUR", "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": 5}]}
    )
    assert response.status_code == 202, response.text
    order_id = response.json()["orderId"]

    assert (
        sqs.create_queue(QueueName=queue_url.rsplit("/", 1)[-1], Attributes=attributes["Attributes"])[
            "QueueUrl"
        ]
        == queue_url
    )
    # Time passes: the order is older than the sweeper's grace period.
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds")
    dynamodb.update_item(
        TableName=outputs["OrdersTableName"],
        Key={"orderId": {"S": order_id}},
        UpdateExpression="SET createdAt = :past",
        ExpressionAttributeValues={":past": {"S": past}},
    )
    sweeper = service.environment.stack.functions["SweepUnsentOrdersFunction"].name
    result = service.environment.functions.invoke(sweeper, json.loads(SCHEDULED_EVENT.read_text()))
    assert result.payload == {"resent": 1, "failed": 0}, result.error

    def decided() -> str | None:
        status = str(service.request("GET", f"/orders/{order_id}").json()["status"])
        return None if status == "PENDING" else status

    assert wait_for(decided, timeout=DEADLINE_SECONDS, what=f"order {order_id} decided") == "ACCEPTED"
