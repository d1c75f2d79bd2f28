"""The orders queue on SQS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orders.dal import clients

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsOrderQueue:
    """OrderQueue on SQS; the order id goes along as a message attribute for tracing in the console."""

    def __init__(self, *, queue_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._client = client

    def send(self, *, order_id: str, body: str) -> None:
        """Send one message."""
        client = self._client or clients.sqs()
        client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=body,
            MessageAttributes={"orderId": {"DataType": "String", "StringValue": order_id}},
        )
