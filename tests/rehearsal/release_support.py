"""Helpers for the release tests: a throw-away project repository, an in-memory deployer, a runner."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pytest

from rehearsal.alarms.evaluator import AlarmEvidence
from rehearsal.base.aws import RELEASE_ENVIRONMENTS, AccountRegion
from rehearsal.base.clock import TimeScale
from rehearsal.base.layout import StateLayout
from rehearsal.deploy.deployer import LocalDeployer
from rehearsal.deploy.release_store import ReleaseStore, SavedRelease
from rehearsal.release.approval_inbox import ApprovalGate, ApprovalInbox
from rehearsal.release.deploy_port import DeployRequest, Outcome, RecoveredEnvironment
from rehearsal.release.runner import ReleaseOptions, ReleaseResult, ReleaseRunner
from rehearsal.release.source import resolve_revision
from rehearsal.runtime.environment import LocalEnvironment
from tests.rehearsal.polling import wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "release"
ASSEMBLY = FIXTURES / "assembly"
FAULTY_MARKER = "faulty"


def run_git(repo: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Rel Manager", "-c", "user.email=rm@example.com", *arguments],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def make_project(root: Path) -> Path:
    """A committed repository whose Makefile stands in for the real targets the fixture pipeline calls."""
    repo = root / "project"
    shutil.copytree(FIXTURES / "project", repo)
    shutil.copytree(ASSEMBLY, repo / "pipeline-assembly")
    (repo / ".gitignore").write_text(".rehearsal/\ncdk.out/\npackage/\nreports/\n", encoding="utf-8")
    run_git(repo, "init", "--quiet", "--initial-branch=main")
    run_git(repo, "config", "user.name", "Rel Manager")
    run_git(repo, "config", "user.email", "rm@example.com")
    commit(repo, "initial service")
    return repo


def commit(repo: Path, message: str, files: Mapping[str, str] | None = None) -> str:
    for name, text in (files or {}).items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
    return run_git(repo, "rev-parse", "HEAD").strip()


@dataclass
class InMemoryDeployer:
    """The Deployer port without a cloud: a template containing `faulty` fails its canary on an alarm."""

    alarms_in_alarm: set[str] = field(default_factory=set)
    serving: dict[str, str] = field(default_factory=dict)
    previous: dict[str, str] = field(default_factory=dict)
    requests: list[DeployRequest] = field(default_factory=list)
    closed: bool = False
    build_places: list[AccountRegion] = field(default_factory=list)  # each build's, in order
    rule_places: list[AccountRegion] = field(default_factory=list)  # each rule's, in order

    def build_environment(self, place: AccountRegion | None = None) -> Mapping[str, str]:
        if place is not None:
            self.build_places.append(place)
        region = place.region if place is not None else "us-east-1"
        return {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": region}

    def start_ahead(self, environment: str) -> None:
        pass  # nothing to start: an environment here is its serving entry

    def deploy(self, request: DeployRequest) -> Outcome:
        self.requests.append(request)
        alarm = f"orders-{request.environment}-SubmitOrderErrors"
        if FAULTY_MARKER in request.template.read_text(encoding="utf-8"):
            request.log.write(f"canary: {alarm} in ALARM, traffic back to the old version\n")
            return Outcome.failed(f"rolled back: alarm {alarm} went to ALARM during the canary", alarm=alarm)
        if request.environment in self.serving:
            self.previous[request.environment] = self.serving[request.environment]
        self.serving[request.environment] = request.commit
        passed = Outcome.passed(
            "canary complete", outputs={"ApiUrl": f"http://127.0.0.1:1/{request.environment}"}
        )
        return dataclasses.replace(passed, alarm_evidence=(self.evidence(request.environment, "canary"),))

    @staticmethod
    def evidence(environment: str, watched: str) -> AlarmEvidence:
        """Staging has a traffic source, production none: its alarm judges without data."""
        with_data = environment == "staging"
        return AlarmEvidence(
            alarm=f"orders-{environment}-SubmitOrderErrors",
            environment=environment,
            watched=watched,
            evaluations=10,
            evaluations_with_data=7 if with_data else 0,
            with_data=with_data,
        )

    def evaluate_alarm_rule(
        self,
        *,
        environment: str | None,
        place: AccountRegion,
        alarm_name: str,
        wait_minutes: float,
        log: TextIO,
    ) -> Outcome:
        self.rule_places.append(place)
        if alarm_name in self.alarms_in_alarm:
            return Outcome.failed(f"alarm {alarm_name} went to ALARM during the bake")
        return Outcome.passed(f"alarm {alarm_name} stayed OK for {wait_minutes:g} minutes")

    def roll_back(self, *, environment: str, log: TextIO) -> Outcome:
        if environment in self.previous:
            self.serving[environment] = self.previous.pop(environment)
        else:
            self.serving.pop(environment, None)
        return Outcome.passed(f"{environment} rolled back")

    def alarms_published(self, *, log: TextIO) -> AbstractContextManager[list[AlarmEvidence]]:
        return contextlib.nullcontext([])

    def recover_interrupted(self) -> tuple[RecoveredEnvironment, ...]:
        return ()

    def close(self) -> None:
        self.closed = True


# The fixture pipeline's release-manager role and the identity its trust policy names.
RELEASE_MANAGER_ROLE = "arn:aws:iam::123456789012:role/OrdersPipeline-managers"
RELEASE_MANAGER = "arn:aws:iam::123456789012:user/ana"


def run_release(
    repo: Path,
    deployer: InMemoryDeployer,
    *,
    approve: str = "auto",
    reason: str = "",
    out: TextIO | None = None,
    allow_dirty: bool = False,
    approver: str | None = None,
) -> ReleaseResult:
    state_dir = repo / ".rehearsal"
    gate = ApprovalGate(ApprovalInbox(state_dir), mode=approve, approver=approver, reason=reason)
    runner = ReleaseRunner(
        ReleaseOptions(
            repo=repo,
            revision=resolve_revision(repo),
            state_dir=state_dir,
            allow_dirty=allow_dirty,
            out=out,
            # The project's own build cache: a build host of the machine's may be busy with another
            # test's build, or another checkout's (ADR 0058: a busy host means the next host).
            build_cache=repo.parent / "build-cache",
        ),
        deployer=deployer,
        approvals=gate,
    )
    return runner.run()


@contextlib.contextmanager
def release_running(repo: Path) -> Iterator[None]:
    """Hold the release lock as a running release does, for commands that answer it."""
    lock_path = repo / ".rehearsal" / "release.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ---------------------------------------------------------------- releases of this repository, offline

REPO = Path(__file__).resolve().parents[2]
# coverage's `patch = subprocess` measures child processes through this variable.
COVERAGE_SUBPROCESS_VARIABLE = "COVERAGE_PROCESS_CONFIG"
# The state a release reads besides git: the run records are left behind when the state is copied.
_NOT_COPIED = ("runs", "release.lock")


def project_copy(root: Path) -> Path:
    """The working tree's files (committed or not, never ignored ones) as a fresh repository."""
    repo = root / "project"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    for tools in (".venv", "node_modules"):  # ignored by git; the runner links them into workspaces
        (repo / tools).symlink_to(REPO / tools)
    run_git(repo, "init", "--quiet", "--initial-branch=main")
    # `.venv/` in .gitignore matches folders only, not these links.
    (repo / ".git" / "info" / "exclude").write_text(".venv\nnode_modules\n", encoding="utf-8")
    run_git(repo, "config", "user.name", "Rel Manager")
    run_git(repo, "config", "user.email", "rm@example.com")
    return repo


