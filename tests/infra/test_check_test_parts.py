"""The Build's two test processes (`make check-tests`, ADR 0066) between them run every unit and infra
test module exactly once."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import CDK_MODULES, PARTS, TESTS, pytest_ignore_collect

MODULES = sorted((TESTS / "unit").glob("test_*.py")) + sorted((TESTS / "infra").glob("test_*.py"))


def _parts_collecting(path: Path) -> list[str]:
    def collects(part: str | None) -> bool:
        config = SimpleNamespace(getoption=lambda name, default=None: part)
        return pytest_ignore_collect(path, config) is None  # type: ignore[arg-type]

    assert collects(None), "without --part, pytest collects every module"
    return [part for part in PARTS if collects(part)]


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.relative_to(TESTS).as_posix())
def test_each_module_is_collected_by_exactly_one_part(path: Path) -> None:
    expected = ["cdk"] if path.relative_to(TESTS).as_posix() in CDK_MODULES else ["others"]
    assert _parts_collecting(path) == expected


def test_helpers_and_conftests_stay_importable_in_both_parts() -> None:
    for module in ("conftest.py", "infra/conftest.py", "infra/cross_account_support.py"):
        assert _parts_collecting(TESTS / module) == list(PARTS)


def test_every_module_named_as_driving_the_cdk_exists() -> None:
    assert sorted(m for m in CDK_MODULES if not (TESTS / m).is_file()) == []
