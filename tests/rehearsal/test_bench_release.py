"""`make bench` counts a release as warm only when every build found its virtualenv in the build cache."""

from __future__ import annotations

from pathlib import Path

from bench.release import build_cache_hit


def _logs(clone: Path, **logs: str) -> None:
    folder = clone / ".rehearsal" / "runs" / "latest" / "logs"
    folder.mkdir(parents=True)
    for name, text in logs.items():
        (folder / f"{name}.log").write_text(text)


def test_a_release_whose_builds_all_hit_the_cache_is_warm(tmp_path: Path) -> None:
    _logs(
        tmp_path,
        Build=".venv: cached virtualenv for requirements.txt (1b8f)\n",
        Tests=".venv-integration: cached virtualenv for requirements-integration.txt (b523)\n",
    )

    assert build_cache_hit(tmp_path)


def test_a_release_with_one_build_installing_is_a_warm_up(tmp_path: Path) -> None:
    _logs(
        tmp_path,
        Build=".venv: cached virtualenv for requirements.txt (1b8f)\n",
        Tests=".venv-integration: installing requirements-integration.txt into /h/venvs/x "
        "(not in the build cache: about 2 minutes)\n",
    )

    assert not build_cache_hit(tmp_path)
