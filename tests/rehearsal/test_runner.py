"""Whole releases through the fixture pipeline; the in-memory deployer stands in for the local cloud."""

from __future__ import annotations

import fcntl
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from rehearsal.base.errors import UserError
from rehearsal.release.approval_inbox import ApprovalGate, ApprovalInbox
from rehearsal.release.runner import ReleaseOptions, ReleaseRunner
from rehearsal.release.source import resolve_revision
from tests.rehearsal.polling import wait_for
from tests.rehearsal.release_support import (
    RELEASE_MANAGER,
    RELEASE_MANAGER_ROLE,
    InMemoryDeployer,
    commit,
    make_project,
    run_release,
)

TEMPLATE = "pipeline-assembly/OrdersPipeline.template.json"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def summary_of(repo: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((repo / ".rehearsal/runs/latest/summary.json").read_text())
    return summary


def edit_pipeline(repo: Path, change: Any) -> dict[str, str]:
    template = json.loads((repo / TEMPLATE).read_text())
    change(template["Resources"]["PipelineC660917D"]["Properties"]["Stages"], template)
    return {TEMPLATE: json.dumps(template, indent=1)}


def actions_of(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["name"], a["action"], a["state"]) for s in summary["stages"] for a in s["actions"]]


def test_a_good_release_reaches_production_and_closes_the_deployer(repo: Path) -> None:
    deployer = InMemoryDeployer()
    head = commit(repo, "nothing new")

    result = run_release(repo, deployer)

    summary = summary_of(repo)
    assert result.succeeded
    assert (summary["result"], summary["failed_stage"]) == ("Succeeded", None)
    assert summary["environments"]["staging"]["commit"] == head
    assert summary["environments"]["production"]["commit"] == head
    assert deployer.serving == {"staging": head, "production": head}
    assert deployer.closed


def test_the_summary_says_for_every_alarm_a_canary_watched_whether_it_judged_with_data(repo: Path) -> None:
    run_release(repo, InMemoryDeployer())

    evidence = summary_of(repo)["alarm_evidence"]

    judged = {(item["where"], item["alarm"], item["watched"]): item["with_data"] for item in evidence}
    # Each under the deploy action that watched it (the fixture pipeline's change-set Execute actions).
    assert judged == {
        ("Staging/Execute", "orders-staging-SubmitOrderErrors", "canary"): True,
        ("Production/Execute", "orders-production-SubmitOrderErrors", "canary"): False,
    }
    assert evidence[0]["evaluations"] == 10 and set(evidence[0]) >= {"environment", "evaluations_with_data"}


def test_every_action_runs_in_stage_order_and_leaves_a_log(repo: Path) -> None:
    run_release(repo, InMemoryDeployer())

    summary = summary_of(repo)
    assert [s["name"] for s in summary["stages"]] == [
        "Source",
        "Build",
        "UpdatePipeline",
        "Staging",
        "Approval",
        "Production",
    ]
    assert all(Path(a["log"]).is_file() for s in summary["stages"] for a in s["actions"])
    assert (
        "integration tests against http://127.0.0.1:1/staging"
        in Path(summary["stages"][3]["actions"][2]["log"]).read_text()
    )
    assert (repo / ".rehearsal/runs/latest/reports/Build.Synth/unit-tests/junit.xml").is_file()


def test_a_second_release_canaries_from_the_old_commit_to_the_new_one(repo: Path) -> None:
    deployer = InMemoryDeployer()
    first = commit(repo, "first")
    run_release(repo, deployer)
    second = commit(repo, "second", {"service.txt": "orders service: better\n"})

    run_release(repo, deployer)

    assert deployer.previous == {"staging": first, "production": first}
    assert summary_of(repo)["environments"]["production"]["commit"] == second
    assert "orders service: better" in deployer.requests[-1].template.read_text()


def test_a_faulty_release_is_rolled_back_in_the_staging_canary_and_the_summary_names_the_alarm(
    repo: Path,
) -> None:
    deployer = InMemoryDeployer()
    good = commit(repo, "good")
    run_release(repo, deployer)
    commit(repo, "handler raises", {"service.txt": "orders service: faulty\n"})

    result = run_release(repo, deployer)

    summary = summary_of(repo)
    assert not result.succeeded
    assert (summary["result"], summary["failed_stage"]) == ("Failed", "Staging")
    assert "orders-staging-SubmitOrderErrors" in summary["message"]
    assert (summary["failed_action"], summary["alarm"]) == ("Execute", "orders-staging-SubmitOrderErrors")
    assert summary["environments"]["staging"]["commit"] == good
    assert summary["environments"]["production"]["commit"] == good


