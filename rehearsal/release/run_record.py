"""What a release leaves behind and shows: live progress, the run record, the summary table, the state.

A run's folder (`.rehearsal/runs/<id>/`, see base/layout.py for the rest of `.rehearsal/`):
  summary.json                  result (InProgress, Succeeded, Failed, or Interrupted: its runner died),
                                failed_stage, stages and actions, approvals, environments, notes,
                                not_emulated ({what, where, why} per fact this run only stood in for),
                                alarm_evidence (per alarm a canary or bake watched: judged with data or not)
  logs/<Stage>.<Action>.log     one log per action (a restarted release keeps logs-attempt-N/)
  artifacts/<name>/             the run's artifact store
  reports/<action>/             report files the buildspecs named
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TextIO

from rehearsal.alarms.evaluator import AlarmEvidence
from rehearsal.base.aws import RELEASE_ENVIRONMENTS
from rehearsal.base.clock import timestamp
from rehearsal.base.layout import StateLayout
from rehearsal.release.fidelity import NotEmulatedLog, render_not_emulated

SUCCEEDED = "Succeeded"
FAILED = "Failed"
IN_PROGRESS = "InProgress"
# A run whose runner died (SIGKILL, a crash, a power cut): found "InProgress" by the next start.
INTERRUPTED = "Interrupted"


@dataclass
class ActionResult:
    stage: str
    action: str
    kind: str
    state: str = IN_PROGRESS
    elapsed: float = 0.0
    message: str = ""
    log: str = ""
    alarm: str | None = None


@dataclass
class StageResult:
    name: str
    state: str = IN_PROGRESS
    actions: list[ActionResult] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class EnvironmentRecord:
    """What an environment serves at 100% after a release: `state.json` and `summary.json` keep this."""

    commit: str
    run_id: str
    stack: str
    at: str  # base.clock.timestamp()


@dataclass(kw_only=True)
class ReleaseState:
    """`.rehearsal/state.json`: per environment, the release serving all of its traffic (across runs)."""

    state_dir: Path
    environments: dict[str, EnvironmentRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> ReleaseState:
        path = StateLayout(root=state_dir).state_file
        document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        known = {f.name for f in fields(EnvironmentRecord)}
        return cls(
            state_dir=state_dir,
            environments={
                name: EnvironmentRecord(**{k: v for k, v in entry.items() if k in known})
                for name, entry in (document.get("environments") or {}).items()
            },
        )

    def serve(self, environment: str, record: EnvironmentRecord | None) -> None:
        """Record what `environment` serves now (None: nothing), and save it at once."""
        if record is None:
            self.environments.pop(environment, None)
        else:
            self.environments[environment] = record
        _write_json(StateLayout(root=self.state_dir).state_file, {"environments": self._as_json()})

    def view(self) -> dict[str, Any]:
        """Every environment, staging and production always present (commit None if never deployed)."""
        view: dict[str, Any] = {name: {"commit": None} for name in RELEASE_ENVIRONMENTS}
        view.update(self._as_json())
        return view

    def _as_json(self) -> dict[str, Any]:
        return {name: asdict(record) for name, record in self.environments.items()}


@dataclass(frozen=True, kw_only=True)
class ApprovalEntry:
    stage: str
    action: str
    approved: bool
    by: str
    at: str
    comment: str
    via: str  # "APPROVE=auto", "prompt", "make approve", ...


class AlarmEvidenceLog:
    """Per watched alarm, in the order actions reported them: did it judge the new version with data."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[AlarmEvidence] = []

    def add(self, evidence: tuple[AlarmEvidence, ...], *, where: str) -> None:
        with self._lock:
            self._items.extend(replace(item, where=where) for item in evidence)

    def __deepcopy__(self, memo: dict[int, object]) -> AlarmEvidenceLog:
        return self  # shared, not copied, by dataclasses.asdict (as NotEmulatedLog)

    def items(self) -> list[AlarmEvidence]:
        with self._lock:
            return list(self._items)


