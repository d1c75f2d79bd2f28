"""Fixtures of the local runtime's tests: the fixture app running offline, and SigV4-signed requests.

The environment is session-scoped (starting it costs about a second) and compresses time 100x,
so visibility timeouts and alarm periods pass quickly. Its finalizer stops every process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from rehearsal.base.clock import TimeScale
from rehearsal.runtime.environment import LocalEnvironment, start_environment

FIXTURE_APP = Path(__file__).parent / "fixtures" / "app"
FIXTURE_CODE = FIXTURE_APP / "src"
TIME_SCALE = TimeScale(seconds_per_minute=0.6)  # a hundred times faster than real time


@pytest.fixture(scope="session")
def fixture_env() -> Iterator[LocalEnvironment]:
    environment = start_environment(
        template_path=FIXTURE_APP / "template.yaml", environment="staging", time_scale=TIME_SCALE
    )
    try:
        yield environment
    finally:
        environment.stop()


def signed_request(
    method: str,
    url: str,
    *,
    body: str | None = None,
    secret: str = "test",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """A request signed like the AWS SDKs sign API Gateway calls (service execute-api)."""
    all_headers = (
        {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
    )
    request = AWSRequest(method=method, url=url, data=body, headers=all_headers)
    SigV4Auth(Credentials("test", secret), "execute-api", "us-east-1").add_auth(request)
    return requests.request(method, url, data=body, headers=dict(request.headers.items()), timeout=10)


@pytest.fixture
def signed() -> Any:
    return signed_request
