"""The orders table (key `orderId`) and Idempotency-Key claims in the idempotency table (key `id`).

Writes are conditional, so retries and duplicate deliveries cannot move an order backwards
or record an attachment twice. Reads are strongly consistent: a client polling right after
`POST /orders` must see its PENDING order.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from orders.dal import clients
from orders.logic.ports import Submission, SubmissionExistsError, WriteOutcome
from orders.models.order import Attachment, Order, OrderItem, OrderRequest, OrderStatus

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from mypy_boto3_dynamodb import DynamoDBClient

SUBMISSION_TTL_SECONDS = 24 * 60 * 60
# The outbox's sparse index (docs/decisions/0023-idempotency-and-outbox.md): a few shards, so that a burst of
# new orders does not write one index partition key.
UNSENT_INDEX = "unsent"
UNSENT_SHARD = "unsentShard"
UNSENT_SHARDS = 8


def unsent_shard(order_id: str) -> str:
    """The index shard of an unsent order, spread by a hash of its id."""
    return f"unsent#{hashlib.sha256(order_id.encode()).digest()[0] % UNSENT_SHARDS}"


@functools.cache
def _codecs() -> tuple[TypeSerializer, TypeDeserializer]:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # noqa: PLC0415 - see dal/clients.py

    return TypeSerializer(), TypeDeserializer()


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    serializer = _codecs()[0]
    return {name: serializer.serialize(value) for name, value in values.items() if value is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    deserializer = _codecs()[1]
    return {name: deserializer.deserialize(value) for name, value in item.items()}


def _order_from_item(values: dict[str, Any]) -> Order:
    items = tuple(
        OrderItem(sku=item["sku"], quantity=int(item["quantity"]), unit_price=Decimal(item["unitPrice"]))
        for item in values["items"]
    )
    request = OrderRequest(customer_id=values["customerId"], items=items, currency=values["currency"])
    attachments = tuple(
        Attachment(key=entry["key"], size=int(entry["size"]), content_type=entry.get("contentType"))
        for entry in values.get("attachments", [])
    )
    return Order(
        order_id=values["orderId"],
        request=request,
        status=OrderStatus(values["status"]),
        created_at=values["createdAt"],
        reason=values.get("reason"),
        attachments=attachments,
        enqueued=bool(values.get("enqueued", False)),
    )


def _first_cancellation_reason(response: Any) -> str | None:
    """The code for the transaction's first item (the claim): `CancellationReasons`, else the message.

    DynamoDB's message lists the codes in order ("... reasons [ConditionalCheckFailed, None]"); AWS
    documents `CancellationReasons` as set for Java only, so the message is the fallback.
    """
    reasons = response.get("CancellationReasons") or []
    if reasons:
        return str(reasons[0].get("Code"))
    listed = re.search(r"\[([^\]]*)\]", str(response.get("Error", {}).get("Message", "")))
    return listed.group(1).split(",")[0].strip() if listed else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class DynamoOrderRepository:
    """OrderRepository on DynamoDB."""

    def __init__(self, *, orders_table: str, idempotency_table: str, client: DynamoDBClient | None = None):
        self._orders_table = orders_table
        self._idempotency_table = idempotency_table
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        """The client given, or the process-wide one (created on first use)."""
        return self._client or clients.dynamodb()

    def create_order(self, *, order: Order, submission: Submission | None) -> None:
        """Put the PENDING order; with a submission, claim its key in the same transaction."""
        order_item = _to_item(
            {
                "orderId": order.order_id,
                "status": order.status.value,
                "createdAt": order.created_at,
                **order.request.to_dict(),
                "total": order.request.total,
                "enqueued": order.enqueued,
                # The outbox mark: only unsent orders carry it, so the `unsent` index is sparse.
                UNSENT_SHARD: None if order.enqueued else unsent_shard(order.order_id),
            }
        )
        if submission is None:
            self.client.put_item(
                TableName=self._orders_table,
                Item=order_item,
                ConditionExpression="attribute_not_exists(orderId)",
            )
            return
        claim = _to_item(
            {
                "id": f"submit#{submission.key}",
                "orderId": submission.order_id,
                "bodyHash": submission.body_hash,
                "expiration": int(time.time()) + SUBMISSION_TTL_SECONDS,
            }
        )
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._idempotency_table,
                            "Item": claim,
                            # TTL deletes an expired claim only eventually (within days): until then
                            # the item is still there, so an expired one counts as free here.
                            "ConditionExpression": "attribute_not_exists(id) OR expiration < :now",
                            "ExpressionAttributeValues": {":now": {"N": str(int(time.time()))}},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._orders_table,
                            "Item": order_item,
                            "ConditionExpression": "attribute_not_exists(orderId)",
                        }
                    },
                ]
            )
        except self.client.exceptions.TransactionCanceledException as error:
            # Only the claim's own condition means "already claimed"; throttling, a conflict with a
            # concurrent transaction or a failed order condition are errors, not a replay.
            if _first_cancellation_reason(error.response) == "ConditionalCheckFailed":
                raise SubmissionExistsError(submission.key) from None
            raise

    def find_submission(self, *, key: str) -> Submission | None:
        """The live claim on `key`; claims past their TTL count as gone even before DynamoDB deletes them."""
        response = self.client.get_item(
            TableName=self._idempotency_table, Key={"id": {"S": f"submit#{key}"}}, ConsistentRead=True
        )
        if "Item" not in response:
            return None
        values = _from_item(response["Item"])
        if int(values["expiration"]) < time.time():
            return None
        return Submission(key=key, order_id=values["orderId"], body_hash=values["bodyHash"])

    def get_order(self, *, order_id: str) -> Order | None:
        """The order, read consistently."""
        response = self.client.get_item(
            TableName=self._orders_table, Key={"orderId": {"S": order_id}}, ConsistentRead=True
        )
        return _order_from_item(_from_item(response["Item"])) if "Item" in response else None

    def mark_enqueued(self, *, order_id: str) -> None:
        """Flag the order's message as sent; never creates an item (update_item would, unconditioned)."""
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self._orders_table,
                Key={"orderId": {"S": order_id}},
                UpdateExpression=f"SET enqueued = :true REMOVE {UNSENT_SHARD}",
                ConditionExpression="attribute_exists(orderId)",
                ExpressionAttributeValues={":true": {"BOOL": True}},
            )

    def unsent_orders(self, *, created_before: str, limit: int) -> list[Order]:
        """Query every shard of the sparse `unsent` index; the index projects whole orders."""
        found: list[Order] = []
        for shard in range(UNSENT_SHARDS):
            pages = self.client.get_paginator("query").paginate(
                TableName=self._orders_table,
                IndexName=UNSENT_INDEX,
                KeyConditionExpression=f"{UNSENT_SHARD} = :shard AND createdAt < :before",
                ExpressionAttributeValues=_to_item({":shard": f"unsent#{shard}", ":before": created_before}),
                PaginationConfig={"MaxItems": limit - len(found)},
            )
            found += [_order_from_item(_from_item(item)) for page in pages for item in page.get("Items", [])]
            if len(found) >= limit:
                break
        return sorted(found, key=lambda order: order.created_at)[:limit]

    def finalize_order(self, *, order_id: str, status: OrderStatus, reason: str | None) -> WriteOutcome:
        """PENDING -> status, conditionally; a final order stays as it is."""
        values = {":status": status.value, ":pending": OrderStatus.PENDING.value, ":now": _now()}
        update = "SET #status = :status, updatedAt = :now"
        if reason is not None:
            values[":reason"] = reason
            update += ", reason = :reason"
        return self._conditional_update(
            order_id=order_id,
            UpdateExpression=update,
            ConditionExpression="attribute_exists(orderId) AND #status = :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=_to_item(values),
        )

    def add_attachment(self, *, order_id: str, attachment: Attachment, limit: int) -> WriteOutcome:
        """Append to `attachments` unless `attachmentKeys` holds the key or the order is full."""
        try:
            self.client.update_item(
                TableName=self._orders_table,
                Key={"orderId": {"S": order_id}},
                UpdateExpression="SET attachments = list_append(if_not_exists(attachments, :empty), :new) "
                "ADD attachmentKeys :keys",
                ConditionExpression="attribute_exists(orderId) AND NOT contains(attachmentKeys, :key) "
                "AND (attribute_not_exists(attachments) OR size(attachments) < :limit)",
                ExpressionAttributeValues=_to_item(
                    {
                        ":empty": [],
                        ":new": [attachment.to_dict()],
                        ":keys": {attachment.key},
                        ":key": attachment.key,
                        ":limit": limit,
                    }
                ),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            order = self.client.get_item(
                TableName=self._orders_table, Key={"orderId": {"S": order_id}}, ConsistentRead=True
            ).get("Item")
            if order is None:
                return WriteOutcome.ORDER_MISSING
            recorded = _from_item(order).get("attachmentKeys", set())
            return WriteOutcome.ALREADY_DONE if attachment.key in recorded else WriteOutcome.LIMIT_REACHED
        return WriteOutcome.WRITTEN

    def _conditional_update(self, *, order_id: str, **update: Any) -> WriteOutcome:
        key = {"orderId": {"S": order_id}}
        try:
            self.client.update_item(TableName=self._orders_table, Key=key, **update)
        except self.client.exceptions.ConditionalCheckFailedException:
            exists = "Item" in self.client.get_item(
                TableName=self._orders_table, Key=key, ConsistentRead=True
            )
            return WriteOutcome.ALREADY_DONE if exists else WriteOutcome.ORDER_MISSING
        return WriteOutcome.WRITTEN