def test_a_bake_alarm_rolls_staging_back_to_the_commit_it_served_before(repo: Path) -> None:
    deployer = InMemoryDeployer()
    good = commit(repo, "good")
    run_release(repo, deployer)
    commit(repo, "slowly failing", {"service.txt": "orders service: leaks\n"})
    deployer.alarms_in_alarm.add("orders-staging-bake")

    result = run_release(repo, deployer)

    summary = summary_of(repo)
    assert not result.succeeded
    assert summary["failed_stage"] == "Staging"
    assert "OnSuccess rule Bake: alarm orders-staging-bake went to ALARM" in summary["message"]
    assert ("Staging", "Rollback", "Succeeded") in actions_of(summary)
    assert summary["environments"]["staging"]["commit"] == good
    assert deployer.serving["staging"] == good


def test_a_rejected_approval_leaves_production_untouched(repo: Path) -> None:
    deployer = InMemoryDeployer()
    good = commit(repo, "good")
    run_release(repo, deployer)
    new = commit(repo, "risky", {"service.txt": "orders service: risky\n"})

    result = run_release(repo, deployer, approve="reject", reason="freeze week")

    summary = summary_of(repo)
    assert not result.succeeded
    assert summary["failed_stage"] == "Approval"
    assert summary["environments"]["staging"]["commit"] == new
    assert summary["environments"]["production"]["commit"] == good
    assert summary["approvals"][0] | {"at": None} == {
        "stage": "Approval",
        "action": "Release",
        "approved": False,
        "by": RELEASE_MANAGER_ROLE,
        "at": None,
        "comment": "freeze week",
        "via": "APPROVE=reject",
    }


def test_an_approval_given_from_another_shell_lets_the_release_continue(repo: Path) -> None:
    state_dir = repo / ".rehearsal"
    inbox = ApprovalInbox(state_dir)
    gate = ApprovalGate(inbox, mode="wait", poll_seconds=0.01)
    runner = ReleaseRunner(
        ReleaseOptions(repo=repo, revision=resolve_revision(repo), state_dir=state_dir),
        deployer=InMemoryDeployer(),
        approvals=gate,
    )
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=runner.run()))
    thread.start()
    wait_for(
        lambda: inbox.pending() is not None or not thread.is_alive(), timeout=60, what="an approval request"
    )
    request = inbox.decide(approved=True, by=RELEASE_MANAGER, comment="looks good")
    thread.join(60)

    assert outcome["result"].succeeded
    assert request.stage == "Approval"
    assert summary_of(repo)["approvals"][0]["by"] == RELEASE_MANAGER
    assert inbox.pending() is None