def copy_released_project(repo: Path, destination: Path) -> Path:
    """`repo` with its git history and its `.rehearsal/` state (not its run records), to release from."""
    copy = destination / "project"
    shutil.copytree(
        repo,
        copy,
        symlinks=True,
        ignore=lambda folder, names: [
            n for n in names if Path(folder).name == ".rehearsal" and n in _NOT_COPIED
        ],
    )
    return copy


@dataclass(frozen=True, kw_only=True)
class ServedAtEnd:
    """An environment as the release's deployer left it: the release it serves and its aliases."""

    commit: str
    aliases_at_start: dict[str, dict[str, float]]  # function -> `live` routing when the release started it
    aliases_at_end: dict[str, dict[str, float]]


class ObservedDeployer(LocalDeployer):
    """The local deployer, noting each environment's `live` aliases when it starts and when it stops."""

    def __init__(self, state_dir: Path, time_scale: TimeScale) -> None:
        super().__init__(state_dir, time_scale)
        self.at_start: dict[str, dict[str, dict[str, float]]] = {}
        self.served: dict[str, ServedAtEnd] = {}

    def _start(self, name: str, release: SavedRelease, place: AccountRegion) -> LocalEnvironment:
        local = super()._start(name, release, place)
        self.at_start.setdefault(name, live_aliases(local))
        return local

    def close(self) -> None:
        for name, running in self.running.items():
            self.served[name] = ServedAtEnd(
                commit=running.release.commit,
                aliases_at_start=self.at_start.get(name, {}),
                aliases_at_end=live_aliases(running.local),
            )
        super().close()


