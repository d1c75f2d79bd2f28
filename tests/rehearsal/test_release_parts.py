"""The release's smaller parts: approval gate and inbox, artifact store, git source."""

from __future__ import annotations

import io
import itertools
import os
import shutil
from pathlib import Path

import pytest

from rehearsal.base.clock import TimeScale
from rehearsal.base.errors import UserError
from rehearsal.release.approval_inbox import ApprovalGate, ApprovalInbox, approver_identity
from rehearsal.release.artifact_store import ArtifactStore
from rehearsal.release.source import changed_paths, git, git_user, resolve_revision, snapshot
from tests.rehearsal.release_support import make_project, run_git


def open_request(inbox: ApprovalInbox) -> object:
    return inbox.open(
        run_id="r1", stage="Approval", action="Release", commit="c" * 40, custom_data="", review_url=""
    )


@pytest.mark.parametrize(
    ("answer", "approved", "comment"),
    [("y\n", True, "approved at the prompt"), ("bad smell\n", False, "bad smell")],
)
def test_the_prompt_approves_on_y_and_rejects_with_any_other_answer_as_the_reason(
    tmp_path: Path, answer: str, approved: bool, comment: str
) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, answer.encode())
    out = io.StringIO()
    with os.fdopen(read_end) as stdin:
        gate = ApprovalGate(ApprovalInbox(tmp_path), mode="prompt", approver="Ana", stdin=stdin, out=out)
        inbox = gate.inbox
        request = inbox.open(
            run_id="r1",
            stage="Approval",
            action="Release",
            commit="c" * 40,
            custom_data="Ship it?",
            review_url="http://x",
            approvers=("Ana",),
        )

        decision = gate.wait(request)

    os.close(write_end)
    assert (decision.approved, decision.comment, decision.by, decision.via) == (
        approved,
        comment,
        "Ana",
        "prompt",
    )
    assert "Ship it?" in out.getvalue() and "review: http://x" in out.getvalue()
    assert "make approve COMMENT=" in out.getvalue() and "type y to approve" in out.getvalue()
    assert inbox.pending() is None


def test_an_unanswered_approval_times_out_as_a_rejection(tmp_path: Path) -> None:
    clock = itertools.count()
    gate = ApprovalGate(
        ApprovalInbox(tmp_path),
        mode="wait",
        time_scale=TimeScale(seconds_per_minute=1e-9),
        clock=lambda: next(clock),
    )
    request = gate.inbox.open(run_id="r", stage="A", action="R", commit="c", custom_data="", review_url="")

    decision = gate.wait(request)

    assert (decision.approved, decision.via) == (False, "timeout")
    assert decision.comment == "not answered within 10080 pipeline minutes (the action's timeout)"


def test_an_unknown_approval_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="approval mode 'sometimes' is unknown"):
        ApprovalGate(ApprovalInbox(tmp_path), mode="sometimes")


def test_closing_an_older_request_leaves_a_newer_one_waiting(tmp_path: Path) -> None:
    inbox = ApprovalInbox(tmp_path)
    old = inbox.open(run_id="r1", stage="A", action="R", commit="c", custom_data="", review_url="")
    new = inbox.open(run_id="r2", stage="A", action="R", commit="c", custom_data="", review_url="")

    inbox.close(old)

    assert inbox.pending() == new


def test_the_approver_is_approver_else_the_configured_local_identity_else_nobody() -> None:
    assert approver_identity({"APPROVER": "arn:a"}, configured="arn:b") == "arn:a"
    assert approver_identity({}, configured="arn:b") == "arn:b"
    assert approver_identity({"USER": "ana"}) is None


def test_the_artifact_store_refuses_names_and_paths_that_leave_it(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    assert store.names() == []
    (store.create("Build_Output") / "packaged.yaml").write_text("x")
    store.create("Build_Output")

    assert store.names() == ["Build_Output"]
    assert not (store.path("Build_Output") / "packaged.yaml").exists()
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(UserError, match="cannot be used as a folder name"):
            store.path(bad)
    with pytest.raises(UserError, match="was not produced by any earlier action"):
        store.require("Missing")
    with pytest.raises(UserError, match="not of the form ArtifactName::path"):
        store.file("Build_Output")
    with pytest.raises(UserError, match="../secret is not a file in artifact Build_Output"):
        store.file("Build_Output::../secret")


def test_git_failures_and_unconfigured_users_are_reported_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_project(tmp_path)
    head = run_git(repo, "rev-parse", "HEAD").strip()

    with pytest.raises(UserError, match="git rev-parse --verify nope"):
        resolve_revision(repo, "nope")
    assert changed_paths(repo, "0" * 40, head) is None
    assert changed_paths(repo, head, head) == []
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    run_git(repo, "config", "--unset", "user.email")
    assert git_user(repo) == "Rel Manager"
    run_git(repo, "config", "--unset", "user.name")
    assert git_user(repo) == ""


def test_without_git_the_release_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(UserError, match="git is not installed"):
        git(tmp_path, "status")


def test_a_commit_with_a_link_out_of_the_repository_is_refused_plainly(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    (repo / "outside").symlink_to("/etc")
    run_git(repo, "add", "outside")
    run_git(repo, "commit", "--quiet", "-m", "link out")

    with pytest.raises(UserError, match="cannot be snapshotted safely"):
        snapshot(resolve_revision(repo), tmp_path / "snapshot")
