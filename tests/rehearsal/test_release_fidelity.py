"""Pipeline semantics as AWS's, and what a run did not emulate, through the fixture pipeline."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rehearsal.release.actions import source_variables
from rehearsal.release.buildspec import BuildContext, parse_buildspec, run_build
from rehearsal.release.source import resolve_revision
from tests.rehearsal.release_support import InMemoryDeployer, commit, make_project, run_release
from tests.rehearsal.test_runner import TEMPLATE, edit_pipeline, summary_of


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def test_the_source_action_publishes_the_variables_aws_names(repo: Path) -> None:
    revision = resolve_revision(repo)
    author_date = subprocess.run(
        ["git", "log", "-1", "--format=%aI"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()

    variables = source_variables(
        revision, {"FullRepositoryId": "example-org/orders", "ConnectionArn": "arn:aws:codeconnections:x"}
    )

    assert variables == {
        "FullRepositoryName": "example-org/orders",
        "BranchName": "main",
        "AuthorDate": author_date,
        "CommitId": revision.commit,
        "CommitMessage": "initial service",
        "ConnectionArn": "arn:aws:codeconnections:x",
    }


def test_parameter_overrides_get_the_variables_of_earlier_actions(repo: Path) -> None:
    def name_the_commit(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[3]["Actions"][0]["Configuration"]["ParameterOverrides"] = json.dumps(
            {
                "Environment": "staging",
                "Version": "#{Source.CommitId}",
                "Repo": "#{Source.FullRepositoryName}",
            }
        )

    head = commit(repo, "version parameter", edit_pipeline(repo, name_the_commit))
    deployer = InMemoryDeployer()

    run_release(repo, deployer)

    staging = next(r for r in deployer.requests if r.environment == "staging")
    assert staging.parameters["Version"] == head
    assert staging.parameters["Repo"] == "example-org/orders"


def test_a_variable_no_earlier_action_produces_fails_the_deploy_action(repo: Path) -> None:
    def unknown_variable(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[3]["Actions"][0]["Configuration"]["ParameterOverrides"] = json.dumps(
            {"Environment": "staging", "Author": "#{Source.AuthorDisplayName}"}
        )

    commit(repo, "an author parameter", edit_pipeline(repo, unknown_variable))

    run_release(repo, InMemoryDeployer())

    assert summary_of(repo)["message"] == (
        "Deploy: variable #{Source.AuthorDisplayName} is not produced by any earlier action"
    )


def test_actions_sharing_a_run_order_run_in_parallel_with_a_log_each(repo: Path) -> None:
    def two_slow_tests(stages: list[dict[str, Any]], template: dict[str, Any]) -> None:
        tests = stages[3]["Actions"][2]
        twin = json.loads(json.dumps(tests)) | {"Name": "MoreTests"}
        stages[3]["Actions"].append(twin)
        spec = template["Resources"]["StagingIntegrationTests"]["Properties"]["Source"]
        # Each build waits for the other's marker: they can only both finish if they run together.
        spec["BuildSpec"] = json.dumps(
            {
                "version": "0.2",
                "phases": {
                    "build": {
                        "commands": [
                            "touch ../../started.$CODEBUILD_BUILD_NUMBER",
                            "for i in $(seq 100); do [ $(ls ../../started.* | wc -l) -ge 2 ] && break; "
                            "sleep 0.1; done",
                            "test $(ls ../../started.* | wc -l) -ge 2",
                            "echo tests of build $CODEBUILD_BUILD_NUMBER",
                        ]
                    }
                },
            }
        )

    commit(repo, "two test suites", edit_pipeline(repo, two_slow_tests))

    result = run_release(repo, InMemoryDeployer())

    summary = summary_of(repo)
    assert result.succeeded, summary["message"]
    staging = {a["action"]: a for a in summary["stages"][3]["actions"]}
    logs = [Path(staging[name]["log"]).read_text() for name in ("IntegrationTests", "MoreTests")]
    assert all("tests of build" in log for log in logs)
    assert logs[0].count("Running command") == logs[1].count("Running command") == 4


def test_a_build_past_its_timeout_is_stopped_and_fails(tmp_path: Path) -> None:
    spec = parse_buildspec({"version": "0.2", "phases": {"build": {"commands": ["sleep 30", "echo never"]}}})
    log = io.StringIO()
    context = BuildContext(
        source_dir=tmp_path,
        base_environment={"PATH": "/usr/bin:/bin"},
        overrides={},
        log=log,
        work_dir=tmp_path / "tmp",
        build_id="p:1",
        build_number=1,
        source_version="c",
        timeout_seconds=0.5,
    )
    started = time.monotonic()

    result = run_build(spec, context)

    assert not result.succeeded
    assert result.message == "build timed out in phase BUILD after 0.00833333 minutes (TimeoutInMinutes)"
    assert time.monotonic() - started < 10
    assert "never" not in log.getvalue().replace("echo never", "")


def test_the_build_projects_timeout_in_minutes_is_read_from_the_pipeline(repo: Path) -> None:
    from rehearsal.release.pipeline_model import load_pipeline  # noqa: PLC0415

    def shorten(_: list[dict[str, Any]], template: dict[str, Any]) -> None:
        template["Resources"]["StagingIntegrationTests"]["Properties"]["TimeoutInMinutes"] = 15

    (repo / TEMPLATE).write_text(edit_pipeline(repo, shorten)[TEMPLATE])

    model = load_pipeline(repo / "pipeline-assembly")

    assert model.stage("Staging").actions[2].project is not None
    assert model.stage("Staging").actions[2].project.timeout_minutes == 15
    assert model.stage("Build").actions[0].project is not None
    assert model.stage("Build").actions[0].project.timeout_minutes == 60


def test_an_unknown_condition_result_fails_the_stage_closed_naming_it(repo: Path) -> None:
    def retry_on_failure(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[3]["OnFailure"] = {"Result": "RETRY", "RetryConfiguration": {"RetryMode": "ALL_ACTIONS"}}

    commit(repo, "retry staging", edit_pipeline(repo, retry_on_failure))
    deployer = InMemoryDeployer()

    run_release(repo, deployer)

    summary = summary_of(repo)
    assert summary["failed_stage"] == "Staging"
    assert summary["message"] == "OnFailure result RETRY is not emulated offline: fails closed"
    assert deployer.requests == []


def test_an_action_kind_not_emulated_fails_closed_naming_it(repo: Path) -> None:
    def invoke_lambda(stages: list[dict[str, Any]], _: dict[str, Any]) -> None:
        stages[4]["Actions"][0]["ActionTypeId"] = {
            "Category": "Invoke",
            "Owner": "AWS",
            "Provider": "Lambda",
            "Version": "1",
        }

    commit(repo, "a lambda gate", edit_pipeline(repo, invoke_lambda))

    run_release(repo, InMemoryDeployer())

    assert summary_of(repo)["message"] == "Release: action type AWS/Invoke/Lambda is not emulated offline"


def test_what_was_not_emulated_is_in_the_summary_and_printed_at_the_end(repo: Path) -> None:
    def cache_the_tests(_: list[dict[str, Any]], template: dict[str, Any]) -> None:
        source = template["Resources"]["StagingIntegrationTests"]["Properties"]["Source"]
        spec = json.loads(source["BuildSpec"]) if source["BuildSpec"].lstrip().startswith("{") else None
        if spec is None:
            import yaml  # noqa: PLC0415

            spec = yaml.safe_load(source["BuildSpec"])
        spec["cache"] = {"paths": ["/root/.cache/pip/**/*"]}
        source["BuildSpec"] = json.dumps(spec)

    commit(repo, "cache pip", edit_pipeline(repo, cache_the_tests))
    out = io.StringIO()

    run_release(repo, InMemoryDeployer(), out=out)

    facts = summary_of(repo)["not_emulated"]
    assert {
        "what": "buildspec cache.paths",
        "where": "Staging/IntegrationTests",
        "why": "cache.paths are not restored: the project's cache is NO_CACHE; CodeBuild uses cache.paths "
        "only with a local custom or an S3 cache",
    } in facts
    assert any(f["what"] == "CodeStarSourceConnection connection" for f in facts)
    end = out.getvalue().split("Release ")[-1]
    assert f"not emulated ({len(facts)}):" in end
    assert "buildspec cache.paths at Staging/IntegrationTests: cache.paths are not restored" in end


def test_without_restart_on_update_a_pipeline_change_cancels_the_release_and_the_next_one_runs_it(
    repo: Path,
) -> None:
    deployer = InMemoryDeployer()
    good = commit(repo, "good")
    run_release(repo, deployer)

    def no_restart_and_rename(stages: list[dict[str, Any]], template: dict[str, Any]) -> None:
        template["Resources"]["PipelineC660917D"]["Properties"]["RestartExecutionOnUpdate"] = False
        stages[3]["Actions"][2]["Name"] = "AcceptanceTests"

    changed = commit(repo, "pipeline change", edit_pipeline(repo, no_restart_and_rename))

    cancelled = run_release(repo, deployer)

    summary = summary_of(repo)
    assert not cancelled.succeeded
    assert summary["failed_stage"] == "UpdatePipeline"
    assert summary["message"].startswith("cancelled: the pipeline's definition was updated")
    assert summary["restarts"] == []
    assert deployer.serving["staging"] == good

    again = run_release(repo, deployer)

    assert again.succeeded
    assert deployer.serving["production"] == changed
    assert ("Staging", "AcceptanceTests") in [
        (s["name"], a["action"]) for s in summary_of(repo)["stages"] for a in s["actions"]
    ]