def live_aliases(local: LocalEnvironment) -> dict[str, dict[str, float]]:
    functions = local.functions
    return {
        spec.name: functions.alias_routing(spec.name, "live")
        for spec in local.stack.functions.values()
        if functions.has_alias(spec.name, "live")
    }


def release_in_process(
    repo: Path, time_scale: TimeScale, deployer: LocalDeployer | None = None
) -> ReleaseResult:
    """`make release APPROVE=auto` of the repository's HEAD, in this process."""
    state_dir = repo / ".rehearsal"
    runner = ReleaseRunner(
        ReleaseOptions(repo=repo, revision=resolve_revision(repo), state_dir=state_dir, out=None),
        deployer=deployer or LocalDeployer(state_dir, time_scale),
        approvals=ApprovalGate(ApprovalInbox(state_dir), mode="auto"),
    )
    return runner.run()


def released_store(repo: Path) -> dict[str, str | None]:
    """The commit each environment starts from at the next release (the deployer's saved state)."""
    store = ReleaseStore(StateLayout.of_repo(repo).deployer)
    return {
        environment: (saved.commit if (saved := store.current(environment)) else None)
        for environment in RELEASE_ENVIRONMENTS
    }


# The time scale of these releases: 35 pipeline minutes of canaries and bakes in 17.5 s.
RELEASE_TIME_SCALE = TimeScale(seconds_per_minute=0.5)
ORDERS_LOGIC = "service/src/orders/logic/orders.py"
NOT_FOUND = 'f"Order {order_id} does not exist"'


@dataclass(frozen=True, kw_only=True)
class GoodRelease:
    repo: Path
    commit: str
    result: ReleaseResult
    marker: str  # in the 404 message of this commit: what serves it answers with it


