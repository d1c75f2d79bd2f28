"""Helpers for the release tests: a throw-away project repository, an in-memory deployer, a runner."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rehearsal.alarms.evaluator import AlarmEvidence
from rehearsal.release.approval_inbox import ApprovalGate, ApprovalInbox
from rehearsal.release.deploy_port import DeployRequest, Outcome
from rehearsal.release.runner import ReleaseOptions, ReleaseResult, ReleaseRunner
from rehearsal.release.source import resolve_revision

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

    def build_environment(self) -> Mapping[str, str]:
        return {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "us-east-1"}

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
        self, *, environment: str | None, alarm_name: str, wait_minutes: float, log: TextIO
    ) -> Outcome:
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
