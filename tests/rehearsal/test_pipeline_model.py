"""The pipeline model reads stages, actions, buildspecs, conditions and triggers from a cloud assembly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rehearsal.errors import UserError
from rehearsal.pipeline_model import PipelineModel, load_pipeline
from tests.rehearsal.release_support import ASSEMBLY

REPO = Path(__file__).resolve().parents[2]
STAGES = ["Source", "Build", "UpdatePipeline", "Staging", "Approval", "Production"]


@pytest.fixture(scope="module")
def model() -> PipelineModel:
    return load_pipeline(ASSEMBLY)


def copy_assembly(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    target = tmp_path / "assembly"
    shutil.copytree(ASSEMBLY, target)
    return target, json.loads((target / "OrdersPipeline.template.json").read_text())


def save(assembly: Path, template: dict[str, Any]) -> None:
    (assembly / "OrdersPipeline.template.json").write_text(json.dumps(template))


def pipeline_of(template: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"]["PipelineC660917D"]["Properties"]
    return properties


def test_stages_come_in_the_order_of_the_synthesized_pipeline(model: PipelineModel) -> None:
    assert [s.name for s in model.stages] == STAGES
    assert (model.stack_name, model.pipeline_type, model.execution_mode) == ("OrdersPipeline", "V2", "QUEUED")


def test_actions_are_grouped_by_run_order(model: PipelineModel) -> None:
    groups = model.stage("Staging").action_groups()

    assert [[a.name for a in group] for group in groups] == [["Deploy"], ["Execute"], ["IntegrationTests"]]


def test_a_codebuild_action_carries_its_projects_buildspec_and_environment(model: PipelineModel) -> None:
    synth = model.stage("Build").actions[0]

    assert synth.project is not None and synth.project.buildspec is not None
    assert synth.project.buildspec["phases"]["build"]["commands"][:2] == ["make synth", "make package"]
    assert [(v.name, v.value) for v in synth.project.environment_variables] == [
        ("POWERTOOLS_SERVICE_NAME", "orders")
    ]
    assert [(v.name, v.value) for v in synth.environment_variables][1] == (
        "SOURCE_COMMIT",
        "#{Source.CommitId}",
    )
    assert (synth.input_artifacts, synth.output_artifacts) == (
        ("example_org_orders_Source",),
        ("Synth_Output", "Synth_package"),
    )
    assert synth.namespace == "Build"


def test_a_buildspec_inside_fn_join_is_parsed(model: PipelineModel) -> None:
    self_mutate = model.stage("UpdatePipeline").actions[0]

    assert self_mutate.project is not None and self_mutate.project.buildspec is not None
    assert self_mutate.project.buildspec["version"] == "0.2"
    assert self_mutate.self_mutation_stack == "OrdersPipeline"


def test_self_mutation_is_recognised_as_cdk_deploy_or_as_an_update_of_the_pipeline_stack(
    model: PipelineModel,
) -> None:
    updating = [a.name for s in model.stages for a in s.actions if model.updates_itself(a)]

    assert updating == ["SelfMutate"]


def test_cloudformation_actions_expose_mode_template_and_parameter_overrides(model: PipelineModel) -> None:
    deploy, execute, _ = model.stage("Production").actions + (None,)  # type: ignore[operator]

    assert deploy.configuration["ActionMode"] == "CHANGE_SET_REPLACE"
    assert deploy.configuration["TemplatePath"] == "Synth_package::packaged.yaml"
    assert deploy.parameter_overrides == {
        "Environment": "production",
        "DeploymentType": "Canary10Percent5Minutes",
    }
    assert execute.configuration["ActionMode"] == "CHANGE_SET_EXECUTE"
    assert deploy.configuration["RoleArn"] == "productionDeployRole.Arn"


def test_an_on_success_alarm_rule_names_the_alarm_through_its_ref(model: PipelineModel) -> None:
    (condition,) = model.stage("Staging").on_success

    assert condition.result == "ROLLBACK"
    assert [(r.name, r.provider, r.configuration["AlarmName"]) for r in condition.rules] == [
        ("Bake", "CloudWatchAlarm", "orders-staging-bake")
    ]


def test_the_manual_approval_keeps_its_configuration(model: PipelineModel) -> None:
    approval = model.stage("Approval").actions[0]

    assert (approval.type.category, approval.type.provider) == ("Approval", "Manual")
    assert approval.configuration["CustomData"] == "Release #{Source.CommitId} to production?"


@pytest.mark.parametrize(
    ("branch", "paths", "accepted"),
    [
        ("main", ["service/app.py"], True),
        ("main", None, True),
        ("feature/x", ["service/app.py"], False),
        ("main", ["docs/guide.md", "README.md"], False),
        ("main", ["README.md", "pipeline/app.py"], True),
    ],
)
def test_the_push_trigger_filters_branches_and_changed_paths(
    model: PipelineModel, branch: str, paths: list[str] | None, accepted: bool
) -> None:
    assert model.accepts_push(branch, paths) is accepted


def test_a_pipeline_without_triggers_leaves_the_branch_decision_to_the_caller(tmp_path: Path) -> None:
    assembly, template = copy_assembly(tmp_path)
    del pipeline_of(template)["Triggers"]
    save(assembly, template)

    assert load_pipeline(assembly).accepts_push("anything") is None


def test_changes_between_definitions_are_listed_and_an_equal_definition_has_none(tmp_path: Path) -> None:
    assembly, template = copy_assembly(tmp_path)
    pipeline_of(template)["Stages"][3]["Actions"][2]["Name"] = "AcceptanceTests"
    save(assembly, template)

    changes = load_pipeline(assembly).changes_from(load_pipeline(ASSEMBLY))

    assert any(c.startswith("+  Staging/AcceptanceTests") for c in changes)
    assert any(c.startswith("-  Staging/IntegrationTests") for c in changes)
    assert load_pipeline(ASSEMBLY).changes_from(load_pipeline(ASSEMBLY)) == []


def test_intrinsics_resolve_to_names_and_strings(tmp_path: Path) -> None:
    assembly, template = copy_assembly(tmp_path)
    configuration = pipeline_of(template)["Stages"][4]["Actions"][0]["Configuration"]
    configuration["ExternalEntityLink"] = {
        "Fn::Sub": ["https://${Host}/${AWS::Region}/${Bucket}", {"Host": "x.example"}]
    }
    configuration["Bucket"] = {"Ref": "ArtifactsBucket"}
    configuration["Version"] = {"Ref": "BootstrapVersion"}
    configuration["Plain"] = {"Fn::Sub": "${AWS::AccountId}-${ArtifactsBucket}"}
    configuration["Literal"] = {"Key": [True, 1]}
    save(assembly, template)

    approval = load_pipeline(assembly).stage("Approval").actions[0]

    assert approval.configuration["ExternalEntityLink"] == "https://x.example/us-east-1/${Bucket}".replace(
        "${Bucket}", "Bucket"
    )
    assert approval.configuration["Bucket"] == "artifactsbucket"
    assert approval.configuration["Version"] == "/cdk-bootstrap/hnb659fds/version"
    assert approval.configuration["Plain"] == "123456789012-artifactsbucket"
    assert approval.configuration["Literal"] == '{"Key":["true",1]}'


def test_a_project_without_an_embedded_buildspec_reads_one_from_the_source(tmp_path: Path) -> None:
    assembly, template = copy_assembly(tmp_path)
    template["Resources"]["StagingIntegrationTests"]["Properties"]["Source"]["BuildSpec"] = (
        "buildspecs/it.yml"
    )
    del template["Resources"]["BuildSynthProject"]["Properties"]["Source"]["BuildSpec"]
    save(assembly, template)

    model = load_pipeline(assembly)

    tests_project = model.stage("Staging").actions[2].project
    synth_project = model.stage("Build").actions[0].project
    assert tests_project is not None and (tests_project.buildspec, tests_project.buildspec_path) == (
        None,
        "buildspecs/it.yml",
    )
    assert synth_project is not None and synth_project.buildspec_path == "buildspec.yml"


def test_a_folder_without_a_manifest_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no manifest.json\\): run `make synth` first"):
        load_pipeline(tmp_path)


def test_an_assembly_without_a_pipeline_is_refused(tmp_path: Path) -> None:
    assembly, template = copy_assembly(tmp_path)
    del template["Resources"]["PipelineC660917D"]
    save(assembly, template)

    with pytest.raises(UserError, match="no AWS::CodePipeline::Pipeline in any stack"):
        load_pipeline(assembly)
    with pytest.raises(UserError, match="in stack Other"):
        load_pipeline(ASSEMBLY, "Other")


def test_two_pipelines_need_the_stack_named(tmp_path: Path) -> None:
    assembly, template = copy_assembly(tmp_path)
    manifest = json.loads((assembly / "manifest.json").read_text())
    manifest["artifacts"]["Second"] = {
        "type": "aws:cloudformation:stack",
        "properties": {"templateFile": "Second.json"},
    }
    (assembly / "manifest.json").write_text(json.dumps(manifest))
    (assembly / "Second.json").write_text(json.dumps(template))

    with pytest.raises(UserError, match="several pipelines"):
        load_pipeline(assembly)
    assert load_pipeline(assembly, "Second").stack_name == "Second"


def test_a_project_name_that_is_not_a_codebuild_project_is_refused(tmp_path: Path) -> None:
    assembly, template = copy_assembly(tmp_path)
    pipeline_of(template)["Stages"][1]["Actions"][0]["Configuration"]["ProjectName"] = {
        "Ref": "ArtifactsBucket"
    }
    save(assembly, template)

    with pytest.raises(UserError, match="not an AWS::CodeBuild::Project"):
        load_pipeline(assembly)


# ---------------------------------------------------------------- the real pipeline (pipeline/)


@pytest.fixture(scope="session")
def real_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthesize pipeline/ once per session (about 8 s) into a private folder."""
    out = tmp_path_factory.mktemp("real-cdk-out")
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    environment = {
        **os.environ,
        "CDK_OUTDIR": str(out),
        "CDK_CONTEXT_JSON": json.dumps(context),  # what the CDK CLI hands the app
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.app"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if not (out / "manifest.json").is_file():
        pytest.fail(f"synth of pipeline/ failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    return out


def test_the_real_pipeline_has_the_stages_of_the_architecture(real_assembly: Path) -> None:
    assert [s.name for s in load_pipeline(real_assembly).stages] == STAGES


def test_the_real_pipeline_embeds_a_buildspec_in_every_codebuild_action(real_assembly: Path) -> None:
    model = load_pipeline(real_assembly)
    codebuild = [a for s in model.stages for a in s.actions if a.type.provider == "CodeBuild"]

    assert codebuild
    assert all(a.project is not None and a.project.buildspec is not None for a in codebuild)


def test_the_real_pipeline_updates_itself_in_update_pipeline(real_assembly: Path) -> None:
    model = load_pipeline(real_assembly)

    assert [a.stage for s in model.stages for a in s.actions if model.updates_itself(a)] == ["UpdatePipeline"]


def test_the_real_pipelines_staging_bakes_in_its_test_build_and_rolls_back_on_failure(
    real_assembly: Path,
) -> None:
    staging = load_pipeline(real_assembly).stage("Staging")
    (tests,) = [a for a in staging.actions if a.type.provider == "CodeBuild"]

    assert staging.on_failure_result == "ROLLBACK"
    assert not staging.on_success
    assert "BAKE_ALARM_NAME" in {v.name for v in tests.environment_variables}


def test_the_real_pipelines_trigger_releases_the_configured_branch_only(real_assembly: Path) -> None:
    branch = json.loads((REPO / "cdk.json").read_text())["context"]["branch"]
    model = load_pipeline(real_assembly)

    assert model.accepts_push(branch, ["service/template.yaml"]) is True
    assert model.accepts_push(f"{branch}-not", ["service/template.yaml"]) is False


def test_a_changed_bake_time_or_trigger_is_a_change_of_the_definition(tmp_path: Path) -> None:
    assembly, template = copy_assembly(tmp_path)
    pipeline_of(template)["Stages"][3]["OnSuccess"]["Conditions"][0]["Rules"][0]["Configuration"][
        "WaitTime"
    ] = "7"
    pipeline_of(template)["Triggers"][0]["GitConfiguration"]["Push"][0]["Branches"]["Includes"] = ["trunk"]
    save(assembly, template)

    changes = load_pipeline(assembly).changes_from(load_pipeline(ASSEMBLY))

    assert any("on-success ROLLBACK rule Bake CloudWatchAlarm" in c and "WaitTime=7" in c for c in changes)
    assert any(c.startswith("+trigger push") and "trunk" in c for c in changes)


def test_a_project_named_by_string_is_found_by_its_name(tmp_path: Path) -> None:
    assembly, template = copy_assembly(tmp_path)
    template["Resources"]["BuildSynthProject"]["Properties"]["Name"] = "orders-build"
    pipeline_of(template)["Stages"][1]["Actions"][0]["Configuration"]["ProjectName"] = "orders-build"
    save(assembly, template)

    project = load_pipeline(assembly).stage("Build").actions[0].project

    assert project is not None and project.logical_id == "BuildSynthProject"
    pipeline_of(template)["Stages"][1]["Actions"][0]["Configuration"]["ProjectName"] = "elsewhere"
    save(assembly, template)
    with pytest.raises(UserError, match="ProjectName elsewhere is not a CodeBuild project"):
        load_pipeline(assembly)