@contextlib.contextmanager
def released_for_tests() -> Iterator[None]:
    """The environment of these releases: the Build's checks off (`make test` runs them), and the
    release's own processes not measured by coverage (each part is covered where tested directly;
    measuring them here doubled the time of these releases)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHECKS", "")
        patch.delenv(COVERAGE_SUBPROCESS_VARIABLE, raising=False)
        yield


def release_good_commit(root: Path) -> GoodRelease:
    """A fresh copy of this repository whose commit names itself in its 404s, released to production."""
    repo = project_copy(root)
    marker = f"release-{uuid.uuid4().hex[:8]}"
    logic = (repo / ORDERS_LOGIC).read_text(encoding="utf-8")
    assert NOT_FOUND in logic
    good_commit = commit(
        repo,
        "good release: the 404 message names the release",
        {ORDERS_LOGIC: logic.replace(NOT_FOUND, f'f"Order {{order_id}} does not exist ({marker})"')},
    )
    with released_for_tests():
        result = release_in_process(repo, RELEASE_TIME_SCALE)
    return GoodRelease(repo=repo, commit=good_commit, result=result, marker=marker)


# ---------------------------------------------------------------- faulty releases, each in its own process


@dataclass(frozen=True, kw_only=True)
class Edit:
    path: str
    old: str
    new: str


@dataclass(frozen=True, kw_only=True)
class Fault:
    """A commit that unit tests pass but a release must stop in staging, and what must stop it."""

    name: str
    edits: tuple[Edit, ...]
    stopped_by: str  # the alarm's logical id, or HOOK: the PreTraffic hook refusing the new version


HOOK = "BeforeAllowTraffic hook"


@dataclass(frozen=True, kw_only=True)
class FaultyRelease:
    """What a faulty release left: its summary, its staging deploy log, the aliases, the saved state."""

    commit: str
    summary: dict[str, Any]
    deploy_log: str
    served: dict[str, ServedAtEnd]
    saved: dict[str, str | None]  # released_store() after the release
    seconds: float


def commit_fault(repo: Path, fault: Fault) -> str:
    files = {}
    for edit in fault.edits:
        text = files.get(edit.path) or (repo / edit.path).read_text(encoding="utf-8")
        assert edit.old in text, f"{fault.name}: {edit.old!r} is not in {edit.path}"
        files[edit.path] = text.replace(edit.old, edit.new, 1)
    return commit(repo, f"faulty release: {fault.name}", files)


def release_fault(repo: Path, fault: Fault) -> FaultyRelease:
    """Commit `fault` in `repo` (a released copy) and release it, in this process: run in a spawned one."""
    started = time.monotonic()
    faulty_commit = commit_fault(repo, fault)
    with released_for_tests():
        deployer = ObservedDeployer(repo / ".rehearsal", RELEASE_TIME_SCALE)
        result = release_in_process(repo, RELEASE_TIME_SCALE, deployer)
    deploy_log = result.run_dir / "logs" / "Staging.Service_Deploy.log"
    return FaultyRelease(
        commit=faulty_commit,
        summary=dict(result.summary),
        deploy_log=deploy_log.read_text(encoding="utf-8") if deploy_log.is_file() else "",
        served=deployer.served,
        saved=released_store(repo),
        seconds=time.monotonic() - started,
    )


# ---------------------------------------------------------------- a release killed mid-canary

CANARY_STARTED = "new versions get 10% of traffic"
# The killed release's canary runs slower, so that the kill lands inside its first step.
KILLED_TIME_SCALE = "3"


@dataclass(frozen=True, kw_only=True)
class KilledRelease:
    """A release SIGKILLed while its staging canary shifted, what the next start said, the next release."""

    killed_commit: str
    killed_run: str
    log_at_kill: str  # the staging deploy log when the kill was sent
    in_flight_at_kill: list[str]  # environments with an in-flight record after the kill
    summary_at_kill: dict[str, Any]
    status_output: str  # `rehearsal status` (make release-status) right after the kill
    summary_after_status: dict[str, Any]
    in_flight_after_status: list[str]
    saved_after_status: dict[str, str | None]
    next_exit_code: int
    next_summary: dict[str, Any]


def _rehearsal(repo: Path, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "rehearsal", *arguments, "--repo", str(repo)]


def _summary_of(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}


def _containing(path: Path, text: str) -> str | None:
    content = path.read_text(encoding="utf-8") if path.is_file() else ""
    return content if text in content else None


def _in_flight(repo: Path) -> list[str]:
    return sorted(p.parent.name for p in StateLayout.of_repo(repo).deployer.glob("*/in-flight.json"))


def kill_a_release_mid_canary(repo: Path) -> KilledRelease:
    """In `repo` (a released copy): release a new commit with `make release`, SIGKILL it once its staging
    canary has shifted traffic, run `make release-status`, then release again."""
    layout = StateLayout.of_repo(repo)
    logic = (repo / ORDERS_LOGIC).read_text(encoding="utf-8")
    killed_commit = commit(
        repo, "next release", {ORDERS_LOGIC: logic.replace("does not exist", "is unknown")}
    )
    with released_for_tests():
        environ = {**os.environ, "APPROVE": "auto"}
        process = subprocess.Popen(
            _rehearsal(repo, "release", "--quiet", "--time-scale", KILLED_TIME_SCALE),
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deploy_log = layout.runs / "latest" / "logs" / "Staging.Service_Deploy.log"
        try:
            log_at_kill = wait_for(
                lambda: _containing(deploy_log, CANARY_STARTED),
                timeout=400,
                what="the staging canary's first step",
            )
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        killed_run = (layout.runs / "latest").resolve()
        summary_at_kill, in_flight_at_kill = _summary_of(killed_run / "summary.json"), _in_flight(repo)
        status = subprocess.run(
            _rehearsal(repo, "status"), env=environ, capture_output=True, text=True, check=False
        )
        after_status = (_summary_of(killed_run / "summary.json"), _in_flight(repo), released_store(repo))
        released = subprocess.run(
            _rehearsal(
                repo, "release", "--quiet", "--time-scale", str(RELEASE_TIME_SCALE.seconds_per_minute)
            ),
            env=environ,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    return KilledRelease(
        killed_commit=killed_commit,
        killed_run=killed_run.name,
        log_at_kill=log_at_kill,
        in_flight_at_kill=in_flight_at_kill,
        summary_at_kill=summary_at_kill,
        status_output=status.stdout + status.stderr,
        summary_after_status=after_status[0],
        in_flight_after_status=after_status[1],
        saved_after_status=after_status[2],
        next_exit_code=released.returncode,
        next_summary=_summary_of(layout.latest_summary),
    )
