"""Where the integration tests send their requests: `--base-url`, or the local runtime by default.

With `--base-url` (the staging API in the pipeline) the table name comes from the environment
(`ORDERS_TABLE_NAME`) or from a JSON outputs file named by `REHEARSAL_OUTPUTS`, and credentials
from the default AWS chain; with `TEST_ROLE_ARN` (the stack's TestRole, which may be in another
account) the tests run as that role. Without it, the service is started offline from
`service/template.yaml` for the session and stopped afterwards.

Every test states its worst-case wait on AWS with `@pytest.mark.aws_wait(seconds=...)` (at most
two minutes; pytest-timeout enforces it against AWS). A test that needs more real time than that
(the SQS redrive after maxReceiveCount x visibility timeout) is `offline_only`: it runs against the
local runtime, whose clock is compressed, and is deselected against AWS.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

TEMPLATE = Path(__file__).resolve().parents[2] / "service" / "template.yaml"
# The wait budget of every test against AWS, and the pieces each test's budget is made of.
MAX_AWS_WAIT_SECONDS = 120
REQUEST_TIMEOUT_SECONDS = 10  # one HTTP request to the API or S3 (connect + read)
POLL_SECONDS = 30  # polling for an asynchronous outcome (SQS worker, S3 event)
# One AWS SDK call: 5 s to connect + 10 s to read, two attempts.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
CLIENT_CALL_SECONDS = 2 * (5 + 10)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"aws_wait(seconds): the test's worst-case wait on AWS (at most {MAX_AWS_WAIT_SECONDS} s)"
    )
    config.addinivalue_line(
        "markers", "offline_only: needs the local runtime's compressed clock; deselected against AWS"
    )


def wait_budget(item: pytest.Item) -> int:
    """The worst-case wait on AWS the test states; a test without one, or over 2 minutes, is refused."""
    marker = item.get_closest_marker("aws_wait")
    if marker is None:
        raise pytest.UsageError(
            f"{item.nodeid} does not state its worst-case wait on AWS: add @pytest.mark.aws_wait(seconds=...)"
        )
    seconds = int(marker.kwargs["seconds"])
    if not 0 < seconds <= MAX_AWS_WAIT_SECONDS:
        raise pytest.UsageError(
            f"{item.nodeid} may wait {seconds} s on AWS: keep it at most {MAX_AWS_WAIT_SECONDS} s "
            "or make it offline_only"
        )
    return seconds


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against AWS: drop offline-only tests, and hold every other one to its stated wait."""
    here = Path(__file__).parent
    against_aws = bool(config.getoption("--base-url"))
    kept, dropped = [], []
    for item in items:
        if here not in item.path.parents:
            kept.append(item)
        elif item.get_closest_marker("offline_only"):
            (dropped if against_aws else kept).append(item)
        else:
            budget = wait_budget(item)
            if against_aws:
                item.add_marker(pytest.mark.timeout(budget))
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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
        return self.session.client(  # type: ignore[call-overload]
            service, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG
        )

    def request(
        self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        """A SigV4-signed request to the API; `body` is sent as JSON unless it is already a string."""
        data = body if body is None or isinstance(body, str) else json.dumps(body)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        url = f"{self.base_url.rstrip('/')}{path}"
        signed = AWSRequest(method=method, url=url, data=data, headers=all_headers)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(signed)
        return requests.request(
            method, url, data=data, headers=dict(signed.headers.items()), timeout=REQUEST_TIMEOUT_SECONDS
        )


def _remote_outputs() -> dict[str, str]:
    path = os.environ.get("REHEARSAL_OUTPUTS")
    if path:
        document: dict[str, Any] = json.loads(Path(path).read_text())
        return dict(document.get("outputs", document))
    names = {"OrdersTableName": "ORDERS_TABLE_NAME"}
    return {output: os.environ[variable] for output, variable in names.items() if variable in os.environ}


def session_for_tests(base: boto3.session.Session, environ: Mapping[str, str]) -> boto3.session.Session:
    """The session the tests run as: the environment's TestRole when `TEST_ROLE_ARN` names one.

    Offline (`AWS_ENDPOINT_URL` points at the local cloud) tests act as the local cloud's administrator:
    moto cannot evaluate TestRole's trust (ADR 0043), so the role is not assumed there; the log says so.
    """
    role_arn = environ.get("TEST_ROLE_ARN", "")
    if not role_arn:
        return base
    if environ.get("AWS_ENDPOINT_URL"):
        warnings.warn(
            f"TEST_ROLE_ARN {role_arn} not assumed: AWS_ENDPOINT_URL is a local cloud, "
            "where builds act as its administrator (moto cannot evaluate TestRole's trust; ADR 0043)",
            stacklevel=2,
        )
        return base
    # Role chaining caps a session at one hour (IAM User Guide); a test run stays well under it.
    credentials = base.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="release-pipeline-tests")[
        "Credentials"
    ]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=base.region_name,
    )


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    base_url = request.config.getoption("--base-url")
    if base_url:
        session = session_for_tests(boto3.session.Session(), os.environ)
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
