"""Fixtures of the local runtime's tests (the fixture app running offline, SigV4-signed requests), and
the real pipeline synthesized with cdk.json's values.

The environment is session-scoped (starting it costs about a second) and compresses time 100x,
so visibility timeouts and alarm periods pass quickly. Its finalizer stops every process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from tests.infra.conftest import synth, synthesized  # noqa: F401 - fixtures of test_accounts_synthesized.py
from tests.rehearsal.release_support import GoodRelease, release_good_commit

REPOSITORY = Path(__file__).resolve().parents[2]
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
    region: str = "us-east-1",
) -> requests.Response:
    """A request signed like the AWS SDKs sign API Gateway calls (service execute-api)."""
    all_headers = (
        {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
    )
    request = AWSRequest(method=method, url=url, data=body, headers=all_headers)
    SigV4Auth(Credentials("test", secret), "execute-api", region).add_auth(request)
    return requests.request(method, url, data=body, headers=dict(request.headers.items()), timeout=10)


@pytest.fixture
def signed() -> Any:
    return signed_request


@pytest.fixture(scope="session")
def real_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthesize pipeline/ with cdk.json's values once per session (about 8 s) into a private folder."""
    out = tmp_path_factory.mktemp("real-cdk-out")
    context = json.loads((REPOSITORY / "cdk.json").read_text())["context"]
    environment = {
        **os.environ,
        "CDK_OUTDIR": str(out),
        "CDK_CONTEXT_JSON": json.dumps(context),  # what the CDK CLI hands the app
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.app"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if not (out / "manifest.json").is_file():
        pytest.fail(f"synth of pipeline/ failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    return out


@pytest.fixture(scope="session")
def good_release(tmp_path_factory: pytest.TempPathFactory) -> GoodRelease:
    """This repository released to production from a fresh state, once per session: the release tests
    (test_release_offline.py, test_release_faults.py) start from it."""
    return release_good_commit(tmp_path_factory.mktemp("offline-release"))
