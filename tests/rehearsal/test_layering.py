"""The rehearsal's parts import only downwards: cli → deploy → release → runtime → cloud → alarms → base.

Ports and adapters: `release` declares the deployer port it needs (`release/deploy_port.py`) and
never imports `deploy`; the local deployer in `deploy` implements that port; `cli` wires them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "rehearsal"
# Highest first: a part may import itself and any part after it, never one before it.
LAYERS = ("cli", "deploy", "release", "runtime", "cloud", "alarms", "base")


def _part_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "rehearsal":
        return None
    return parts[1] if len(parts) > 1 else ""


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names if node.module == "rehearsal")
    return names


def _upward_imports() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) == 1:  # rehearsal/__init__.py and __main__.py sit above every part
            continue
        importer = relative.parts[0]
        for module in _imported_modules(path):
            imported = _part_of(module)
            if imported and LAYERS.index(imported) < LAYERS.index(importer):
                found.append(f"{relative} imports {module}")
    return found


def test_every_module_of_the_rehearsal_belongs_to_a_named_part() -> None:
    folders = {path.relative_to(PACKAGE).parts[0] for path in PACKAGE.rglob("*.py")}
    assert folders - {"__init__.py", "__main__.py"} == set(LAYERS)


def test_no_part_of_the_rehearsal_imports_a_part_above_it() -> None:
    assert _upward_imports() == []


def test_the_layering_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "example.py"
    module.write_text("from rehearsal.release.runner import ReleaseRunner\nimport rehearsal.cli.main\n")
    assert [_part_of(name) for name in _imported_modules(module)] == ["release", "cli"]
