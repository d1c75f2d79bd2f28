"""Another team's values pass the Build: `make check` and `make synth` run on a copy of this repository
whose cdk.json holds them (three accounts, another region, branch and bootstrap qualifier).

Cost: one more `make check` + `make synth` (about COST_NOTE on 2 cores). The copy reuses this
checkout's .venv and node_modules through symlinks and the shared mypy cache. `make check` leaves
this test out (marker `another_team`), so the copy does not run it again and a team's Build never
pays for it; `make test` runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import FIXTURE_CONTEXT, ROOT

# Nothing here equals cdk.json's example or the test fixture's values.
ANOTHER_TEAM = {
    "serviceName": "ledger",
    "repository": "globex/ledger",
    "branch": "trunk",
    "connectionArn": "arn:aws:codeconnections:us-east-2:700000000001:connection/"
    "9b2f4e1a-7c3d-4e5f-8a9b-0c1d2e3f4a5b",
    "pipelineAccount": "700000000001",
    "pipelineRegion": "us-east-2",
    "stagingAccount": "700000000002",
    "stagingRegion": "us-east-2",
    "productionAccount": "700000000003",
    "productionRegion": "us-east-2",
    "releaseManagerEmails": ["release@globex.test"],
    "notificationEmails": ["ledger@globex.test"],
    "approverPrincipals": ["arn:aws:iam::700000000001:role/LedgerReleaseManagers"],
    "reviewUrl": "https://bitbucket.org/globex/ledger/commits/{commitId}",
    "bootstrapQualifier": "globex01",
}
TOOLS = (".venv", "node_modules")
# Old enough that Make never finds the copied requirement files newer than the shared installs.
COPY_MTIME = 946684800  # 2000-01-01


def _copy_repository(destination: Path) -> None:
    """Tracked and new (not ignored) files, as a fresh clone plus the work in progress would have."""
    listed = subprocess.run(  # noqa: S603,S607 - fixed arguments
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            os.utime(target, (COPY_MTIME, COPY_MTIME))
    for tool in TOOLS:
        (destination / tool).symlink_to((ROOT / tool).resolve())


def _with_team_values(destination: Path) -> None:
    cdk_json = json.loads((destination / "cdk.json").read_text())
    cdk_json["context"].update(ANOTHER_TEAM)
    (destination / "cdk.json").write_text(json.dumps(cdk_json, indent=2))


def _strings(context: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for value in context.values():
        found |= {str(item) for item in value} if isinstance(value, list) else {str(value)}
    return found


def _clean_environment() -> dict[str, str]:
    """This run's coverage and pytest settings must not leak into the copy's own runs."""
    leaking = ("COV_CORE_", "COVERAGE_", "PYTEST_")
    return {key: value for key, value in os.environ.items() if not key.startswith(leaking)}


@pytest.mark.another_team
@pytest.mark.timeout(900)
def test_make_check_and_synth_pass_with_another_teams_values(tmp_path: Path) -> None:
    assert _strings(ANOTHER_TEAM).isdisjoint(_strings(FIXTURE_CONTEXT))
    copy = tmp_path / "repository"
    _copy_repository(copy)
    _with_team_values(copy)
    result = subprocess.run(  # noqa: S603,S607 - fixed arguments
        ["make", "check", "synth"],
        cwd=copy,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    template = json.loads((copy / "cdk.out" / "Pipeline.template.json").read_text())
    assert template["Parameters"]["BootstrapVersion"]["Default"] == "/cdk-bootstrap/globex01/version"
    assert "ledger-release" in json.dumps(template)
