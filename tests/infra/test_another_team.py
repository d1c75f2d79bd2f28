"""Another team's clone: `make init` with its values, then the Build's `make check` and `make synth`, on a
copy of this repository (three accounts, another region, branch, bootstrap qualifier and service name).

Cost: one `make check` + `make synth` (about two minutes on 2 cores). The copy reuses this
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
    listed = subprocess.run(  # fixed arguments
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


def _init_flags(values: dict[str, Any]) -> str:
    """`make init`'s flags for `values` (cdk.json keys), as INIT_ARGS."""
    flags = ["--non-interactive"]
    for key, value in values.items():
        flag = "".join(f"-{c.lower()}" if c.isupper() else c for c in key)
        flags.append(f"--{flag}={','.join(value) if isinstance(value, list) else value}")
    return " ".join(flags)


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
def test_make_init_then_make_check_and_synth_pass_with_another_teams_values(tmp_path: Path) -> None:
    assert _strings(ANOTHER_TEAM).isdisjoint(_strings(FIXTURE_CONTEXT))
    copy = tmp_path / "repository"
    _copy_repository(copy)
    for command in (["make", "init", f"INIT_ARGS={_init_flags(ANOTHER_TEAM)}"], ["make", "check", "synth"]):
        result = subprocess.run(  # fixed arguments
            command, cwd=copy, env=_clean_environment(), capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{command}:\n{(result.stdout + result.stderr)[-4000:]}"
    context = json.loads((copy / "cdk.json").read_text())["context"]
    assert {key: context[key] for key in ANOTHER_TEAM} == ANOTHER_TEAM
    template = json.dumps(json.loads((copy / "cdk.out" / "Pipeline.template.json").read_text()))
    assert "/cdk-bootstrap/globex01/version" in template
    assert "ledger-release" in template
    assert "ledger-production" in template
    assert "ledger-attachments-" in (copy / "service/template.yaml").read_text()
    readme = (copy / "README.md").read_text()
    assert readme.startswith("# ledger\n")
    assert "ledger-production" in readme  # make init redrew the pipeline diagram
