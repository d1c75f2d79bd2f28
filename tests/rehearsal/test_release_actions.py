"""Action executors on pipeline shapes beyond the fixture's own: what CDK or a team may synthesize."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rehearsal.base.errors import UserError
from rehearsal.release.actions import build_base_environment
from rehearsal.release.approval_inbox import ApprovalGate, ApprovalInbox
from rehearsal.release.runner import MakeSynthesizer, ReleaseOptions, ReleaseRunner
from rehearsal.release.source import resolve_revision
from tests.rehearsal.release_support import InMemoryDeployer, commit, make_project, run_release
from tests.rehearsal.test_runner import actions_of, edit_pipeline, summary_of

CODEBUILD = {"Category": "Build", "Owner": "AWS", "Provider": "CodeBuild", "Version": "1"}
CLOUDFORMATION = {"Category": "Deploy", "Owner": "AWS", "Provider": "CloudFormation", "Version": "1"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def test_a_cloudformation_update_of_the_pipeline_stack_is_self_mutation_too(repo: Path) -> None:
    """The real pipeline updates itself with a CloudFormation action instead of CDK's SelfMutate build."""

    def cloudformation_self_mutation(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[2]["Actions"] = [
            {
                "ActionTypeId": CLOUDFORMATION,
                "Name": "SelfMutate",
                "RunOrder": 1,
                "InputArtifacts": [{"Name": "Synth_Output"}],
                "Configuration": {
                    "StackName": "OrdersPipeline",
                    "ActionMode": "CREATE_UPDATE",
                    "TemplatePath": "Synth_Output::OrdersPipeline.template.json",
                },
            }
        ]

    commit(repo, "self-mutation by CloudFormation", edit_pipeline(repo, cloudformation_self_mutation))
    deployer = InMemoryDeployer()

    result = run_release(repo, deployer)

    assert result.succeeded
    assert ("UpdatePipeline", "SelfMutate", "Succeeded") in actions_of(summary_of(repo))
    assert all(r.stack_name != "OrdersPipeline" for r in deployer.requests)


def test_a_build_does_not_see_the_repositorys_virtualenv(repo: Path) -> None:
    (repo / ".venv").mkdir()
    (repo / ".venv" / "marker").write_text("tools of this machine\n")
    makefile = (
        (repo / "Makefile")
        .read_text()
        .replace("\tcp service.txt package/\n", "\tcp service.txt package/\n\tcat .venv/marker\n")
    )
    commit(
        repo,
        "use the venv",
        {"Makefile": makefile, ".gitignore": ".rehearsal/\ncdk.out/\npackage/\nreports/\n.venv/\n"},
    )

    run_release(repo, InMemoryDeployer())

    synth = summary_of(repo)["stages"][1]["actions"][0]
    log = Path(synth["log"]).read_text()
    assert synth["state"] == "Failed"
    assert ".venv/marker: No such file or directory" in log
    assert "tools of this machine" not in log


def test_a_build_runs_with_its_own_empty_home(repo: Path) -> None:
    makefile = (
        (repo / "Makefile")
        .read_text()
        .replace(
            "\tcp service.txt package/\n", '\tcp service.txt package/\n\techo "home=$$HOME"; ls -A "$$HOME"\n'
        )
    )
    commit(repo, "show home", {"Makefile": makefile})

    run_release(repo, InMemoryDeployer())

    synth = summary_of(repo)["stages"][1]["actions"][0]
    log = Path(synth["log"]).read_text()
    assert f"home={Path.home()}\n" not in log
    assert "/build-cache/BuildSynthProject/host-1/home" in log


def test_a_project_buildspec_is_read_from_the_source_with_secondary_inputs_beside_it(repo: Path) -> None:
    def file_buildspec(stages: list[dict[str, Any]], template: dict[str, Any]) -> None:
        template["Resources"]["StagingIntegrationTests"]["Properties"]["Source"]["BuildSpec"] = "ci/it.yml"
        stages[3]["Actions"][2]["InputArtifacts"].append({"Name": "Synth_package"})

    command = "cat $CODEBUILD_SRC_DIR_Synth_package/service.txt"
    spec = f"version: 0.2\nphases:\n  build:\n    commands:\n      - {command}\n"
    commit(repo, "buildspec in the source", {"ci/it.yml": spec, **edit_pipeline(repo, file_buildspec)})

    run_release(repo, InMemoryDeployer())

    tests = next(
        a for s in summary_of(repo)["stages"] for a in s["actions"] if a["action"] == "IntegrationTests"
    )
    assert tests["state"] == "Succeeded"
    assert "orders service: good" in Path(tests["log"]).read_text()


def test_a_missing_buildspec_file_fails_the_build_with_its_path(repo: Path) -> None:
    def file_buildspec(_: list[dict[str, Any]], template: dict[str, Any]) -> None:
        template["Resources"]["StagingIntegrationTests"]["Properties"]["Source"]["BuildSpec"] = "ci/none.yml"

    commit(repo, "buildspec missing", edit_pipeline(repo, file_buildspec))

    run_release(repo, InMemoryDeployer())

    assert summary_of(repo)["message"] == "IntegrationTests: buildspec ci/none.yml is not in the source"


@pytest.mark.parametrize(
    ("configuration", "message"),
    [
        ({"ActionMode": "DELETE_ONLY"}, "ActionMode DELETE_ONLY is not emulated offline"),
        ({"ChangeSetName": "other"}, "no change set other for stack orders-staging"),
    ],
)
def test_cloudformation_actions_the_rehearsal_cannot_follow_fail_with_the_reason(
    repo: Path, configuration: dict[str, str], message: str
) -> None:
    def change_execute(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[3]["Actions"][1]["Configuration"].update(configuration)
        stages[3]["Actions"][0]["Configuration"]["TemplateConfiguration"] = "Synth_package::config.json"

    commit(repo, "odd deploy", edit_pipeline(repo, change_execute))

    run_release(repo, InMemoryDeployer())

    summary = summary_of(repo)
    assert summary["failed_stage"] == "Staging"
    assert message in summary["message"]
    assert {
        "what": "CloudFormation TemplateConfiguration",
        "where": "Staging/Deploy",
        "why": "not read: only ParameterOverrides apply",
    } in summary["not_emulated"]
    assert (
        "Not emulated: CloudFormation TemplateConfiguration"
        in Path(summary["stages"][3]["actions"][0]["log"]).read_text()
    )


def test_a_direct_create_update_deploys_without_a_change_set(repo: Path) -> None:
    def create_update(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        deploy = stages[5]["Actions"][0]
        deploy["Configuration"]["ActionMode"] = "CREATE_UPDATE"
        stages[5]["Actions"] = [deploy]

    commit(repo, "direct deploy", edit_pipeline(repo, create_update))
    deployer = InMemoryDeployer()

    assert run_release(repo, deployer).succeeded
    assert [r.environment for r in deployer.requests] == ["staging", "production"]


def test_a_bake_alarm_on_a_first_release_is_not_rolled_back_as_the_stage_never_succeeded(repo: Path) -> None:
    # AWS rolls a stage back only to an execution that succeeded in it (ADR 0018).
    deployer = InMemoryDeployer(alarms_in_alarm={"orders-staging-bake"})
    head = commit(repo, "first release")

    result = run_release(repo, deployer)

    assert not result.succeeded
    assert summary_of(repo)["environments"]["staging"]["commit"] == head
    assert deployer.serving["staging"] == head


def test_a_pipeline_that_changes_on_every_synth_stops_after_a_few_restarts(repo: Path) -> None:
    makefile = (
        (repo / "Makefile")
        .read_text()
        .replace(
            "cp -r pipeline-assembly cdk.out",
            "cp -r pipeline-assembly cdk.out && "
            'sed -i "s/main/main$$(date +%N)/" cdk.out/OrdersPipeline.template.json',
        )
    )
    commit(repo, "nondeterministic synth", {"Makefile": makefile})

    result = run_release(repo, InMemoryDeployer())

    assert not result.succeeded
    assert summary_of(repo)["message"] == "the pipeline definition kept changing: restarted too often"


def test_a_broken_synth_on_the_first_release_fails_before_any_stage(repo: Path) -> None:
    commit(repo, "no synth", {"Makefile": "synth:\n\t@echo 'synth exploded'; exit 1\n"})

    result = run_release(repo, InMemoryDeployer())

    summary = summary_of(repo)
    assert not result.succeeded
    assert summary["failed_stage"] == "Setup"
    assert "`make synth` failed" in summary["message"]
    assert "synth exploded" in (repo / ".rehearsal/runs/latest/logs/Bootstrap.Synth.log").read_text()


def test_without_make_the_first_release_says_what_to_install(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(UserError, match="make is not installed"):
        MakeSynthesizer().synthesize(repo, open(repo / "synth.log", "w"))  # noqa: SIM115 - closed with the test


def test_two_releases_in_the_same_second_get_their_own_run_folders(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = repo / ".rehearsal"
    options = ReleaseOptions(repo=repo, revision=resolve_revision(repo), state_dir=state_dir)
    gate = ApprovalGate(ApprovalInbox(state_dir), mode="auto")
    first = ReleaseRunner(options, deployer=InMemoryDeployer(), approvals=gate).run()
    monkeypatch.setattr("rehearsal.release.runner._run_id", lambda revision: first.run_id)

    second = ReleaseRunner(options, deployer=InMemoryDeployer(), approvals=gate).run()

    assert second.run_id == f"{first.run_id}.2"
    assert json.loads((second.run_dir / "summary.json").read_text())["result"] == "Succeeded"


def test_builds_never_see_this_machines_aws_settings_only_the_local_cloud() -> None:
    machine = {
        "PATH": "/bin",
        "AWS_PROFILE": "prod",
        "AWS_SECRET_ACCESS_KEY": "real",
        "AWS_SESSION_TOKEN": "t",
    }

    offline = build_base_environment(machine, {})
    local = build_base_environment(machine, {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"})

    assert "AWS_PROFILE" not in offline
    assert offline["AWS_SECRET_ACCESS_KEY"] == "test"
    assert "AWS_SESSION_TOKEN" not in offline
    assert offline["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert local["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert offline["PATH"] == "/bin"


def test_a_parameter_store_variable_of_a_build_needs_a_stand_in_from_the_shell(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def secret_variable(_: list[dict[str, Any]], template: dict[str, Any]) -> None:
        environment = template["Resources"]["StagingIntegrationTests"]["Properties"]["Environment"]
        environment["EnvironmentVariables"] = [
            {"Name": "API_KEY", "Type": "PARAMETER_STORE", "Value": "/orders/key"}
        ]

    commit(repo, "api key from SSM", edit_pipeline(repo, secret_variable))

    run_release(repo, InMemoryDeployer())
    missing = summary_of(repo)["message"]
    monkeypatch.setenv("API_KEY", "local-key")
    given = run_release(repo, InMemoryDeployer())

    assert "PARAMETER_STORE variable API_KEY (/orders/key) cannot be read offline: export API_KEY" in missing
    assert given.succeeded
