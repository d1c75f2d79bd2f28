"""Releases end to end (`python -m rehearsal release`, APPROVE=auto) on a throw-away copy.

The working tree (not only HEAD: the rehearsal is being finished in it) is copied to a temporary
folder with its file times kept, `.venv` and `node_modules` linked rather than copied, and
committed as one commit there, so the release sees a clean tree and the shared checkout's
`.rehearsal/` state is never touched. The links serve the rehearsal itself and the first offline
`make deploy` (the developer's machine); the release's builds never see them: each runs its own
`make install` against the project's build cache (ADR 0058). A first release creates staging and
production and fills the build cache (a warm-up, reported, not a figure: the issue measures with
warm caches). Then:
- good release: a commit that changes the service's code, released through both canaries to
  production, as every release after a team's first;
- faulty release: a commit whose SubmitOrder handler raises on published versions only (unit tests
  pass), which staging's canary must roll back; the figure is the time from the shift's start to the
  rollback, in staging's canary intervals (both read from the deploy log).
A release that does not end as expected is reported as not measured, with its reason: never a
made-up figure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.figures import Figure
from bench.processes import REPO, Completed, Processes, progress

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
    _git(processes, clone, "init", "--quiet", "--initial-branch=main")
    # The links are this machine's, not the commit's (.gitignore's `.venv/` matches folders only).
    with (clone / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("/.venv\n/node_modules\n")
    _commit(processes, clone, "bench: snapshot of the working tree")
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
    result = _release(processes, clone, timeout)
    summary = _summary(clone) or {}
    if result.returncode == 0 and summary.get("result") == "Succeeded":
        return result.seconds, ""
    return result.seconds, _why(result, summary)


def _release(processes: Processes, clone: Path, timeout: float) -> Completed:
    env = {**os.environ, "APPROVE": "auto"}
    env.pop("ALLOW_DIRTY", None)
    result = processes.run(
        [sys.executable, "-m", "rehearsal", "release", "--approve", "auto"],
        cwd=clone,
        env=env,
        timeout=timeout,
    )
    (clone.parent / "release.log").write_text(result.output)
    return result


def _why(result: Completed, summary: dict[str, Any]) -> str:
    stage = summary.get("failed_stage")
    where = f"failed at {stage}" if stage else f"exited {result.returncode}"
    said = [line.strip() for line in result.output.splitlines() if line.strip().startswith("failed at")]
    reason = said[-1] if said else result.last_line
    return f"the release {where} after {result.seconds:.0f} s: {reason}"


# A change every good release makes: the service's code, so each function gets a new version and a canary.
CHANGED_FILE = "service/src/orders/handlers/status.py"
_RELEASE_MARK = re.compile(r"\n\n# bench: release \d+\n$")
# The fault: SubmitOrder raises on a published version only, so the Build's checks and unit tests pass.
FAULT_FILE = "service/src/orders/handlers/submit.py"
FAULT_IMPORT = ("from typing import Any\n", "import os\nfrom typing import Any\n")
FAULT_ANCHOR = "    order_request = parse_order_request(request.json_body())\n"
FAULT_LINES = (
    '    if os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST") != "$LATEST":\n'
    '        raise RuntimeError("bench: fault {run}")\n'
)
_SHIFT = re.compile(r"^Shifting .*: (?P<minutes>[\d.]+) pipeline minutes = (?P<seconds>[\d.]+) s;", re.M)
_ROLLBACK = re.compile(r"^Rolling back: (?P<alarm>\S+) is in ALARM after (?P<seconds>[\d.]+) s$", re.M)


def rollback_in_canary_intervals(deploy_log: str) -> tuple[float, str] | None:
    """(seconds from the shift's start to its rollback / the shift's canary interval in seconds, the
    alarm that fired), read from a deploy log; None when it shows no shift rolled back."""
    shift, rollback = _SHIFT.search(deploy_log), _ROLLBACK.search(deploy_log)
    if shift is None or rollback is None or float(shift["seconds"]) <= 0:
        return None
    return float(rollback["seconds"]) / float(shift["seconds"]), rollback["alarm"]


def _git(processes: Processes, clone: Path, *args: str) -> None:
    argv = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args]
    result = processes.run(argv, cwd=clone)
    if result.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed in the clone: {result.last_line}")


def _commit(processes: Processes, clone: Path, message: str) -> None:
    _git(processes, clone, "add", "--all")
    _git(processes, clone, "commit", "--quiet", "--no-verify", "-m", message)


def _edit(clone: Path, path: str, old: str, new: str) -> None:
    file = clone / path
    text = file.read_text(encoding="utf-8")
    if old not in text:
        raise RuntimeError(f"{path} no longer holds {old.strip()!r}: the bench's edit needs a new anchor")
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


def _good_run(processes: Processes, clone: Path, run: int, timeout: float) -> tuple[float, str]:
    file = clone / CHANGED_FILE
    code = _RELEASE_MARK.sub("", file.read_text(encoding="utf-8"))
    file.write_text(f"{code}\n\n# bench: release {run}\n", encoding="utf-8")  # as `ruff format` has it
    _commit(processes, clone, f"bench: release {run}")
    return _one_release(processes, clone, timeout)


def action_seconds(summary: dict[str, Any], total: float) -> dict[str, float]:
    """Each action's elapsed seconds in a release's summary ("Stage/Action"), and `other`: the rest of
    `total` (starting and stopping the local clouds and environments, the pipeline model)."""
    seconds = {
        f"{stage['name']}/{action['action']}": float(action.get("elapsed") or 0.0)
        for stage in summary.get("stages", [])
        for action in stage.get("actions", [])
    }
    seconds["other"] = max(total - sum(seconds.values()), 0.0)
    return seconds


def where_the_time_went(releases: list[dict[str, float]]) -> str:
    """The median of each action over the releases, the longest first, those of a second or more."""
    names = {name for release in releases for name in release}
    medians = {name: statistics.median(release.get(name, 0.0) for release in releases) for name in names}
    longest = sorted(((s, n) for n, s in medians.items() if s >= 1.0), reverse=True)
    return ", ".join(f"{name} {seconds:.1f} s" for seconds, name in longest)


def _faulty_run(processes: Processes, clone: Path, run: int, timeout: float) -> tuple[float, str]:
    """(canary intervals to the rollback, the alarm) of a faulty commit; raises saying why not."""
    fault_file = clone / FAULT_FILE
    good = fault_file.read_text(encoding="utf-8")
    _edit(clone, FAULT_FILE, *FAULT_IMPORT)
    _edit(clone, FAULT_FILE, FAULT_ANCHOR, FAULT_ANCHOR + FAULT_LINES.format(run=run))
    _commit(processes, clone, f"bench: faulty release {run}")
    result = _release(processes, clone, timeout)
    fault_file.write_text(good, encoding="utf-8")  # the next commit starts from the good code again
    summary = _summary(clone) or {}
    if summary.get("failed_stage") != "Staging" or not summary.get("alarm"):
        raise RuntimeError(f"the faulty release was not stopped by a staging alarm: {_why(result, summary)}")
    log = clone / ".rehearsal" / "runs" / "latest" / "logs" / "Staging.Service_Deploy.log"
    measured = rollback_in_canary_intervals(log.read_text(errors="replace")) if log.is_file() else None
    if measured is None:
        raise RuntimeError("the staging deploy log shows no shift rolled back to measure")
    return measured


def measure_release(
    processes: Processes, runs: int, timeout: float = 300.0, first_timeout: float = 900.0
) -> list[Figure]:
    """Each release gets `timeout`; the first, which may fill a cold build cache (the Build's own
    virtualenv, mypy's cache of the CDK types: minutes on a new machine), `first_timeout`."""
    good = Figure(name="good release, push to production", unit="s", target=TARGET_S)
    faulty = Figure(name="faulty release rolled back", unit="canary interval", target=1.0)
    if not (REPO / "rehearsal" / "cli" / "release.py").is_file():
        good.not_measured = faulty.not_measured = "rehearsal/cli/release.py does not exist yet"
        return [good, faulty]
    first, alarms = "", []
    spent: list[dict[str, float]] = []  # each good release's seconds per action
    with tempfile.TemporaryDirectory(prefix="bench-release-") as folder:
        try:
            progress("release: copying the working tree to a throw-away repository")
            clone = _throwaway_clone(processes, Path(folder))
            progress(f"release: first release, creating staging and production (up to {first_timeout:.0f} s)")
            seconds, failure = _one_release(processes, clone, first_timeout)
            if failure:
                raise RuntimeError(failure)
            cache = "with a warm build cache" if build_cache_hit(clone) else "filling the build cache"
            first = f"; the first release, creating both environments, took {seconds:.0f} s, {cache}"
            while len(good.runs) < runs:
                progress(f"release: good release {len(good.runs) + 1}/{runs} (through both canaries)")
                seconds, failure = _good_run(processes, clone, len(good.runs) + 1, timeout)
                if failure:
                    raise RuntimeError(failure)
                good.runs.append(seconds)
                spent.append(action_seconds(_summary(clone) or {}, seconds))
            while len(faulty.runs) < runs:
                progress(f"release: faulty release {len(faulty.runs) + 1}/{runs} (staging must roll it back)")
                intervals, alarm = _faulty_run(processes, clone, len(faulty.runs) + 1, timeout)
                faulty.runs.append(intervals)
                alarms.append(alarm)
        except RuntimeError as error:
            if len(good.runs) < runs:
                good.not_measured, faulty.not_measured = str(error), "needs the good releases first"
            else:
                faulty.not_measured = str(error)
    good.note = (
        "a commit changing the service's code, released over the last one: PreTraffic hooks and both "
        f"canaries; each Build ran its own make install from the project's build cache{first}"
    )
    if spent:
        good.note += f"; medians per action: {where_the_time_went(spent)}"
    if alarms:
        faulty.note = (
            "a commit whose SubmitOrder handler raises on published versions, rolled back by "
            f"{', '.join(sorted(set(alarms)))}; from the staging shift's start to the rollback"
        )
    return [good, faulty]
