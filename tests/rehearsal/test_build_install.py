"""In a build, `make install` links `.venv` to a virtualenv the build cache keeps per requirements hash.

CodeBuild's source folder changes per build and a virtualenv embeds its path, so the Makefile keeps
it in `$HOME/.cache/venvs` (ADR 0058). A cached one is reused only for the same requirements file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _build_install(source: Path, home: Path, requirements: str) -> str:
    source.mkdir()
    shutil.copy(ROOT / "Makefile", source / "Makefile")
    (source / "requirements.txt").write_text(requirements)
    environment = {
        "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p),
        "HOME": str(home),
        "CODEBUILD_BUILD_ID": "Build:1",
    }
    result = subprocess.run(  # fixed arguments: the Makefile's own stamp target
        ["make", ".venv/.installed"], cwd=source, env=environment, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_build_installs_a_virtualenv_once_per_requirements_hash_and_links_it(tmp_path: Path) -> None:
    home = tmp_path / "home"

    first = _build_install(tmp_path / "build1", home, "# no packages\n")
    second = _build_install(tmp_path / "build2", home, "# no packages\n")
    changed = _build_install(tmp_path / "build3", home, "# no packages, another file\n")

    cached = (tmp_path / "build1" / ".venv").resolve()
    assert cached.parent == home / ".cache" / "venvs" and cached.name.startswith("venv-")
    assert ".venv: installing requirements.txt" in first
    assert ".venv: cached virtualenv for requirements.txt" in second
    assert (tmp_path / "build2" / ".venv").resolve() == cached
    assert ".venv: installing requirements.txt" in changed
    assert (tmp_path / "build3" / ".venv").resolve() != cached
    assert (tmp_path / "build3" / ".venv" / ".installed").is_file()
