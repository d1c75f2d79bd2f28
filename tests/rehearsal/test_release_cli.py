"""The release commands: release, status, approve, reject and the `rehearsal` git remote."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from rehearsal.cli import release as release_cli
from rehearsal.cli.main import main as rehearsal_main
from rehearsal.release.approval_inbox import ApprovalInbox
from tests.rehearsal.release_support import (
    RELEASE_MANAGER,
    RELEASE_MANAGER_ROLE,
    InMemoryDeployer,
    commit,
    make_project,
    release_running,
    run_git,
)


def main(argv: list[str]) -> int:
    """The command line with the in-memory deployer injected, as `make release` injects the local one."""
    return rehearsal_main(argv, deployer_factory=lambda state_dir, time_scale: InMemoryDeployer())


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("APPROVE", raising=False)
    return make_project(tmp_path)


def test_release_exits_zero_when_production_was_reached_and_prints_nothing_when_quiet(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["release", "--repo", str(repo), "--approve", "auto", "--quiet", "--time-scale", "0.01"])

    assert status == 0
    assert capsys.readouterr().out == ""


def test_release_exits_one_when_the_release_stopped_before_production(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPROVE", "reject")
    monkeypatch.setenv("REASON", "not today")

    assert main(["release", "--repo", str(repo), "--quiet"]) == 1
    summary = json.loads((repo / ".rehearsal/runs/latest/summary.json").read_text())
    assert summary["approvals"][0]["comment"] == "not today"


def test_status_prints_the_latest_run_as_a_table_or_as_json(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["release", "--repo", str(repo), "--approve", "auto", "--quiet"])
    capsys.readouterr()

    assert main(["status", "--repo", str(repo)]) == 0
    table = capsys.readouterr().out
    assert main(["status", "--repo", str(repo), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)

    assert "Production      Execute" in table and ": Succeeded" in table
    assert document["result"] == "Succeeded"


def test_status_before_any_run_says_how_to_start_one(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--repo", str(repo)]) == 2
    assert capsys.readouterr().err == "error: no rehearsal has run yet: run `make release`\n"


def test_approve_without_a_waiting_release_is_a_clear_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["approve", "--repo", str(repo)]) == 2
    assert "no release is waiting for approval" in capsys.readouterr().err


def test_approve_and_reject_answer_the_waiting_request_as_the_approver_identity(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPROVER", RELEASE_MANAGER)
    inbox = ApprovalInbox(repo / ".rehearsal")
    request = inbox.open(
        run_id="r1",
        stage="Approval",
        action="Release",
        commit="a" * 40,
        custom_data="",
        review_url="",
        approvers=(RELEASE_MANAGER_ROLE, RELEASE_MANAGER),
    )

    with release_running(repo):
        assert main(["reject", "--repo", str(repo), "--reason", "too risky"]) == 0
        decision = inbox.take_decision(request)
        assert main(["approve", "--repo", str(repo), "--comment", "ship"]) == 0
        approved = inbox.take_decision(request)

    assert decision is not None
    assert (decision.approved, decision.by, decision.comment) == (False, RELEASE_MANAGER, "too risky")
    assert "Rejected Approval/Release of release r1" in capsys.readouterr().out
    assert approved is not None and approved.approved


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        (["--time-scale", "fast"], {}, "time scale 'fast' is not a number"),
        (["--time-scale", "0"], {}, "must be above 0"),
        ([], {"APPROVE": "maybe"}, "APPROVE=maybe is unknown"),
    ],
)
def test_bad_release_options_end_with_one_line_that_names_the_fix(  # noqa: PLR0917 - pytest passes fixtures by position
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    environment: dict[str, str],
    message: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert main(["release", "--repo", str(repo), "--quiet", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_commands_outside_a_git_repository_say_where_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--repo", str(tmp_path)]) == 2
    assert "is not a git repository" in capsys.readouterr().err


def test_the_branch_comes_from_cdk_json_context(repo: Path) -> None:
    assert release_cli.configured_branch(repo) == "main"
    (repo / "cdk.json").write_text(json.dumps({"context": {"branch": "trunk"}}))

    assert release_cli.configured_branch(repo) == "trunk"


def test_a_push_to_the_rehearsal_remote_starts_a_release_only_for_the_pipelines_branch(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["release-remote", "--repo", str(repo)]) == 0
    assert main(["release-remote", "--repo", str(repo)]) == 0  # running it again only refreshes the hook
    assert "git push rehearsal main" in capsys.readouterr().out
    environment = {**os.environ, "APPROVE": "auto", "TIME_SCALE": "0.01"}

    def push(*arguments: str) -> str:
        completed = subprocess.run(
            ["git", "push", "rehearsal", *arguments],
            cwd=repo,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        return completed.stdout + completed.stderr

    head = run_git(repo, "rev-parse", "HEAD").strip()
    main_push = push("main")
    summary = json.loads((repo / ".rehearsal/runs/latest/summary.json").read_text())
    run_git(repo, "checkout", "--quiet", "-b", "feature")
    commit(repo, "feature work", {"service.txt": "feature\n"})
    feature_push = push("feature")
    run_git(repo, "checkout", "--quiet", "main")
    commit(repo, "docs only", {"README.md": "# orders\n"})
    docs_push = push("main")

    assert "push to main (" in main_push and "starts a release" in main_push
    assert summary["commit"] == head
    assert summary["stages"][0]["actions"][0]["state"] == "Succeeded"
    assert "push to feature does not match the pipeline's trigger" in feature_push
    assert "push to main does not match the pipeline's trigger" in docs_push
    assert len(list((repo / ".rehearsal/runs").glob("2*"))) == 1


def test_a_dirty_tree_is_refused_with_the_way_around_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "service.txt").write_text("uncommitted\n")

    assert main(["release", "--repo", str(repo), "--approve", "auto", "--quiet"]) == 2
    assert "ALLOW_DIRTY=1 make release" in capsys.readouterr().err
    monkeypatch.setenv("ALLOW_DIRTY", "1")
    assert main(["release", "--repo", str(repo), "--approve", "auto", "--quiet"]) == 0
