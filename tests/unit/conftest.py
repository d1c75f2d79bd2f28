"""Unit-test setup: fake AWS credentials and region, the service's environment, fresh caches.

The environment is set at import, before any `orders` module builds its Powertools objects.
moto runs in-process (`mock_aws`); nothing here reaches a network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

SERVICE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "ORDERS_TABLE_NAME": "orders",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "ORDERS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
    "ATTACHMENTS_BUCKET_NAME": "attachments",
    "POWERTOOLS_SERVICE_NAME": "orders",
    "POWERTOOLS_METRICS_NAMESPACE": "OrdersTest",
    "MAX_ORDER_TOTAL": "10000",
}
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED"):
    os.environ.pop(_name, None)
os.environ.update(SERVICE_ENVIRONMENT)

from orders import observability, settings  # noqa: E402 - the environment must be set first
from orders.dal import clients  # noqa: E402
from orders.handlers import deps, worker  # noqa: E402
from tests.unit.fakes import FakeQueue, FakeRepository, FakeStorage  # noqa: E402

UNKNOWN_ORDER_ID = "00000000-0000-4000-8000-000000000000"


def _clear_caches() -> None:
    for cached in (
        settings.get_settings,
        clients._session,
        clients.dynamodb,
        clients.sqs,
        clients.s3,
        clients.lambda_,
        clients.codedeploy,
        deps.order_repository,
        deps.idempotency_store,
        deps.order_queue,
        deps.attachment_storage,
        deps.function_invoker,
        deps.hook_reporter,
        deps.api_client,
        deps.form_poster,
        worker.batch_machinery,
        observability.tracer,
    ):
        cached.cache_clear()


@pytest.fixture(autouse=True)
def fresh_process() -> Iterator[None]:
    """Each test starts like a new Lambda process: settings and clients are built again."""
    _clear_caches()
    yield
    _clear_caches()


@dataclass
class FakeLambdaContext:
    """The attributes of a Lambda context that Powertools reads."""

    function_name: str = "orders-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:orders-test"
    aws_request_id: str = "request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def repository(monkeypatch: pytest.MonkeyPatch) -> FakeRepository:
    """An in-memory repository that the handlers get from `deps`."""
    fake = FakeRepository()
    monkeypatch.setattr(deps, "order_repository", lambda: fake)
    return fake


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> FakeQueue:
    fake = FakeQueue()
    monkeypatch.setattr(deps, "order_queue", lambda: fake)
    return fake


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch) -> FakeStorage:
    fake = FakeStorage()
    monkeypatch.setattr(deps, "attachment_storage", lambda: fake)
    return fake


def api_event(
    *,
    method: str,
    path: str,
    resource: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A REST API proxy event as API Gateway sends it."""
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {name: [value] for name, value in (headers or {}).items()},
        "queryStringParameters": None,
        "pathParameters": path_parameters,
        "requestContext": {"requestId": "request-1", "resourcePath": resource, "httpMethod": method},
        "body": body,
        "isBase64Encoded": False,
    }


def order_body(**overrides: Any) -> dict[str, Any]:
    """A valid `POST /orders` body; keyword arguments replace its fields."""
    body: dict[str, Any] = {
        "customerId": "customer-1",
        "items": [{"sku": "SKU-1", "quantity": 2, "unitPrice": 9.99}],
        "currency": "EUR",
    }
    body.update(overrides)
    return body


def submit_event(body: dict[str, Any] | str, *, key: str | None = None) -> dict[str, Any]:
    raw = body if isinstance(body, str) else json.dumps(body)
    return api_event(
        method="POST",
        path="/orders",
        resource="/orders",
        body=raw,
        headers={"Idempotency-Key": key} if key else None,
    )


@pytest.fixture
def aws() -> Iterator[None]:
    """moto in-process, with the orders and idempotency tables, the queue and the bucket."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # As in service/template.yaml: the outbox's sparse `unsent` index.
        dynamodb.create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in ("orderId", "unsentShard", "createdAt")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "unsent",
                    "KeySchema": [
                        {"AttributeName": "unsentShard", "KeyType": "HASH"},
                        {"AttributeName": "createdAt", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        queue_url = boto3.client("sqs").create_queue(QueueName="orders")["QueueUrl"]
        os.environ["ORDERS_QUEUE_URL"] = queue_url
        boto3.client("s3").create_bucket(
            Bucket="attachments", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield
    os.environ["ORDERS_QUEUE_URL"] = SERVICE_ENVIRONMENT["ORDERS_QUEUE_URL"]
