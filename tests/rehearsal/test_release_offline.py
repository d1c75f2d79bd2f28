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

from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.release.runner import ReleaseResult
from tests.rehearsal.conftest import signed_request
from tests.rehearsal.release_support import RELEASE_TIME_SCALE, GoodRelease

pytestmark = pytest.mark.timeout(400)


def _summary(result: ReleaseResult) -> dict[str, Any]:
    return json.loads((result.run_dir / "summary.json").read_text(encoding="utf-8"))


def _log(result: ReleaseResult, stage: str, action: str) -> str:
    summary = _summary(result)
    for stage_entry in summary.get("stages", []):
        for entry in stage_entry.get("actions", []):
            if stage_entry.get("name") == stage and entry.get("action") == action:
                return Path(entry["log"]).read_text(encoding="utf-8")
    raise AssertionError(f"no {stage}/{action} in {summary}")


def _serving(repo: Path, environment: str) -> tuple[int, str]:
    """Start `environment` from what the deployer kept, and GET an unknown order over HTTP."""
    deployer = LocalDeployer(repo / ".rehearsal", RELEASE_TIME_SCALE)
    try:
        running = deployer.environment(environment)
        assert running is not None
        base_url = running.local.base_url
        region = running.local.cloud.region
        missing = signed_request("GET", f"{base_url}/orders/{uuid.uuid4()}", region=region)
        order = {
            "customerId": "c-1",
            "currency": "EUR",
            "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": 9.99}],
        }
        posted = signed_request("POST", f"{base_url}/orders", body=json.dumps(order), region=region)
        created = posted.status_code
        body = missing.text
        return created, body if missing.status_code == 404 else f"{missing.status_code}: {body}"
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


def _judged(result: ReleaseResult, where: str) -> dict[str, bool]:
    """alarm -> judged with data, for the alarms the action `where` (Stage/Action) watched."""
    return {
        item["alarm"]: item["with_data"]
        for item in _summary(result)["alarm_evidence"]
        if item["where"] == where
    }


def test_bakes_say_whether_their_alarms_judged_with_data_staging_with_production_without(
    good_release: GoodRelease,
) -> None:
    staging = _judged(good_release.result, "Staging/IntegrationTests")
    production = _judged(good_release.result, "Production/SmokeTests")
    # Staging runs its declared traffic source; production has none offline (on AWS, its users): only
    # its read-only smoke tests call it, so nothing ever submits an order there.
    assert staging["orders-staging-SubmitOrderErrorsAlarm"] is True, staging
    assert staging["orders-staging-ProcessOrdersErrorsAlarm"] is True, staging
    assert production["orders-production-SubmitOrderErrorsAlarm"] is False, production
    assert production["orders-production-ProcessOrdersErrorsAlarm"] is False, production
    log = _log(good_release.result, "Production", "SmokeTests")
    assert "alarm orders-production-SubmitOrderErrorsAlarm: judged WITHOUT data" in log
