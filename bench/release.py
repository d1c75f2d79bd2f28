"""A good release end to end (`python -m rehearsal release`, APPROVE=auto) on a throw-away copy.

The working tree (not only HEAD: the rehearsal is being finished in it) is copied to a temporary
folder with its file times kept, `.venv` and `node_modules` linked rather than copied, and
committed as one commit there, so the release sees a clean tree and the shared checkout's
`.rehearsal/` state is never touched. The links serve the rehearsal itself and the first offline
`make deploy` (the developer's machine); the release's builds never see them: each runs its own
`make install` against the project's build cache (ADR 0058). The issue measures with warm caches:
a run in which a build missed its cache is reported as a warm-up and one more run is made. A release
that does not succeed is reported as not measured, with its reason: never a made-up figure.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.figures import Figure
from bench.processes import REPO, Processes, progress

TARGET_S = 90.0
_NOT_COPIED = (
    ".git", ".venv", "node_modules", "cdk.out", ".rehearsal", ".aws-sam", "reports",
    "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".coverage*",
)  # fmt: skip


def _throwaway_clone(processes: Processes, into: Path) -> Path:
    clone = into / "repo"
    shutil.copytree(REPO, clone, ignore=shutil.ignore_patterns(*_NOT_COPIED), symlinks=True)
    for shared in (".venv", "node_modules"):
        (clone / shared).symlink_to(REPO / shared)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    steps = (
        [*git, "init", "--quiet", "--initial-branch=main"],
        [*git, "add", "--all"],
        [*git, "commit", "--quiet", "--no-verify", "-m", "bench: snapshot of the working tree"],
    )
    for argv in steps:
        result = processes.run(argv, cwd=clone)
        if result.returncode != 0:
            raise RuntimeError(f"git {argv[5]} failed in the clone: {result.last_line}")
        if argv[5] == "init":
            # The links are this machine's, not the commit's (.gitignore's `.venv/` matches folders only).
            with (clone / ".git" / "info" / "exclude").open("a") as exclude:
                exclude.write("/.venv\n/node_modules\n")
    # The shared venv must never be reinstalled from the clone: its stamps must be up to date there.
    if processes.run(["make", "--question", "install"], cwd=clone).returncode != 0:
        raise RuntimeError("make install is not up to date in the clone; it would reinstall the shared .venv")
    return clone


def _summary(clone: Path) -> dict[str, Any] | None:
    path = clone / ".rehearsal" / "runs" / "latest" / "summary.json"
    if not path.is_file():
        return None
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def build_cache_hit(clone: Path) -> bool:
    """Whether every build of the latest release found its virtualenv in its project's build cache."""
    logs = clone / ".rehearsal" / "runs" / "latest" / "logs"
    texts = [log.read_text(errors="replace") for log in logs.glob("*.log")]
    return any("cached virtualenv" in text for text in texts) and not any(
        "(not in the build cache" in text for text in texts
    )


def _one_release(processes: Processes, clone: Path, timeout: float) -> tuple[float, str]:
    """(seconds, "") for a release that reached production, else (seconds, why it did not)."""
    env = {**os.environ, "APPROVE": "auto"}
    env.pop("ALLOW_DIRTY", None)
    result = processes.run(
        [sys.executable, "-m", "rehearsal", "release", "--approve", "auto"],
        cwd=clone,
        env=env,
        timeout=timeout,
    )
    (clone.parent / "release.log").write_text(result.output)
    summary = _summary(clone) or {}
    if result.returncode == 0 and summary.get("result") == "Succeeded":
        return result.seconds, ""
    stage = summary.get("failed_stage")
    where = f"failed at {stage}" if stage else f"exited {result.returncode}"
    said = [line.strip() for line in result.output.splitlines() if line.strip().startswith("failed at")]
    reason = said[-1] if said else result.last_line
    return result.seconds, f"the release {where} after {result.seconds:.0f} s: {reason}"


def measure_release(processes: Processes, runs: int, timeout: float = 300.0) -> list[Figure]:
    good = Figure(name="good release, push to production", unit="s", target=TARGET_S)
    faulty = Figure(name="faulty release rolled back", unit="canary interval", target=1.0)
    if not (REPO / "rehearsal" / "cli" / "release.py").is_file():
        good.not_measured = faulty.not_measured = "rehearsal/cli/release.py does not exist yet"
        return [good, faulty]
    warm_ups: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-release-") as folder:
        try:
            progress("release: copying the working tree to a throw-away repository")
            clone = _throwaway_clone(processes, Path(folder))
            while len(good.runs) < runs:
                progress(f"release: run {len(good.runs) + 1}/{runs} (APPROVE=auto, up to {timeout:.0f} s)")
                shutil.rmtree(clone / ".rehearsal", ignore_errors=True)
                seconds, failure = _one_release(processes, clone, timeout)
                if failure:
                    good.not_measured = failure
                    break
                if not build_cache_hit(clone) and not warm_ups:
                    warm_ups.append(seconds)  # a build cache was cold: that run filled it
                    continue
                good.runs.append(seconds)
        except RuntimeError as error:
            good.not_measured = str(error)
    warm_up = f"; a warm-up run filled the build cache ({warm_ups[0]:.0f} s)" if warm_ups else ""
    good.note = (
        "fresh state per run (staging and production created by the release itself); "
        f"each Build ran its own make install from the project's build cache{warm_up}"
    )
    faulty.not_measured = (
        "needs a good release first" if good.not_measured else "left undone: no faulty-commit scenario yet"
    )
    return [good, faulty]
