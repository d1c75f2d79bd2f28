"""The Powertools idempotency store (DynamoDB, key `id`, TTL `expiration`) for the worker.

Imported only when the worker meets its first record: Powertools idempotency costs ~110 ms
of imports that an empty batch (the PreTraffic canary) should not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orders.dal import clients

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer


def persistence_layer(*, table_name: str) -> DynamoDBPersistenceLayer:
    """The persistence layer on the shared, lazily created DynamoDB client."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer  # noqa: PLC0415

    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=clients.dynamodb())
