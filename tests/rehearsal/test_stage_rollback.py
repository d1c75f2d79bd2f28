"""A stage's `OnFailure` ROLLBACK, as the real pipeline declares it (ADR 0018), on the fixture pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rehearsal.pipeline_model import load_pipeline
from tests.rehearsal.release_support import InMemoryDeployer, commit, make_project, run_release

TEMPLATE = "pipeline-assembly/OrdersPipeline.template.json"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    project = make_project(tmp_path)
    template = json.loads((project / TEMPLATE).read_text())
    for stage in template["Resources"]["PipelineC660917D"]["Properties"]["Stages"]:
        if stage["Name"] == "Staging":
            stage.pop("OnSuccess", None)
            stage["OnFailure"] = {"Result": "ROLLBACK"}
    # Integration tests fail on a commit whose service says it is broken.
    makefile = (
        (project / "Makefile")
        .read_text()
        .replace(
            '\techo "integration tests against $$BASE_URL"\n',
            '\t! grep -q broken service.txt\n\techo "integration tests against $$BASE_URL"\n',
        )
    )
    commit(
        project, "staging rolls back when it fails", {TEMPLATE: json.dumps(template), "Makefile": makefile}
    )
    return project


def _summary(repo: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((repo / ".rehearsal/runs/latest/summary.json").read_text())
    return summary


def _actions(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (s["name"], a["action"], a["state"], a.get("message", ""))
        for s in summary["stages"]
        for a in s["actions"]
    ]


def test_the_model_keeps_the_stages_on_failure_result(repo: Path) -> None:
    (stage,) = [
        s for s in load_pipeline(repo / "pipeline-assembly", "OrdersPipeline").stages if s.name == "Staging"
    ]
    assert stage.on_failure_result == "ROLLBACK"
    assert (
        "  Staging on-failure ROLLBACK"
        in load_pipeline(repo / "pipeline-assembly", "OrdersPipeline").describe()
    )


def test_a_stage_whose_tests_fail_rolls_back_to_the_release_it_served_before(repo: Path) -> None:
    deployer = InMemoryDeployer()
    good = commit(repo, "good")
    assert run_release(repo, deployer).succeeded
    commit(repo, "broken", {"service.txt": "orders service: broken\n"})

    result = run_release(repo, deployer)

    summary = _summary(repo)
    assert not result.succeeded
    assert summary["failed_stage"] == "Staging"
    assert ("Staging", "Rollback", "Succeeded") in [a[:3] for a in _actions(summary)]
    assert summary["environments"]["staging"]["commit"] == good
    assert deployer.serving["staging"] == good


def test_a_failed_canary_leaves_nothing_to_roll_back(repo: Path) -> None:
    deployer = InMemoryDeployer()
    good = commit(repo, "good")
    run_release(repo, deployer)
    commit(repo, "handler raises", {"service.txt": "orders service: faulty\n"})

    run_release(repo, deployer)

    summary = _summary(repo)
    (rollback,) = [a for a in _actions(summary) if a[:2] == ("Staging", "Rollback")]
    assert rollback[2:] == ("Succeeded", "staging already serves its previous release")
    assert deployer.serving["staging"] == good


def test_a_stage_that_never_succeeded_is_not_rolled_back(repo: Path) -> None:
    commit(repo, "broken from the start", {"service.txt": "orders service: broken\n"})

    result = run_release(repo, InMemoryDeployer())

    assert not result.succeeded
    assert not [a for a in _actions(_summary(repo)) if a[1] == "Rollback"]
