"""Another team's clone: `make init` with its values, then the tests that read them and `make synth`, on a
copy of this repository (three accounts, another region, branch, bootstrap qualifier and service name).

`make init` writes cdk.json, README.md and service/template.yaml only. Of what the Build's `make check`
runs, lint, types and bandit read Python files alone, and the unit tests neither read those files nor
import pipeline/ or rehearsal/ (both asserted below): on the copy they would repeat what `make test`
ran on identical inputs. So the copy runs tests/infra (CDK assertions, SAM transform, cfn-lint,
cdk-nag: everything that reads the values) and `make synth`, in about a minute on 2 cores. It reuses
this checkout's .venv and node_modules through symlinks. `make check` leaves this test out (marker
`another_team`), so a team's Build never pays for it; `make test` runs it.
"""

from __future__ import annotations

import json
import os
import re
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


def _listed() -> list[str]:
    """Tracked and new (not ignored) files, as a fresh clone plus the work in progress would have."""
    listed = subprocess.run(  # fixed arguments
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return [name for name in listed.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


def _copy_repository(destination: Path) -> None:
    for name in _listed():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
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


def _run(command: list[str], copy: Path) -> None:
    result = subprocess.run(  # fixed arguments
        command, cwd=copy, env=_clean_environment(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{command}:\n{(result.stdout + result.stderr)[-4000:]}"


def _changed_by_init(copy: Path) -> set[str]:
    return {name for name in _listed() if (copy / name).read_bytes() != (ROOT / name).read_bytes()}


def _unit_tests_read_none_of(copy: Path, changed: set[str]) -> list[str]:
    """Why the unit tests could depend on the values, if they could: empty when they cannot."""
    reasons = []
    for test in sorted((copy / "tests" / "unit").rglob("*.py")):
        text = test.read_text(encoding="utf-8")
        for name in changed:  # a path in code is a quoted string ending in the file's name
            if re.search(rf"""["'][^"'\n]*{re.escape(Path(name).name)}["']""", text):
                reasons.append(f"{test.name} names {Path(name).name}")
        reasons += [
            f"{test.name} imports {part}" for part in ("pipeline", "rehearsal") if f"from {part}" in text
        ]
    return reasons


@pytest.mark.another_team
@pytest.mark.timeout(900)
def test_make_init_then_the_tests_reading_its_values_and_synth_pass_with_another_teams_values(
    tmp_path: Path,
) -> None:
    assert _strings(ANOTHER_TEAM).isdisjoint(_strings(FIXTURE_CONTEXT))
    copy = tmp_path / "repository"
    _copy_repository(copy)
    _run(["make", "init", f"INIT_ARGS={_init_flags(ANOTHER_TEAM)}"], copy)
    changed = _changed_by_init(copy)
    assert changed == {"cdk.json", "README.md", "service/template.yaml"}, changed
    assert _unit_tests_read_none_of(copy, changed) == []
    _run(
        [".venv/bin/pytest", "-p", "no:cacheprovider", "--no-cov", "-m", "not another_team", "tests/infra"],
        copy,
    )
    _run(["make", "synth"], copy)
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
