"""Approvals as AWS judges them: who may answer, answers with no release waiting, and the timeout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rehearsal.base.clock import TimeScale
from rehearsal.base.errors import UserError
from rehearsal.cli.main import main as rehearsal_main
from rehearsal.release.approval_inbox import ApprovalGate, ApprovalInbox, ApprovalRequest, refusal
from rehearsal.release.pipeline_model import load_pipeline
from rehearsal.release.runner import ReleaseOptions, ReleaseRunner
from rehearsal.release.source import resolve_revision
from tests.rehearsal.release_support import (
    ASSEMBLY,
    RELEASE_MANAGER,
    RELEASE_MANAGER_ROLE,
    InMemoryDeployer,
    commit,
    make_project,
    release_running,
    run_release,
)

TEMPLATE = "pipeline-assembly/OrdersPipeline.template.json"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("APPROVE", raising=False)
    monkeypatch.delenv("APPROVER", raising=False)
    return make_project(tmp_path)


def main(argv: list[str]) -> int:
    return rehearsal_main(argv, deployer_factory=lambda state_dir, time_scale: InMemoryDeployer())


def summary_of(repo: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((repo / ".rehearsal/runs/latest/summary.json").read_text())
    return summary


def edit_template(repo: Path, change: Any) -> dict[str, str]:
    template = json.loads((repo / TEMPLATE).read_text())
    change(template)
    return {TEMPLATE: json.dumps(template, indent=1)}


def open_request(repo: Path, approvers: tuple[str, ...] = (RELEASE_MANAGER_ROLE, RELEASE_MANAGER)) -> Any:
    return ApprovalInbox(repo / ".rehearsal").open(
        run_id="r1",
        stage="Approval",
        action="Release",
        commit="a" * 40,
        custom_data="",
        review_url="",
        approvers=approvers,
    )


def test_the_pipeline_grants_approval_to_the_release_manager_role_and_who_may_assume_it() -> None:
    action = load_pipeline(ASSEMBLY).stage("Approval").actions[0]

    assert action.approvers == (RELEASE_MANAGER_ROLE, RELEASE_MANAGER)


def test_approve_after_a_release_has_finished_says_no_release_waits_and_changes_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPROVER", RELEASE_MANAGER)
    run_release(repo, InMemoryDeployer())
    approvals = repo / ".rehearsal" / "approvals"
    before = sorted(p.name for p in approvals.iterdir())

    status = main(["approve", "--repo", str(repo)])

    assert status == 2
    assert "no release is waiting for approval: nothing was changed" in capsys.readouterr().err
    assert sorted(p.name for p in approvals.iterdir()) == before == []


def test_a_request_left_by_a_killed_release_is_not_answered(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPROVER", RELEASE_MANAGER)
    request = open_request(repo)  # no process holds the release lock: its release has ended

    assert main(["approve", "--repo", str(repo)]) == 2

    assert "no release is waiting for approval" in capsys.readouterr().err
    assert ApprovalInbox(repo / ".rehearsal").take_decision(request) is None


def test_an_identity_the_pipeline_does_not_grant_is_refused_in_one_line_and_nothing_changes(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPROVER", "arn:aws:iam::123456789012:user/mallory")
    request = open_request(repo)
    inbox = ApprovalInbox(repo / ".rehearsal")

    with release_running(repo):
        status = main(["approve", "--repo", str(repo)])

    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1
    assert "user/mallory may not answer Approval/Release" in error and "nothing was changed" in error
    assert inbox.take_decision(request) is None and inbox.pending() == request


def test_answering_without_an_approver_identity_says_how_to_set_one(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    open_request(repo)

    with release_running(repo):
        assert main(["reject", "--repo", str(repo), "--reason", "no"]) == 2

    assert "no approver identity: set APPROVER" in capsys.readouterr().err


def test_a_session_of_the_granted_role_may_answer_and_a_session_of_another_role_may_not() -> None:
    approval = ApprovalRequest("t", "r", "Approval", "Release", "c", approvers=(RELEASE_MANAGER_ROLE,))

    assert refusal(approval, "arn:aws:sts::123456789012:assumed-role/OrdersPipeline-managers/ana") is None
    assert refusal(approval, "arn:aws:sts::123456789012:assumed-role/Admin/ana") is not None


def test_an_automatic_approval_by_an_identity_not_granted_fails_the_approval_stage(repo: Path) -> None:
    deployer = InMemoryDeployer()

    result = run_release(repo, deployer, approver="arn:aws:iam::123456789012:user/mallory")

    summary = summary_of(repo)
    assert not result.succeeded
    assert summary["failed_stage"] == "Approval"
    assert "user/mallory may not answer Approval/Release" in summary["message"]
    assert "production" not in deployer.serving


def test_a_pipeline_that_grants_no_approver_cannot_be_approved(repo: Path) -> None:
    def drop_grant(template: dict[str, Any]) -> None:
        del template["Resources"]["ReleaseManagerRoleDefaultPolicy"]

    commit(repo, "no release managers", edit_template(repo, drop_grant))

    result = run_release(repo, InMemoryDeployer())

    assert not result.succeeded
    assert "grants no one codepipeline:PutApprovalResult on Approval/Release" in summary_of(repo)["message"]


def test_an_approval_not_answered_within_its_timeout_fails_the_stage(repo: Path) -> None:
    deployer = InMemoryDeployer()
    state_dir = repo / ".rehearsal"
    # 7 days = 10080 pipeline minutes; at 10 microseconds a minute that is 0.1 s here.
    gate = ApprovalGate(
        ApprovalInbox(state_dir),
        mode="wait",
        poll_seconds=0.01,
        time_scale=TimeScale(seconds_per_minute=1e-5),
    )
    runner = ReleaseRunner(
        ReleaseOptions(repo=repo, revision=resolve_revision(repo), state_dir=state_dir),
        deployer=deployer,
        approvals=gate,
    )

    result = runner.run()

    summary = summary_of(repo)
    assert not result.succeeded
    assert summary["failed_stage"] == "Approval"
    assert "not answered within 10080 pipeline minutes" in summary["message"]
    assert summary["approvals"][0]["via"] == "timeout"
    assert "production" not in deployer.serving
    assert ApprovalInbox(state_dir).pending() is None


def test_the_approval_actions_own_timeout_in_minutes_is_read_from_the_pipeline(repo: Path) -> None:
    def shorten(template: dict[str, Any]) -> None:
        stages = template["Resources"]["PipelineC660917D"]["Properties"]["Stages"]
        stages[4]["Actions"][0]["TimeoutInMinutes"] = 5

    (repo / TEMPLATE).write_text(edit_template(repo, shorten)[TEMPLATE])

    action = load_pipeline(repo / "pipeline-assembly").stage("Approval").actions[0]

    assert action.timeout_minutes == 5


def test_approving_with_no_pending_request_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no release is waiting for approval"):
        ApprovalInbox(tmp_path).decide(approved=True, by=RELEASE_MANAGER, comment="")
