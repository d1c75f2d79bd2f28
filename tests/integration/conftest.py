"""Where the integration tests send their requests: `--base-url`, or the local runtime by default.

With `--base-url` (the staging API in the pipeline) the queue URLs come from the environment
(`ORDERS_QUEUE_URL`, `ORDERS_DEAD_LETTER_QUEUE_URL`, `ORDERS_TABLE_NAME`) or from a JSON outputs
file named by `REHEARSAL_OUTPUTS`, and credentials from the default AWS chain. Without it, the
service is started offline from `service/template.yaml` for the session and stopped afterwards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TEMPLATE = Path(__file__).resolve().parents[2] / "service" / "template.yaml"


@dataclass
class Target:
    """The API under test and the AWS (or local cloud) clients next to it."""

    base_url: str
    outputs: dict[str, str]
    credentials: Credentials
    region: str
    session: boto3.session.Session
    endpoint_url: str | None = None

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def request(
        self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        """A SigV4-signed request to the API; `body` is sent as JSON unless it is already a string."""
        data = body if body is None or isinstance(body, str) else json.dumps(body)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        url = f"{self.base_url.rstrip('/')}{path}"
        signed = AWSRequest(method=method, url=url, data=data, headers=all_headers)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(signed)
        return requests.request(method, url, data=data, headers=dict(signed.headers.items()), timeout=30)


def _remote_outputs() -> dict[str, str]:
    path = os.environ.get("REHEARSAL_OUTPUTS")
    if path:
        document: dict[str, Any] = json.loads(Path(path).read_text())
        return dict(document.get("outputs", document))
    names = {
        "OrdersQueueUrl": "ORDERS_QUEUE_URL",
        "OrdersDeadLetterQueueUrl": "ORDERS_DEAD_LETTER_QUEUE_URL",
        "OrdersTableName": "ORDERS_TABLE_NAME",
    }
    return {output: os.environ[variable] for output, variable in names.items() if variable in os.environ}


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    base_url = request.config.getoption("--base-url")
    if base_url:
        session = boto3.session.Session()
        credentials = session.get_credentials()
        assert credentials is not None, "no AWS credentials to sign the requests with"
        yield Target(
            base_url=base_url,
            outputs=_remote_outputs(),
            credentials=credentials,
            region=session.region_name or "us-east-1",
            session=session,
        )
        return
    from rehearsal.base.clock import TimeScale  # noqa: PLC0415 - only when run locally
    from rehearsal.runtime.environment import start_environment  # noqa: PLC0415 - only when run locally

    environment = start_environment(
        template_path=TEMPLATE, environment="local", time_scale=TimeScale(seconds_per_minute=0.06)
    )
    try:
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        yield Target(
            base_url=environment.base_url,
            outputs=environment.outputs(),
            credentials=Credentials("test", "test"),
            region="us-east-1",
            session=session,
            endpoint_url=environment.cloud.endpoint_url,
        )
    finally:
        environment.stop()
