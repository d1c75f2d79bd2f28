"""Whole releases of the REAL pipeline offline: this repository's synthesized pipeline, buildspecs and
service, deployed by the local deployer with a canary, alarms and rollback.

One throw-away copy of the repository serves both tests (module scope): a good release from a fresh
state, then a faulty commit that the staging canary rolls back. The Build runs the real buildspec
with `CHECKS=` (see the Makefile's `check` target): `make test` runs those checks itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rehearsal.base.clock import TimeScale
from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.release.runner import ReleaseResult
from tests.rehearsal.conftest import signed_request
from tests.rehearsal.release_support import commit, run_git

REPO = Path(__file__).resolve().parents[2]
# 35 pipeline minutes of canaries and bakes in 17.5 s
TIME_SCALE = TimeScale(seconds_per_minute=0.5)
CANARY_STEP_MINUTES = 5  # staging's Canary10Percent5Minutes: the fault must be caught within this step
ORDERS_LOGIC = "service/src/orders/logic/orders.py"
SUBMIT_HANDLER = "service/src/orders/handlers/submit.py"
NOT_FOUND = 'f"Order {order_id} does not exist"'
# coverage's `patch = subprocess` measures child processes through this variable.
COVERAGE_SUBPROCESS_VARIABLE = "COVERAGE_PROCESS_CONFIG"

pytestmark = pytest.mark.timeout(400)


@dataclass
class Releases:
    repo: Path
    good_commit: str
    good: ReleaseResult
    faulty_commit: str
    faulty: ReleaseResult
    marker: str


def _project_copy(root: Path) -> Path:
    """The working tree's files (committed or not, never ignored ones) as a fresh repository."""
    repo = root / "project"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    for tools in (".venv", "node_modules"):  # ignored by git; the runner links them into workspaces
        (repo / tools).symlink_to(REPO / tools)
    run_git(repo, "init", "--quiet", "--initial-branch=main")
    # `.venv/` in .gitignore matches folders only, not these links.
    (repo / ".git" / "info" / "exclude").write_text(".venv\nnode_modules\n", encoding="utf-8")
    run_git(repo, "config", "user.name", "Rel Manager")
    run_git(repo, "config", "user.email", "rm@example.com")
    return repo


def _release(repo: Path) -> ReleaseResult:
    from rehearsal.release.approval_inbox import ApprovalGate, ApprovalInbox  # noqa: PLC0415
    from rehearsal.release.runner import ReleaseOptions, ReleaseRunner  # noqa: PLC0415
    from rehearsal.release.source import resolve_revision  # noqa: PLC0415

    state_dir = repo / ".rehearsal"
    runner = ReleaseRunner(
        ReleaseOptions(
            repo=repo,
            revision=resolve_revision(repo),
            state_dir=state_dir,
            out=None,
        ),
        deployer=LocalDeployer(state_dir, TIME_SCALE),
        approvals=ApprovalGate(ApprovalInbox(state_dir), mode="auto"),
    )
    return runner.run()


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Releases]:
    repo = _project_copy(tmp_path_factory.mktemp("offline-release"))
    marker = f"release-{uuid.uuid4().hex[:8]}"
    logic = (repo / ORDERS_LOGIC).read_text(encoding="utf-8")
    assert NOT_FOUND in logic
    good_commit = commit(
        repo,
        "good release: the 404 message names the release",
        {ORDERS_LOGIC: logic.replace(NOT_FOUND, f'f"Order {{order_id}} does not exist ({marker})"')},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHECKS", "")
        # The release's own processes (synth, builds, sam, test runs, Lambda workers) are not
        # measured: each is covered where it is tested directly, and measuring them here doubled
        # the time of these releases. The rehearsal code running them is measured in this process.
        patch.delenv(COVERAGE_SUBPROCESS_VARIABLE, raising=False)
        good = _release(repo)
        handler = (repo / SUBMIT_HANDLER).read_text(encoding="utf-8")
        line = "    order_request = parse_order_request(request.json_body())\n"
        assert line in handler
        faulty_commit = commit(
            repo,
            "faulty release: every valid order fails",
            {SUBMIT_HANDLER: handler.replace(line, line + '    raise RuntimeError("injected fault")\n')},
        )
        faulty = _release(repo)
    yield Releases(repo, good_commit, good, faulty_commit, faulty, marker)


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
    deployer = LocalDeployer(repo / ".rehearsal", TIME_SCALE)
    try:
        running = deployer.environment(environment)
        assert running is not None
        base_url = running.local.base_url
        missing = signed_request("GET", f"{base_url}/orders/{uuid.uuid4()}")
        order = {
            "customerId": "c-1",
            "currency": "EUR",
            "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": 9.99}],
        }
        created = signed_request("POST", f"{base_url}/orders", body=json.dumps(order)).status_code
        body = missing.text
        return created, body if missing.status_code == 404 else f"{missing.status_code}: {body}"
    finally:
        deployer.close()


