"""The service offline, under faults and hostile input: one local environment per test module.

These tests start `service/template.yaml` in the local runtime (local cloud, worker processes,
gateway) the way `make local` does, then break things the way AWS can: a table the worker can
no longer write, requests no client should send. They run only offline: they delete resources.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from rehearsal.base.clock import REAL_TIME
from rehearsal.runtime.environment import LocalEnvironment, start_environment

TEMPLATE = Path(__file__).resolve().parents[2] / "service" / "template.yaml"


@dataclass
class Service:
    """The running environment and a SigV4-signing HTTP client for its gateway."""

    environment: LocalEnvironment
    http: requests.Session

    def client(self, service: str) -> Any:
        return self.environment.cloud.client(service)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """A signed request; `body` goes as given (bytes or text), headers exactly as given."""
        url = f"{self.environment.base_url.rstrip('/')}{path}"
        data = body.encode() if isinstance(body, str) else body
        signed = AWSRequest(method=method, url=url, data=data, headers=headers or {})
        SigV4Auth(Credentials("test", "test"), "execute-api", "us-east-1").add_auth(signed)
        return self.http.request(method, url, data=data, headers=dict(signed.headers.items()), timeout=30)

    def order_count(self) -> int:
        table = self.environment.outputs()["OrdersTableName"]
        return int(self.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])

    def submit(self, body: dict[str, Any]) -> requests.Response:
        return self.request(
            "POST", "/orders", body=json.dumps(body), headers={"Content-Type": "application/json"}
        )


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    """The service in a fresh local environment, real time (alarm periods are 60 s)."""
    environment = start_environment(template_path=TEMPLATE, environment="local", time_scale=REAL_TIME)
    try:
        with requests.Session() as http:
            yield Service(environment=environment, http=http)
    finally:
        environment.stop()
