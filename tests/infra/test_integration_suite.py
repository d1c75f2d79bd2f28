"""The integration suite as the pipeline runs it: it installs requirements-integration.txt only
(enough, and no more), and every test states a worst-case wait on AWS of at most two minutes.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests.infra.conftest import ROOT
from tests.integration.conftest import MAX_AWS_WAIT_SECONDS, wait_budget

INTEGRATION_FILES = [ROOT / "tests" / "conftest.py", *sorted((ROOT / "tests" / "integration").glob("*.py"))]
_PIN = re.compile(r"^([A-Za-z0-9_.\-\[\],]+)==(\S+)$")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[_normal(match.group(1).split("[")[0])] = match.group(2)
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_level_imports(path: Path) -> set[str]:
    """Top-level modules imported at module level (imports inside functions run only offline)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_integration_pins_are_the_same_as_the_full_environments() -> None:
    full = _pins(ROOT / "requirements.txt")
    small = _pins(ROOT / "requirements-integration.txt")
    assert small
    assert {name: full.get(name) for name in small} == small


def test_integration_requirements_hold_every_dependency_of_what_they_list() -> None:
    small = _pins(ROOT / "requirements-integration.txt")
    missing = set()
    for name in small:
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                missing |= {_normal(requirement.name)} - set(small)
    assert missing == set()


def test_integration_requirements_cover_what_the_integration_tests_import() -> None:
    distributions = importlib.metadata.packages_distributions()
    small = set(_pins(ROOT / "requirements-integration.txt"))
    needed = set()
    for path in INTEGRATION_FILES:
        for module in _module_level_imports(path) - set(sys.stdlib_module_names) - {"__future__", "tests"}:
            assert module in distributions, (
                f"{path.name} imports {module}, which no installed package provides"
            )
            needed |= {_normal(name) for name in distributions[module]}
    assert needed - small == set()


def test_integration_requirements_leave_out_the_build_tools() -> None:
    small = set(_pins(ROOT / "requirements-integration.txt"))
    assert small.isdisjoint({"aws-cdk-lib", "cdk-nag", "mypy", "moto", "aws-sam-cli", "cfn-lint", "ruff"})


@dataclass
class _Item:
    """Just enough of a pytest item for wait_budget."""

    nodeid: str
    marker: Any

    def get_closest_marker(self, name: str) -> Any:
        return self.marker if name == "aws_wait" else None


def test_a_test_without_a_stated_wait_is_refused() -> None:
    with pytest.raises(pytest.UsageError, match="does not state its worst-case wait on AWS"):
        wait_budget(_Item("t", None))  # type: ignore[arg-type]


def test_a_test_that_may_wait_over_two_minutes_is_refused() -> None:
    marker = SimpleNamespace(kwargs={"seconds": MAX_AWS_WAIT_SECONDS + 1})
    with pytest.raises(pytest.UsageError, match="keep it at most 120 s or make it offline_only"):
        wait_budget(_Item("t", marker))  # type: ignore[arg-type]


def test_against_aws_every_integration_test_is_held_to_its_stated_wait() -> None:
    listed = subprocess.run(  # fixed arguments
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration",
            "--base-url",
            "https://api.invalid/v1",
        ],
        cwd=ROOT,
        # Collecting runs none of our code: no coverage (`patch = subprocess`) in this process.
        env={key: value for key, value in os.environ.items() if not key.startswith("COVERAGE_")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "test_a_submitted_order_is_accepted" in listed.stdout
    assert "test_a_poison_message_ends_in_the_dead_letter_queue" not in listed.stdout
    assert "deselected" in listed.stdout
