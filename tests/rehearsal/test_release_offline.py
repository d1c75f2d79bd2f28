"""A whole release of the REAL pipeline offline: this repository's synthesized pipeline, buildspecs and
service, deployed by the local deployer to staging and production with canaries, alarms and bakes.

The release is the session's `good_release` (tests/rehearsal/conftest.py): a throw-away copy of the
repository released from a fresh state, which test_release_faults.py releases its faults from. The
Build runs the real buildspec with `CHECKS=` (see the Makefile's `check` target): `make test` runs
those checks itself. A faulty release rolled back in the staging canary is one case of that matrix.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials

from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.deploy.traffic import TrafficDriver
from rehearsal.release.runner import ReleaseResult
from tests.rehearsal.release_support import RELEASE_TIME_SCALE, GoodRelease

pytestmark = pytest.mark.timeout(400)


def _summary(result: ReleaseResult) -> dict[str, Any]:
    return json.loads((result.run_dir / "summary.json").read_text(encoding="utf-8"))


def _serving(repo: Path, environment: str) -> tuple[int, str]:
    """Start `environment` from what the deployer kept, and GET an unknown order over HTTP."""
    deployer = LocalDeployer(repo / ".rehearsal", RELEASE_TIME_SCALE)
    try:
        running = deployer.environment(environment)
        assert running is not None
        local = running.local
        credentials = local.credentials()
        client = TrafficDriver(
            local.base_url, Credentials(credentials.access_key, credentials.secret_key), local.cloud.region
        )
        status, body = client.send("GET", f"/orders/{uuid.uuid4()}")
        created, _ = client.send(
            "POST",
            "/orders",
            {
                "customerId": "c-1",
                "currency": "EUR",
                "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": 9.99}],
            },
        )
        return created, json.dumps(body) if status == 404 else f"{status}: {body}"
    finally:
        deployer.close()


def test_a_good_release_from_a_fresh_state_reaches_production(good_release: GoodRelease) -> None:
    summary = _summary(good_release.result)
    assert good_release.result.succeeded, summary
    assert summary["result"] == "Succeeded"
    assert summary["environments"]["production"]["commit"] == good_release.commit
    assert summary["environments"]["staging"]["commit"] == good_release.commit
    created, not_found = _serving(good_release.repo, "production")
    assert good_release.marker in not_found
    assert created == 202