@dataclass(kw_only=True)
class RunSummary:
    """`summary.json`: one release as it goes; every part writes its field here, never a string key."""

    run_id: str
    commit: str
    branch: str
    commit_message: str
    record: str  # the run's folder
    started_at: str = field(default_factory=timestamp)
    result: str = IN_PROGRESS
    failed_stage: str | None = None
    failed_action: str | None = None
    alarm: str | None = None  # the alarm that failed the release, if one did
    message: str = ""
    ended_at: str | None = None
    # {"stack", "stages", "account", "region", "environments": {name: {"account", "region"}}}: what ran, where
    pipeline: dict[str, Any] | None = None
    restarts: list[dict[str, Any]] = field(default_factory=list)  # {"changes": [...]} per restart
    approvals: list[ApprovalEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    environments: dict[str, Any] = field(default_factory=dict)  # ReleaseState.view() at the end
    not_emulated: NotEmulatedLog = field(default_factory=NotEmulatedLog, repr=False)
    alarm_evidence: AlarmEvidenceLog = field(default_factory=AlarmEvidenceLog, repr=False)

    def as_json(self, stages: list[StageResult]) -> dict[str, Any]:
        document = asdict(self)
        document["not_emulated"] = [asdict(fact) for fact in self.not_emulated.facts()]
        document["alarm_evidence"] = [asdict(item) for item in self.alarm_evidence.items()]
        document["stages"] = [
            {"name": s.name, "state": s.state, "actions": [asdict(a) for a in s.actions]} for s in stages
        ]
        return document


class RunRecord:
    def __init__(self, state_dir: Path, summary: RunSummary) -> None:
        self.state_dir = state_dir
        self.run_id = summary.run_id
        layout = StateLayout(root=state_dir)
        self.directory = layout.run(self.run_id)
        self.directory.mkdir(parents=True, exist_ok=False)
        self.logs = self.directory / "logs"
        self.logs.mkdir()
        self.artifacts = self.directory / "artifacts"
        self.reports = self.directory / "reports"
        self.workspaces = self.directory / "workspaces"
        self.summary = summary
        self.stages: list[StageResult] = []
        self._writing = threading.Lock()  # actions of one runOrder run in threads and each writes
        self.write()
        _point_latest(layout.runs, self.run_id)

    def log_path(self, stage: str, action: str) -> Path:
        return self.logs / f"{_safe(stage)}.{_safe(action)}.log"

    def start_attempt(self, attempt: int) -> None:
        """A restart on a new pipeline definition keeps the first attempt's logs beside the new ones."""
        if attempt > 1:
            self.logs.rename(self.directory / f"logs-attempt-{attempt - 1}")
            self.logs.mkdir()
        self.stages = []

    def stage(self, name: str) -> StageResult:
        result = StageResult(name)
        self.stages.append(result)
        return result

    def as_json(self) -> dict[str, Any]:
        return self.summary.as_json(self.stages)

    def write(self) -> None:
        with self._writing:
            _write_json(self.directory / "summary.json", self.as_json())

    def finish(
        self, *, result: str, failed_stage: str | None, message: str, environments: dict[str, Any]
    ) -> None:
        summary = self.summary
        summary.result, summary.failed_stage, summary.message = result, failed_stage, message
        summary.ended_at, summary.environments = timestamp(), environments
        for action in (a for s in self.stages for a in s.actions if a.state == IN_PROGRESS):
            action.state, action.message = FAILED, message
        failed = [a for s in self.stages for a in s.actions if a.state == FAILED]
        summary.failed_action = failed[-1].action if failed else None
        summary.alarm = next((a.alarm for a in reversed(failed) if a.alarm), None)
        for stage in self.stages:
            if stage.state == IN_PROGRESS:
                stage.state = FAILED if result == FAILED else SUCCEEDED
        self.write()


def latest_summary(state_dir: Path) -> dict[str, Any] | None:
    path = StateLayout(root=state_dir).latest_summary
    if not path.is_file():
        return None
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return summary


@dataclass(frozen=True, kw_only=True)
class InterruptedRun:
    """The run a killed runner left "InProgress", as the next start closed it."""

    run_id: str
    stage: str | None  # where it stood: the stage and action still in progress
    action: str | None


def close_interrupted_run(state_dir: Path, *, message: str) -> InterruptedRun | None:
    """Mark the latest run `Interrupted` if it is still "InProgress" (call with the release lock held:
    then no runner is writing it). Its unfinished actions and stages fail with `message`."""
    path = StateLayout(root=state_dir).latest_summary
    if not path.is_file():
        return None
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if summary.get("result") != IN_PROGRESS:
        return None
    stage, action = None, None
    for stage_entry in summary.get("stages") or []:
        for entry in stage_entry.get("actions") or []:
            if entry.get("state") == IN_PROGRESS:
                stage, action = stage_entry.get("name"), entry.get("action")
                entry["state"], entry["message"] = FAILED, message
        if stage_entry.get("state") == IN_PROGRESS:
            stage = stage or stage_entry.get("name")
            stage_entry["state"] = FAILED
    summary.update(
        result=INTERRUPTED,
        failed_stage=stage,
        failed_action=action,
        message=message,
        ended_at=timestamp(),
        environments=ReleaseState.load(state_dir).view(),
    )
    _write_json(path.resolve(), summary)
    return InterruptedRun(run_id=str(summary.get("run_id")), stage=stage, action=action)


_OUTPUT = threading.Lock()


class Progress:
    """Console lines like the CodePipeline console: stage, action, state and elapsed time."""

    def __init__(self, out: TextIO | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.started = clock()
        self.stage_width = 15
        self.action_width = 24

    def fit(self, stages: list[str], actions: list[str]) -> None:
        """Size the columns to the pipeline's longest stage and action names."""
        self.stage_width = max([15, *map(len, stages)])
        self.action_width = max([24, *map(len, actions)])

    def line(self, text: str) -> None:
        if self.out is None:
            return
        elapsed = int(self.clock() - self.started)
        with _OUTPUT:  # parallel actions: one whole line at a time
            self.out.write(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}\n")
            self.out.flush()

    def action(self, result: ActionResult) -> None:
        timing = f"{result.elapsed:6.1f}s" if result.state != IN_PROGRESS else " " * 7
        detail = f"  {result.message}" if result.state == FAILED and result.message else ""
        stage, action = result.stage.ljust(self.stage_width), result.action.ljust(self.action_width)
        self.line(f"{stage} {action} {result.state:<10} {timing}{detail}")

    def text(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text)
            self.out.flush()


def render_summary(summary: dict[str, Any]) -> str:
    """The table printed at the end of a release and by `status`."""
    rows = [("Stage", "Action", "State", "Elapsed", "Detail")]
    for stage in summary.get("stages") or ():
        for action in stage.get("actions") or ():
            detail = action.get("message", "") if action.get("state") != SUCCEEDED else ""
            rows.append(
                (
                    stage["name"],
                    action["action"],
                    action["state"],
                    f"{action.get('elapsed', 0.0):.1f}s",
                    detail,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows
    ]
    lines = [line.rstrip() for line in lines]
    lines.insert(1, "  ".join("-" * w for w in widths))
    environments = summary.get("environments") or {}
    serving = ", ".join(
        f"{name} {(env.get('commit') or 'nothing')[:12]}" for name, env in sorted(environments.items())
    )
    lines.append("")
    lines.append(
        f"Release {summary.get('run_id')} of {str(summary.get('commit', ''))[:12]}: {summary.get('result')}"
    )
    if summary.get("failed_stage"):
        lines.append(f"  failed at {summary['failed_stage']}: {summary.get('message', '')}")
    if serving:
        lines.append(f"  serving 100%: {serving}")
    lines += render_not_emulated(summary.get("not_emulated") or [])
    lines += _render_alarm_evidence(summary.get("alarm_evidence") or [])
    lines.append(f"  record: {summary.get('record', '')}")
    return "\n".join(lines) + "\n"


def _render_alarm_evidence(evidence: list[dict[str, Any]]) -> list[str]:
    """One line per action whose watched alarms judged (some) without data: evidence that was missing."""
    without: dict[str, list[str]] = {}
    for item in evidence:
        if not item.get("with_data"):
            without.setdefault(str(item.get("where", "")), []).append(str(item.get("alarm", "")))
    return [
        f"  judged without data at {where}: {len(alarms)} alarms (summary.json alarm_evidence)"
        for where, alarms in without.items()
    ]


def _point_latest(runs: Path, run_id: str) -> None:
    link = runs / "latest"
    temporary = runs / f".latest-{os.getpid()}"
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(run_id)
    temporary.replace(link)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    temporary.replace(path)