def test_a_good_release_from_a_fresh_state_reaches_production(releases: Releases) -> None:
    summary = _summary(releases.good)
    assert releases.good.succeeded, summary
    assert summary["result"] == "Succeeded"
    assert summary["environments"]["production"]["commit"] == releases.good_commit
    assert summary["environments"]["staging"]["commit"] == releases.good_commit
    created, not_found = _serving(releases.repo, "production")
    assert releases.marker in not_found
    assert created == 202


def _judged(result: ReleaseResult, where: str) -> dict[str, bool]:
    """alarm -> judged with data, for the alarms the action `where` (Stage/Action) watched."""
    return {
        item["alarm"]: item["with_data"]
        for item in _summary(result)["alarm_evidence"]
        if item["where"] == where
    }


def test_bakes_say_whether_their_alarms_judged_with_data_staging_with_production_without(
    releases: Releases,
) -> None:
    staging = _judged(releases.good, "Staging/IntegrationTests")
    production = _judged(releases.good, "Production/SmokeTests")
    # Staging runs its declared traffic source; production has none offline (on AWS, its users): only
    # its read-only smoke tests call it, so nothing ever submits an order there.
    assert staging["orders-staging-SubmitOrderErrorsAlarm"] is True, staging
    assert staging["orders-staging-ProcessOrdersErrorsAlarm"] is True, staging
    assert production["orders-production-SubmitOrderErrorsAlarm"] is False, production
    assert production["orders-production-ProcessOrdersErrorsAlarm"] is False, production
    log = _log(releases.good, "Production", "SmokeTests")
    assert "alarm orders-production-SubmitOrderErrorsAlarm: judged WITHOUT data" in log


def test_a_faulty_release_is_rolled_back_during_the_staging_canary(releases: Releases) -> None:
    summary = _summary(releases.faulty)
    assert not releases.faulty.succeeded
    assert summary["failed_stage"] == "Staging"
    assert "SubmitOrderErrorsAlarm" in json.dumps(summary) or "Api5xxAlarm" in json.dumps(summary)
    assert summary["environments"]["staging"]["commit"] == releases.good_commit
    assert summary["environments"]["production"]["commit"] == releases.good_commit
    deploy_log = (releases.faulty.run_dir / "logs" / "Staging.Service_Deploy.log").read_text(encoding="utf-8")
    # Pipeline minutes, not real seconds: the shift's clock stops while it holds a step for canary
    # traffic, and the alarms judge a step before the next one starts, so on a busy machine too the
    # faulty versions never get more than the first step's 10 %.
    rollback = re.search(r"during the traffic shift \(at ([\d.]+) of [\d.]+ pipeline minutes\)", deploy_log)
    assert rollback, deploy_log
    assert float(rollback.group(1)) <= CANARY_STEP_MINUTES, deploy_log
    assert "new versions get 10% of traffic" in deploy_log
    assert "all aliases at 100%" not in deploy_log
    # The declared traffic source (StagingTrafficFunction on its schedule) reached the faulty version.
    assert _judged(releases.faulty, "Staging/Service.Deploy")["orders-staging-SubmitOrderErrorsAlarm"] is True
    for environment in ("staging", "production"):
        created, not_found = _serving(releases.repo, environment)
        assert releases.marker in not_found
        assert created == 202