def test_a_change_to_the_pipeline_definition_is_picked_up_by_self_mutation(repo: Path) -> None:
    deployer = InMemoryDeployer()
    run_release(repo, deployer)

    def rename_tests(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[3]["Actions"][2]["Name"] = "AcceptanceTests"

    commit(repo, "rename the staging tests", edit_pipeline(repo, rename_tests))
    out = io.StringIO()

    result = run_release(repo, deployer, out=out)

    summary = summary_of(repo)
    assert result.succeeded
    assert len(summary["restarts"]) == 1
    assert any("AcceptanceTests" in change for change in summary["restarts"][0]["changes"])
    assert ("Staging", "AcceptanceTests", "Succeeded") in actions_of(summary)
    assert "restarting on the new definition" in out.getvalue()
    assert (repo / ".rehearsal/runs/latest/logs-attempt-1/UpdatePipeline.SelfMutate.log").is_file()


def test_a_failing_buildspec_command_fails_its_action_and_its_log_shows_the_output(repo: Path) -> None:
    makefile = (
        (repo / "Makefile")
        .read_text()
        .replace("\tcp service.txt package/\n", "\t@echo 'packaging broke: handler not found' >&2; exit 7\n")
    )
    commit(repo, "break packaging", {"Makefile": makefile})

    result = run_release(repo, InMemoryDeployer())

    summary = summary_of(repo)
    synth = summary["stages"][1]["actions"][0]
    assert not result.succeeded
    assert summary["failed_stage"] == "Build"
    assert "make package" in synth["message"]
    log = Path(synth["log"]).read_text()
    assert "packaging broke: handler not found" in log
    assert "Command did not exit successfully make package" in log


def test_a_dirty_tree_is_refused_unless_allowed(repo: Path) -> None:
    (repo / "service.txt").write_text("uncommitted\n")

    with pytest.raises(UserError, match="uncommitted change"):
        run_release(repo, InMemoryDeployer())
    assert run_release(repo, InMemoryDeployer(), allow_dirty=True).succeeded


def test_an_action_type_the_rehearsal_cannot_emulate_fails_with_its_type_named(repo: Path) -> None:
    def add_lambda_action(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[4]["Actions"].append(
            {
                "ActionTypeId": {"Category": "Invoke", "Owner": "AWS", "Provider": "Lambda", "Version": "1"},
                "Configuration": {"FunctionName": "notify"},
                "Name": "Notify",
                "RunOrder": 2,
            }
        )

    commit(repo, "notify on approval", edit_pipeline(repo, add_lambda_action))

    result = run_release(repo, InMemoryDeployer())

    assert not result.succeeded
    assert summary_of(repo)["message"] == "Notify: action type AWS/Invoke/Lambda is not emulated offline"


def test_a_variable_no_earlier_action_produced_fails_the_action(repo: Path) -> None:
    def bad_variable(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[4]["Actions"][0]["Configuration"]["CustomData"] = "#{Nowhere.Thing}"

    commit(repo, "typo in a variable", edit_pipeline(repo, bad_variable))

    run_release(repo, InMemoryDeployer())

    assert "variable #{Nowhere.Thing} is not produced by any earlier action" in summary_of(repo)["message"]


def test_a_stage_condition_rule_the_rehearsal_cannot_evaluate_fails_the_stage_closed(repo: Path) -> None:
    def entry_rule(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[5]["BeforeEntry"] = {
            "Conditions": [
                {
                    "Rules": [
                        {
                            "Name": "Window",
                            "RuleTypeId": {
                                "Category": "Rule",
                                "Owner": "AWS",
                                "Provider": "DeploymentWindow",
                            },
                            "Configuration": {"Cron": "0 9 ? * MON-FRI *"},
                        }
                    ]
                }
            ]
        }

    commit(repo, "deploy in office hours", edit_pipeline(repo, entry_rule))

    deployer = InMemoryDeployer()

    result = run_release(repo, deployer)

    summary = summary_of(repo)
    assert not result.succeeded
    assert summary["failed_stage"] == "Production"
    assert summary["message"] == (
        "BeforeEntry rule Window: rule provider DeploymentWindow is not emulated offline: "
        "the stage fails closed (only CloudWatchAlarm rules are judged)"
    )
    assert "production" not in deployer.serving


def test_progress_shows_stage_action_state_and_elapsed_and_ends_with_a_summary_table(repo: Path) -> None:
    out = io.StringIO()

    run_release(repo, InMemoryDeployer(), out=out)

    text = out.getvalue()
    assert "Build           Synth                    InProgress" in text
    assert "Build           Synth                    Succeeded " in text
    assert "Stage           Action" in text
    assert "serving 100%: production" in text
    assert "judged without data at Production/Execute: 1 alarms" in text
    assert "judged without data at Staging/Execute" not in text


def test_a_release_waits_for_one_already_running(repo: Path) -> None:
    (repo / ".rehearsal").mkdir()
    out = io.StringIO()
    with (repo / ".rehearsal/release.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        thread = threading.Thread(target=lambda: run_release(repo, InMemoryDeployer(), out=out))
        thread.start()
        wait_for(lambda: "queued" in out.getvalue(), timeout=30, what="the second release queueing")
        fcntl.flock(lock, fcntl.LOCK_UN)
    thread.join(60)

    assert "queued behind it" in out.getvalue()
    assert summary_of(repo)["result"] == "Succeeded"


def test_a_release_stopped_with_ctrl_c_is_recorded_as_failed_where_it_stood(repo: Path) -> None:
    class Interrupting(InMemoryDeployer):
        def deploy(self, request: Any) -> Any:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_release(repo, Interrupting())

    summary = summary_of(repo)
    assert (summary["result"], summary["failed_stage"], summary["message"]) == (
        "Failed",
        "Staging",
        "stopped with Ctrl-C",
    )
    assert summary["failed_action"] == "Execute"
