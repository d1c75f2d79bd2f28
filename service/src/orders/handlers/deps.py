"""The adapters the handlers hand to the logic, built once per process on first use.

Each adapter module is imported on first use, so a handler's cold start pays only for the
adapters it calls. Tests replace these functions (monkeypatch) with in-memory fakes of the ports.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from orders.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from orders.logic.ports import (
        ApiClient,
        AttachmentStorage,
        FormPoster,
        FunctionInvoker,
        HookReporter,
        OrderQueue,
        OrderRepository,
    )


@functools.cache
def order_repository() -> OrderRepository:
    """Orders (ORDERS_TABLE_NAME) and Idempotency-Key claims (IDEMPOTENCY_TABLE_NAME)."""
    from orders.dal.orders_table import DynamoOrderRepository  # noqa: PLC0415 - see module docstring

    settings = get_settings()
    return DynamoOrderRepository(
        orders_table=settings.require("orders_table_name"),
        idempotency_table=settings.idempotency_table_name,
    )


@functools.cache
def order_queue() -> OrderQueue:
    """The orders queue (ORDERS_QUEUE_URL)."""
    from orders.dal.queue import SqsOrderQueue  # noqa: PLC0415 - see module docstring

    return SqsOrderQueue(queue_url=get_settings().require("orders_queue_url"))


@functools.cache
def attachment_storage() -> AttachmentStorage:
    """The attachments bucket (ATTACHMENTS_BUCKET_NAME)."""
    from orders.dal.storage import S3AttachmentStorage  # noqa: PLC0415 - see module docstring

    return S3AttachmentStorage(bucket=get_settings().require("attachments_bucket_name"))


@functools.cache
def idempotency_store() -> DynamoDBPersistenceLayer:
    """Powertools idempotency on IDEMPOTENCY_TABLE_NAME, for the worker's per-message idempotency."""
    from orders.dal.idempotency import persistence_layer  # noqa: PLC0415 - see module docstring

    return persistence_layer(table_name=get_settings().require("idempotency_table_name"))


@functools.cache
def function_invoker() -> FunctionInvoker:
    """Lambda, for the PreTraffic hook."""
    from orders.dal.deployment import LambdaInvoker  # noqa: PLC0415 - see module docstring

    return LambdaInvoker()


@functools.cache
def hook_reporter() -> HookReporter:
    """CodeDeploy, for the PreTraffic hook."""
    from orders.dal.deployment import CodeDeployHookReporter  # noqa: PLC0415 - see module docstring

    return CodeDeployHookReporter()


@functools.cache
def api_client() -> ApiClient:
    """The service's own API (API_URL), SigV4-signed, for the staging traffic function."""
    from orders.dal.api_client import SignedApiClient  # noqa: PLC0415 - see module docstring

    settings = get_settings()
    return SignedApiClient(base_url=settings.require("api_url"), region=settings.require("region"))


@functools.cache
def form_poster() -> FormPoster:
    """Multipart uploads to presigned S3 POSTs, for the staging traffic function."""
    from orders.dal.api_client import MultipartFormPoster  # noqa: PLC0415 - see module docstring

    return MultipartFormPoster()


def new_id() -> str:
    """A new order or attachment id (UUID v4)."""
    return str(uuid.uuid4())


def now() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
