"""The adapters the handlers hand to the logic, built once per process on first use.

Tests replace these functions (monkeypatch) with in-memory fakes of the ports.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime

from orders.dal.deployment import CodeDeployHookReporter, LambdaInvoker
from orders.dal.orders_table import DynamoOrderRepository
from orders.dal.queue import SqsOrderQueue
from orders.dal.storage import S3AttachmentStorage
from orders.logic.ports import AttachmentStorage, FunctionInvoker, HookReporter, OrderQueue, OrderRepository
from orders.settings import get_settings


@functools.cache
def order_repository() -> OrderRepository:
    """Orders (ORDERS_TABLE_NAME) and Idempotency-Key claims (IDEMPOTENCY_TABLE_NAME)."""
    settings = get_settings()
    return DynamoOrderRepository(
        orders_table=settings.require("orders_table_name"),
        idempotency_table=settings.idempotency_table_name,
    )


@functools.cache
def order_queue() -> OrderQueue:
    """The orders queue (ORDERS_QUEUE_URL)."""
    return SqsOrderQueue(queue_url=get_settings().require("orders_queue_url"))


@functools.cache
def attachment_storage() -> AttachmentStorage:
    """The attachments bucket (ATTACHMENTS_BUCKET_NAME)."""
    return S3AttachmentStorage(bucket=get_settings().require("attachments_bucket_name"))


@functools.cache
def function_invoker() -> FunctionInvoker:
    """Lambda, for the PreTraffic hook."""
    return LambdaInvoker()


@functools.cache
def hook_reporter() -> HookReporter:
    """CodeDeploy, for the PreTraffic hook."""
    return CodeDeployHookReporter()


def new_id() -> str:
    """A new order or attachment id (UUID v4)."""
    return str(uuid.uuid4())


def now() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
