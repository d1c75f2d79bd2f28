"""`make deploy` deploys what the branch holds: example values and unpushed pipeline changes are refused."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline import deploy_guard
from tests.infra.conftest import FIXTURE_CONTEXT, ROOT
from tests.infra.test_pipeline_config import EXAMPLE_VALUES

BRANCH = FIXTURE_CONTEXT["branch"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A clone of a bare remote whose branch holds cdk.json, pipeline/ and buildspecs/, all pushed."""
    remote, repo = tmp_path / "remote.git", tmp_path / "repo"
    _git(tmp_path, "init", "--quiet", "--bare", str(remote))
    _git(tmp_path, "init", "--quiet", "-b", BRANCH, str(repo))
    for key, value in (("user.email", "dev@acme.test"), ("user.name", "Dev")):
        _git(repo, "config", key, value)
    (repo / "cdk.json").write_text(json.dumps({"context": FIXTURE_CONTEXT}))
    for folder, name in (("pipeline", "app.py"), ("buildspecs", "build.yml")):
        (repo / folder).mkdir()
        (repo / folder / name).write_text("# v1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", "v1")
    _git(repo, "remote", "add", "origin", str(remote))
    _git(repo, "push", "--quiet", "-u", "origin", BRANCH)
    return repo


def _refusal(repo: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert deploy_guard.main(repo) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_a_checkout_equal_to_the_remote_branch_may_deploy(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy_guard.main(checkout) == 0
    assert f"match origin/{BRANCH}" in capsys.readouterr().out


def test_an_uncommitted_cdk_json_change_is_refused_with_the_fix(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (checkout / "cdk.json").write_text(json.dumps({"context": {**FIXTURE_CONTEXT, "stagingBakeMinutes": 3}}))
    line = _refusal(checkout, capsys)
    assert line.startswith(f"make deploy: cdk.json differ from origin/{BRANCH}")
    assert line.endswith(f"commit and push them (git push origin {BRANCH}), then run make deploy again")


def test_a_committed_but_unpushed_pipeline_change_is_refused(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (checkout / "pipeline" / "app.py").write_text("# v2\n")
    _git(checkout, "commit", "--quiet", "-am", "v2")
    assert _refusal(checkout, capsys).startswith("make deploy: pipeline/app.py differ from")


def test_a_new_untracked_file_in_pipeline_is_refused(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (checkout / "pipeline" / "extra.py").write_text("# new\n")
    (checkout / "buildspecs" / "build.yml").write_text("# v2\n")
    line = _refusal(checkout, capsys)
    assert re.match(r"make deploy: buildspecs/build.yml and 1 more differ", line)


def test_a_branch_missing_on_the_remote_is_refused_with_the_push_to_make(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = {**FIXTURE_CONTEXT, "branch": "not-pushed"}
    (checkout / "cdk.json").write_text(json.dumps({"context": context}))
    line = _refusal(checkout, capsys)
    assert line == (
        "make deploy: cannot read branch not-pushed from remote origin: push it first "
        "(git push -u origin not-pushed), then run make deploy again"
    )


def test_the_shipped_example_values_are_refused_before_git_is_asked(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (checkout / "cdk.json").write_text(json.dumps({"context": {**FIXTURE_CONTEXT, **EXAMPLE_VALUES}}))
    assert _refusal(checkout, capsys).startswith(
        "cdk.json: pipelineAccount still holds the shipped example value"
    )


def _cdk_commands(target: str, *args: str) -> list[str]:
    dry_run = subprocess.run(  # make prints its recipes, runs nothing
        ["make", "-n", target, *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [line for line in dry_run.stdout.splitlines() if line.startswith("cdk ")]


def test_make_deploy_synthesizes_with_the_same_context_as_the_build() -> None:
    (synth,) = _cdk_commands("synth")
    (deploy,) = _cdk_commands("deploy")
    assert "-c" not in synth.split() and "-c" not in deploy.split()
    build = yaml.safe_load((ROOT / "buildspecs" / "build.yml").read_text())["phases"]["build"]["commands"]
    make_runs = [command.split() for command in build if command.startswith("make ")]
    assert any("synth" in words and not any("CDK_ARGS" in w for w in words) for words in make_runs)


def test_make_deploy_refuses_context_overrides_with_one_line() -> None:
    result = subprocess.run(
        ["make", "deploy", "CDK_ARGS=-c stagingBakeMinutes=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout.strip().splitlines()[-1].startswith("make deploy takes no CDK_ARGS")
