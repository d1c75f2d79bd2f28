"""The pipeline diagram: what the fixture pipeline's Mermaid shows, and a run's states as classes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from rehearsal.base.errors import UserError
from rehearsal.cloud.template import load_template
from rehearsal.release.diagram import (
    README_END,
    README_START,
    RunStates,
    deployment_types,
    readme_diagram,
    render,
    with_readme_diagram,
)
from rehearsal.release.pipeline_model import PipelineModel, load_pipeline
from tests.rehearsal.release_support import ASSEMBLY

TEMPLATE = Path(__file__).parent / "fixtures" / "diagram" / "template.yaml"


@pytest.fixture(scope="module")
def model() -> PipelineModel:
    return load_pipeline(ASSEMBLY)


@pytest.fixture(scope="module")
def service_template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def node_label(diagram: str, text: str) -> str:
    """The one node line whose label holds `text`."""
    (line,) = [line for line in diagram.splitlines() if text in line]
    return line


def stage_block(diagram: str, stage: str) -> list[str]:
    lines = diagram.splitlines()
    start = next(i for i, line in enumerate(lines) if re.search(rf'subgraph s\d+\["{stage}"\]', line))
    end = lines.index("  end", start)
    return lines[start + 1 : end]


def test_stages_are_subgraphs_linked_in_the_pipelines_order(model: PipelineModel) -> None:
    diagram = render(model)

    titles = re.findall(r'subgraph (s\d+)\["([^"]+)"\]', diagram)
    assert [title for _, title in titles] == [s.name for s in model.stages]
    assert "  " + " --> ".join(node for node, _ in titles) in diagram.splitlines()


def test_actions_follow_their_run_order_inside_a_stage(model: PipelineModel) -> None:
    block = stage_block(render(model), "Staging")

    edges = [line.strip() for line in block if "-->" in line]
    assert edges == ["s4a1_1 --> s4a2_1", "s4a2_1 --> s4a3_1"]
    names = [m.group(1) for line in block if (m := re.match(r'\s+s4a\d+_\d+\["([^<"]+)', line))]
    assert names == ["Deploy", "Execute", "IntegrationTests"]


def test_actions_sharing_a_run_order_both_follow_the_group_before(
    model: PipelineModel, tmp_path: Path
) -> None:
    assembly = tmp_path / "assembly"
    shutil.copytree(ASSEMBLY, assembly)
    path = assembly / "OrdersPipeline.template.json"
    template = json.loads(path.read_text())
    staging = template["Resources"]["PipelineC660917D"]["Properties"]["Stages"][3]
    staging["Actions"][2]["RunOrder"] = 2  # the tests now run beside the execute action
    path.write_text(json.dumps(template))

    block = stage_block(render(load_pipeline(assembly)), "Staging")

    assert [line.strip() for line in block if "-->" in line] == ["s4a1_1 --> s4a2_1", "s4a1_1 --> s4a2_2"]


def test_the_canary_is_the_templates_deployment_preference_with_the_stages_parameter(
    model: PipelineModel, service_template: dict[str, Any]
) -> None:
    diagram = render(model, service_template=service_template)

    execute = node_label("\n".join(stage_block(diagram, "Staging")), "Execute")
    assert "CodeDeploy Canary10Percent5Minutes on 2 functions (DeploymentPreference)" in execute
    assert "CodeDeploy Linear10PercentEvery1Minute on 1 function (DeploymentPreference)" in execute


def test_without_a_service_template_no_canary_is_claimed(model: PipelineModel) -> None:
    assert "CodeDeploy" not in render(model)


def test_deployment_types_fall_back_to_the_parameters_default_and_skip_disabled_preferences(
    service_template: dict[str, Any],
) -> None:
    assert deployment_types(service_template, {}) == {"AllAtOnce": 2, "Linear10PercentEvery1Minute": 1}


def test_a_bake_rule_shows_its_alarm_wait_time_and_result(model: PipelineModel) -> None:
    block = "\n".join(stage_block(render(model), "Staging"))

    rule = node_label(block, "OnSuccess rule Bake")
    assert "CloudWatchAlarm: AlarmName orders-staging-bake, WaitTime 5 → ROLLBACK" in rule


def test_a_bake_inside_a_test_build_shows_its_minutes_and_alarm(model: PipelineModel, tmp_path: Path) -> None:
    assembly = tmp_path / "assembly"
    shutil.copytree(ASSEMBLY, assembly)
    path = assembly / "OrdersPipeline.template.json"
    # The buildspec is embedded as a JSON string: its quotes are escaped in the template.
    text = path.read_text().replace(r"\"make test-integration\"", r"\"make test-integration\", \"make bake\"")
    template = json.loads(text)
    staging = template["Resources"]["PipelineC660917D"]["Properties"]["Stages"][3]
    variables = json.loads(staging["Actions"][2]["Configuration"]["EnvironmentVariables"])
    variables += [{"name": "BAKE_MINUTES", "value": "7"}, {"name": "BAKE_ALARM_NAME", "value": "stg-bake"}]
    staging["Actions"][2]["Configuration"]["EnvironmentVariables"] = json.dumps(variables)
    staging["OnFailure"] = {"Result": "ROLLBACK"}
    path.write_text(json.dumps(template))

    block = "\n".join(stage_block(render(load_pipeline(assembly)), "Staging"))

    tests = node_label(block, "IntegrationTests")
    assert "make test-integration → make bake<br/>bake: 7 min, fails on stg-bake in ALARM" in tests
    assert "OnFailure: ROLLBACK<br/>a failed action rolls the stage back" in node_label(block, "OnFailure")


def test_the_approval_is_a_hexagon_that_says_how_it_is_asked(model: PipelineModel) -> None:
    approval = node_label(render(model), "Release<br/>")

    assert approval.strip().startswith("s5a1_1{{") and "manual approval" in approval


def test_self_mutation_says_a_changed_pipeline_restarts_the_release(model: PipelineModel) -> None:
    self_mutate = node_label(render(model), "SelfMutate")

    assert "updates this pipeline (OrdersPipeline)<br/>a changed pipeline restarts the release" in self_mutate


def test_the_source_shows_the_push_trigger(model: PipelineModel) -> None:
    branches = ", ".join(model.push_filters[0].branch_includes)

    assert f"push to {branches}" in node_label(render(model), "CodeStarSourceConnection")


def test_a_run_colours_each_action_by_its_state_and_unreached_ones_as_not_run(model: PipelineModel) -> None:
    states = RunStates.from_summary(
        {
            "stages": [
                {
                    "name": "Source",
                    "actions": [{"stage": "Source", "action": "example-org_orders", "state": "Succeeded"}],
                },
                {"name": "Staging", "actions": [{"stage": "Staging", "action": "Deploy", "state": "Failed"}]},
            ]
        }
    )

    diagram = render(model, states=states)

    assert "  class s1a1_1 succeeded" in diagram.splitlines()
    assert "  class s4a1_1 failed" in diagram.splitlines()
    assert "  class s6a2_1 notrun" in diagram.splitlines()
    assert re.search(r"^  classDef failed fill:", diagram, re.MULTILINE)


def test_without_a_run_no_state_classes_are_drawn(model: PipelineModel) -> None:
    assert "class" not in render(model)


def test_quotes_in_names_do_not_end_a_label(model: PipelineModel, tmp_path: Path) -> None:
    assembly = tmp_path / "assembly"
    shutil.copytree(ASSEMBLY, assembly)
    path = assembly / "OrdersPipeline.template.json"
    path.write_text(path.read_text().replace('"Name": "Release"', '"Name": "Release \\"now\\" <ok>"'))

    approval = node_label(render(load_pipeline(assembly)), "manual approval")

    assert "Release #quot;now#quot; #lt;ok#gt;" in approval


def test_the_readme_block_is_replaced_between_its_markers_and_read_back() -> None:
    readme = f"# Title\n\n{README_START}\n```mermaid\nold\n```\n{README_END}\n\nrest\n"

    updated = with_readme_diagram(readme, "flowchart TB\n  a --> b\n")

    assert readme_diagram(updated) == "flowchart TB\n  a --> b\n"
    assert updated.startswith("# Title\n\n") and updated.endswith("\n\nrest\n")


def test_a_readme_without_markers_is_refused_with_the_lines_to_add() -> None:
    with pytest.raises(UserError, match="no pipeline diagram block: add the lines"):
        with_readme_diagram("# Title\n", "flowchart TB\n")
