"""`rehearsal diagram` (make diagram) and `status --diagram` / `release --diagram` (a run, by state)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rehearsal.cli.main import main as rehearsal_main
from rehearsal.release.diagram import README_END, README_START, readme_diagram
from tests.rehearsal.release_support import ASSEMBLY, InMemoryDeployer, make_project
from tests.rehearsal.test_diagram import TEMPLATE


def main(argv: list[str]) -> int:
    return rehearsal_main(argv, deployer_factory=lambda state_dir, time_scale: InMemoryDeployer())


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("APPROVE", raising=False)
    monkeypatch.delenv("DIAGRAM", raising=False)
    return make_project(tmp_path)


def test_diagram_writes_the_readme_block_once_and_then_finds_it_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Service\n\n{README_START}\n```mermaid\nold\n```\n{README_END}\n")
    arguments = ["diagram", "--cdk-out", str(ASSEMBLY), "--template", str(TEMPLATE), "--readme", str(readme)]

    assert main(arguments) == 0
    first = capsys.readouterr().out
    assert main(arguments) == 0
    second = capsys.readouterr().out

    assert first.startswith("flowchart TB\n") and first.endswith(f"{readme}: diagram updated\n")
    assert second.endswith(f"{readme}: diagram already up to date\n")
    assert readme_diagram(readme.read_text()) == first.removesuffix(f"{readme}: diagram updated\n")


def test_diagram_without_a_cloud_assembly_says_to_synthesize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diagram", "--cdk-out", str(tmp_path / "cdk.out")]) == 2

    assert "run `make synth` first" in capsys.readouterr().err


def test_status_diagram_colours_a_rejected_release_by_its_actions_states(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["release", "--repo", str(repo), "--approve", "reject", "--quiet", "--time-scale", "0.01"])
    capsys.readouterr()

    assert main(["status", "--repo", str(repo), "--diagram"]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert "  class s4a3_1 succeeded" in lines  # Staging's integration tests
    assert "  class s5a1_1 failed" in lines  # the rejected approval
    assert "  class s6a1_1 notrun" in lines  # Production never started


def test_release_with_diagram_ends_with_the_run_as_a_diagram(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["release", "--repo", str(repo), "--approve", "auto", "--diagram", "--time-scale", "0.01"]) == 0
    )

    output = capsys.readouterr().out
    diagram = output[output.index("flowchart TB\n") :]
    assert "  class s6a2_1 succeeded" in diagram.splitlines()


def test_status_diagram_before_any_release_says_to_run_one(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--repo", str(repo), "--diagram"]) == 2

    assert "run `make release`" in capsys.readouterr().err


def test_diagram_refuses_a_readme_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "README.md"

    assert main(["diagram", "--cdk-out", str(ASSEMBLY), "--readme", str(missing)]) == 2

    assert f"{missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()


def test_status_diagram_refuses_a_run_of_another_pipeline_than_the_one_deployed(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["release", "--repo", str(repo), "--approve", "auto", "--quiet", "--time-scale", "0.01"])
    summary_path = repo / ".rehearsal/runs/latest/summary.json"
    summary = json.loads(summary_path.read_text())
    summary["pipeline"]["stack"] = "SomeOtherPipeline"
    summary_path.write_text(json.dumps(summary))
    capsys.readouterr()

    assert main(["status", "--repo", str(repo), "--diagram"]) == 2

    assert "released pipeline SomeOtherPipeline" in capsys.readouterr().err
