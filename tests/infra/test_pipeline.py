"""The synthesized release pipeline: stage order, actions, buildspecs, security and cdk-nag.

The app is synthesized once per session from the fixture context (tests/infra/conftest.py), with
cdk-nag attached as `make synth` does; the tests read the template it wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App, Stack
from aws_cdk.assertions import Match, Template

from pipeline.app import STACK_ID
from pipeline.buildspec_step import BUILD_IMAGE, BUILDSPEC_DIR
from rehearsal.release.build_image import resolve_version
from tests.infra.conftest import (
    FIXTURE_CONTEXT,
    PIPELINE_ACCOUNT,
    PRODUCTION_ACCOUNT,
    REGION,
    ROOT,
    STAGING_ACCOUNT,
    Synthesized,
)
from tests.infra.cross_account_support import parameter_overrides

STAGES = ["Source", "Build", "UpdatePipeline", "Staging", "Approval", "Production"]
SERVICE = FIXTURE_CONTEXT["serviceName"]


def _stage(stages: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(stage for stage in stages if stage["Name"] == name)


def _providers(stage: dict[str, Any]) -> list[tuple[int, str]]:
    return sorted((a["RunOrder"], a["ActionTypeId"]["Provider"]) for a in stage["Actions"])


def _resources(template_json: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == kind}


def _statements(template_json: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, policy in _resources(template_json, "AWS::IAM::Policy").items():
        found += [(logical_id, s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- shape


def test_stages_run_in_release_order(stages: list[dict[str, Any]]) -> None:
    assert [stage["Name"] for stage in stages] == STAGES


def test_each_stage_holds_the_expected_action_types(stages: list[dict[str, Any]]) -> None:
    assert _providers(_stage(stages, "Source")) == [(1, "CodeStarSourceConnection")]
    assert _providers(_stage(stages, "Build")) == [(1, "CodeBuild")]
    assert _providers(_stage(stages, "UpdatePipeline")) == [(1, "CloudFormation")]
    for name in ("Staging", "Production"):
        assert _providers(_stage(stages, name)) == [
            (1, "CloudFormation"),
            (2, "CloudFormation"),
            (3, "CodeBuild"),
        ]
    assert _providers(_stage(stages, "Approval")) == [(1, "Manual")]


def test_at_most_one_codebuild_start_up_runs_before_staging_deploys(stages: list[dict[str, Any]]) -> None:
    before_staging = stages[: [s["Name"] for s in stages].index("Staging")]
    start_ups = [
        a for s in before_staging for a in s["Actions"] if a["ActionTypeId"]["Provider"] == "CodeBuild"
    ]
    assert len(start_ups) == 1  # the target is at most 2; self-mutation costs none


def test_pipeline_stack_has_no_assets_so_there_is_no_assets_stage(cdk_out: Path) -> None:
    assets = json.loads((cdk_out / f"{STACK_ID}.assets.json").read_text())
    assert assets.get("dockerImages", {}) == {}
    assert [f["source"]["path"] for f in assets["files"].values()] == [f"{STACK_ID}.template.json"]


def test_pipeline_is_v2_with_explicit_execution_mode_and_branch_push_trigger(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CodePipeline::Pipeline",
        {
            "PipelineType": "V2",
            "ExecutionMode": FIXTURE_CONTEXT["executionMode"],
            "Triggers": [
                {
                    "ProviderType": "CodeStarSourceConnection",
                    "GitConfiguration": {
                        "SourceActionName": Match.any_value(),
                        "Push": [
                            {
                                "Branches": {"Includes": [FIXTURE_CONTEXT["branch"]]},
                                "FilePaths": {"Excludes": FIXTURE_CONTEXT["triggerFilePathsExcluded"]},
                            }
                        ],
                    },
                }
            ],
        },
    )


def test_source_reads_the_configured_repository_and_branch(stages: list[dict[str, Any]]) -> None:
    (action,) = _stage(stages, "Source")["Actions"]
    assert action["Configuration"]["FullRepositoryId"] == FIXTURE_CONTEXT["repository"]
    assert action["Configuration"]["BranchName"] == FIXTURE_CONTEXT["branch"]
    assert action["Configuration"]["ConnectionArn"] == FIXTURE_CONTEXT["connectionArn"]


def test_source_role_may_use_the_connection_under_both_service_prefixes(
    template_json: dict[str, Any],
) -> None:
    granted = {
        action
        for _, s in _statements(template_json)
        if FIXTURE_CONTEXT["connectionArn"] in _as_list(s["Resource"])
        for action in _as_list(s["Action"])
    }
    assert {"codestar-connections:UseConnection", "codeconnections:UseConnection"} <= granted


# ---------------------------------------------------------------- build and buildspecs


def _projects(template_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _resources(template_json, "AWS::CodeBuild::Project")


@pytest.mark.parametrize("buildspec_file", ["build.yml", "integration.yml", "smoke.yml"])
def test_codebuild_project_embeds_its_buildspec_file_verbatim(
    template_json: dict[str, Any], buildspec_file: str
) -> None:
    expected = yaml.safe_load((BUILDSPEC_DIR / buildspec_file).read_text())
    embedded = [json.loads(p["Properties"]["Source"]["BuildSpec"]) for p in _projects(template_json).values()]
    assert embedded.count(expected) == 1


def test_buildspecs_call_only_make_targets() -> None:
    for path in BUILDSPEC_DIR.glob("*.yml"):
        phases = yaml.safe_load(path.read_text())["phases"]
        commands = [c for phase in phases.values() for c in phase.get("commands", [])]
        assert commands, path.name
        assert all(c.startswith("make ") for c in commands), path.name


def test_build_outputs_are_the_buildspecs_secondary_artifacts(stages: list[dict[str, Any]]) -> None:
    (action,) = _stage(stages, "Build")["Actions"]
    outputs = {artifact["Name"] for artifact in action["OutputArtifacts"]}
    buildspec = yaml.safe_load((BUILDSPEC_DIR / "build.yml").read_text())
    assert outputs == set(buildspec["artifacts"]["secondary-artifacts"])


def test_build_publishes_test_and_coverage_report_groups(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CodeBuild::ReportGroup", {"Name": f"{SERVICE}-build-tests", "Type": "TEST"}
    )
    template.has_resource_properties(
        "AWS::CodeBuild::ReportGroup", {"Name": f"{SERVICE}-build-coverage", "Type": "CODE_COVERAGE"}
    )
    reports = yaml.safe_load((BUILDSPEC_DIR / "build.yml").read_text())["reports"]
    assert {name: r["file-format"] for name, r in reports.items()} == {
        "tests": "JUNITXML",
        "coverage": "COBERTURAXML",
    }


def test_build_packages_with_the_artifact_key_and_may_read_the_powertools_parameters(
    stages: list[dict[str, Any]], template_json: dict[str, Any]
) -> None:
    (build,) = _stage(stages, "Build")["Actions"]
    # The variables are a JSON string joined around tokens: the key's ARN follows ARTIFACT_KEY_ID's name.
    parts = build["Configuration"]["EnvironmentVariables"]["Fn::Join"][1]
    (index,) = [i for i, part in enumerate(parts) if isinstance(part, str) and '"ARTIFACT_KEY_ID"' in part]
    key, attribute = parts[index + 1]["Fn::GetAtt"]
    assert key.startswith("ArtifactsKey") and attribute == "Arn"
    (statement,) = [
        s for _, s in _statements(template_json) if s.get("Sid") == "ReadPowertoolsLayerParameters"
    ]
    assert statement["Action"] == "ssm:GetParameter"
    assert statement["Resource"] == f"arn:aws:ssm:{REGION}::parameter/aws/service/powertools/*"


def test_codebuild_projects_use_the_pinned_image_and_the_artifact_key(template: Template) -> None:
    template.all_resources_properties(
        "AWS::CodeBuild::Project",
        {
            "Environment": Match.object_like({"Image": "aws/codebuild/standard:7.0"}),
            "EncryptionKey": {"Fn::GetAtt": [Match.string_like_regexp("ArtifactsKey"), "Arn"]},
        },
    )


def test_every_codebuild_project_keeps_its_buildspecs_cache_paths_in_a_local_custom_cache(
    template_json: dict[str, Any],
) -> None:
    local_custom = {"Type": "LOCAL", "Modes": ["LOCAL_CUSTOM_CACHE"]}
    for logical_id, project in _projects(template_json).items():
        assert project["Properties"]["Cache"] == local_custom, logical_id
        spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
        assert "/root/.cache/venvs/**/*" in spec["cache"]["paths"], logical_id


@pytest.mark.parametrize("buildspec_file", ["build.yml", "integration.yml", "smoke.yml"])
def test_buildspecs_select_runtime_versions_the_pinned_image_preinstalls(buildspec_file: str) -> None:
    spec = yaml.safe_load((BUILDSPEC_DIR / buildspec_file).read_text())
    for name, version in spec["phases"]["install"]["runtime-versions"].items():
        assert resolve_version(BUILD_IMAGE.image_id, name, str(version)) == str(version)


# ---------------------------------------------------------------- deployments


def _deploy_actions(stages: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [a for a in _stage(stages, name)["Actions"] if a["ActionTypeId"]["Provider"] == "CloudFormation"]


def test_staging_and_production_deploy_the_same_packaged_template_artifact(
    stages: list[dict[str, Any]],
) -> None:
    (build,) = _stage(stages, "Build")["Actions"]
    built = {artifact["Name"] for artifact in build["OutputArtifacts"]}
    paths = set()
    for name in ("Staging", "Production"):
        prepare = _deploy_actions(stages, name)[0]
        assert prepare["Configuration"]["ActionMode"] == "CHANGE_SET_REPLACE"
        paths.add(prepare["Configuration"]["TemplatePath"])
        assert prepare["InputArtifacts"][0]["Name"] in built
    assert paths == {"Build_PackagedTemplate::packaged.yaml"}


@pytest.mark.parametrize(
    ("stage", "environment", "canary"),
    [
        ("Staging", "staging", FIXTURE_CONTEXT["stagingCanaryType"]),
        ("Production", "production", FIXTURE_CONTEXT["productionCanaryType"]),
    ],
)
def test_deploy_passes_environment_parameters_and_capabilities(
    stages: list[dict[str, Any]], stage: str, environment: str, canary: str
) -> None:
    prepare, execute = _deploy_actions(stages, stage)
    overrides = parameter_overrides(prepare)
    assert {key: overrides[key] for key in ("Environment", "DeploymentType")} == {
        "Environment": environment,
        "DeploymentType": canary,
    }
    assert prepare["Configuration"]["Capabilities"] == "CAPABILITY_IAM,CAPABILITY_AUTO_EXPAND"
    assert (
        prepare["Configuration"]["StackName"]
        == execute["Configuration"]["StackName"]
        == f"{SERVICE}-{environment}"
    )
    assert execute["Configuration"]["ActionMode"] == "CHANGE_SET_EXECUTE"
    assert execute["Configuration"]["ChangeSetName"] == prepare["Configuration"]["ChangeSetName"]


def test_deploys_assume_the_target_accounts_bootstrap_roles(stages: list[dict[str, Any]]) -> None:
    for stage, account in (
        ("Staging", FIXTURE_CONTEXT["stagingAccount"]),
        ("Production", FIXTURE_CONTEXT["productionAccount"]),
    ):
        prepare, _ = _deploy_actions(stages, stage)
        assert account in json.dumps(prepare["RoleArn"])
        qualifier = FIXTURE_CONTEXT["bootstrapQualifier"]
        assert f"cdk-{qualifier}-cfn-exec-role-{account}" in json.dumps(prepare["Configuration"]["RoleArn"])


def test_single_account_topology_deploys_with_the_pipeline_accounts_own_roles(
    single_account: Synthesized,
) -> None:
    qualifier = FIXTURE_CONTEXT["bootstrapQualifier"]
    for stage in ("Staging", "Production"):
        prepare, _ = _deploy_actions(single_account.stages, stage)
        assert f"cdk-{qualifier}-cfn-exec-role-{PIPELINE_ACCOUNT}" in json.dumps(prepare["Configuration"])
    rendered = json.dumps(single_account.template_json)
    assert STAGING_ACCOUNT not in rendered
    assert PRODUCTION_ACCOUNT not in rendered


def test_a_custom_bootstrap_qualifier_leaves_no_default_qualifier_anywhere_in_cdk_out(cdk_out: Path) -> None:
    assert FIXTURE_CONTEXT["bootstrapQualifier"] != "hnb659fds"
    files = [path for path in cdk_out.rglob("*") if path.is_file()]
    assert files
    assert [path.name for path in files if "hnb659fds" in path.read_text(errors="replace")] == []
    template = json.loads((cdk_out / f"{STACK_ID}.template.json").read_text())
    version = template["Parameters"]["BootstrapVersion"]["Default"]
    assert version == f"/cdk-bootstrap/{FIXTURE_CONTEXT['bootstrapQualifier']}/version"


@pytest.mark.parametrize(
    ("stage", "namespace"), [("Staging", "StagingStack"), ("Production", "ProductionStack")]
)
def test_tests_after_a_deploy_receive_that_stacks_outputs(
    stages: list[dict[str, Any]], stage: str, namespace: str
) -> None:
    execute = _deploy_actions(stages, stage)[1]
    (tests,) = [a for a in _stage(stages, stage)["Actions"] if a["ActionTypeId"]["Provider"] == "CodeBuild"]
    assert execute["Namespace"] == namespace
    variables = json.loads(tests["Configuration"]["EnvironmentVariables"])
    for output, variable in [("ApiUrl", "BASE_URL"), ("OrdersTableName", "ORDERS_TABLE_NAME")]:
        assert {"name": variable, "type": "PLAINTEXT", "value": f"#{{{namespace}.{output}}}"} in variables
    assert tests["RunOrder"] > execute["RunOrder"]


def test_self_mutation_updates_this_stack_from_the_build_output(stages: list[dict[str, Any]]) -> None:
    (action,) = _stage(stages, "UpdatePipeline")["Actions"]
    assert action["Configuration"]["ActionMode"] == "CREATE_UPDATE"
    assert action["Configuration"]["StackName"] == f"{SERVICE}-pipeline"
    assert action["Configuration"]["TemplatePath"] == f"Build_CloudAssembly::{STACK_ID}.template.json"


# ---------------------------------------------------------------- approval and notifications


def test_approval_notifies_release_managers_with_a_review_url_and_comment(
    template: Template, stages: list[dict[str, Any]]
) -> None:
    (action,) = _stage(stages, "Approval")["Actions"]
    assert action["Configuration"]["CustomData"]
    assert "Ref" in action["Configuration"]["NotificationArn"]
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": FIXTURE_CONTEXT["releaseManagerEmails"][0],
            "TopicArn": action["Configuration"]["NotificationArn"],
        },
    )


def test_review_url_names_the_commit_being_approved(stages: list[dict[str, Any]]) -> None:
    (source,) = _stage(stages, "Source")["Actions"]
    (approval,) = _stage(stages, "Approval")["Actions"]
    commit = f"#{{{source['Namespace']}.CommitId}}"
    expected = FIXTURE_CONTEXT["reviewUrl"].replace("{commitId}", commit)
    assert approval["Configuration"]["ExternalEntityLink"] == expected


def test_a_self_mutation_restarts_the_release_with_the_commit_that_changed_the_pipeline(
    template: Template,
) -> None:
    template.has_resource_properties("AWS::CodePipeline::Pipeline", {"RestartExecutionOnUpdate": True})


def test_only_the_release_manager_role_may_approve(template_json: dict[str, Any]) -> None:
    approving = [
        (logical_id, s)
        for logical_id, s in _statements(template_json)
        if "codepipeline:PutApprovalResult" in _as_list(s["Action"])
    ]
    assert len(approving) == 1
    logical_id, statement = approving[0]
    assert statement["Resource"]["Fn::Join"][1][-1].endswith(f":{SERVICE}-release/Approval/Release")
    policy = template_json["Resources"][logical_id]["Properties"]
    (role,) = policy["Roles"]
    trust = template_json["Resources"][role["Ref"]]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"]["AWS"] for s in trust] == FIXTURE_CONTEXT["approverPrincipals"]
    assert template_json["Resources"][role["Ref"]]["Properties"]["RoleName"] == f"{SERVICE}-release-managers"
    assert template_json["Outputs"]["ReleaseManagerRoleArn"]["Value"] == {"Fn::GetAtt": [role["Ref"], "Arn"]}


def _release_manager_statements(template_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (approving,) = [
        logical_id
        for logical_id, s in _statements(template_json)
        if "codepipeline:PutApprovalResult" in _as_list(s["Action"])
    ]
    document = template_json["Resources"][approving]["Properties"]["PolicyDocument"]
    return {s["Sid"]: s for s in document["Statement"]}


def test_release_managers_may_use_the_console_and_list_pipelines_only_by_wildcard(
    template_json: dict[str, Any],
) -> None:
    statements = _release_manager_statements(template_json)
    assert statements["ListPipelinesInTheConsole"]["Action"] == "codepipeline:ListPipelines"
    wildcard = [s for s in statements.values() if s["Resource"] == "*"]
    assert wildcard == [statements["ListPipelinesInTheConsole"]]
    # The bake runs in the test builds (ADR 0018): no stage has rules, so no rule executions to read.
    assert "codepipeline:ListRuleExecutions" not in statements["ReadThePipeline"]["Action"]


def test_release_managers_may_read_the_build_and_staging_test_evidence(template_json: dict[str, Any]) -> None:
    statements = _release_manager_statements(template_json)
    projects = [f"{SERVICE}-build", f"{SERVICE}-staging-integrationtests"]
    assert [r.rsplit("/", 1)[1] for r in statements["ReadEvidenceBuilds"]["Resource"]] == projects
    assert [r.split("/aws/codebuild/")[1] for r in statements["ReadEvidenceLogs"]["Resource"]] == [
        f"{name}:*" for name in projects
    ]
    reports = json.dumps(statements["ReadEvidenceReports"]["Resource"])
    assert "TestsReports" in reports and "CoverageReports" in reports
    assert "codebuild:DescribeTestCases" in statements["ReadEvidenceReports"]["Action"]


def test_notification_rule_reports_failed_succeeded_cancelled_superseded_and_pending_releases(
    template: Template,
) -> None:
    template.has_resource_properties(
        "AWS::CodeStarNotifications::NotificationRule",
        {
            "EventTypeIds": Match.array_with(
                [
                    "codepipeline-pipeline-pipeline-execution-failed",
                    "codepipeline-pipeline-pipeline-execution-succeeded",
                    "codepipeline-pipeline-pipeline-execution-canceled",
                    "codepipeline-pipeline-pipeline-execution-superseded",
                    "codepipeline-pipeline-manual-approval-needed",
                ]
            ),
            "Targets": [{"TargetType": "SNS", "TargetAddress": Match.any_value()}],
        },
    )


# ---------------------------------------------------------------- security


def test_artifacts_are_encrypted_with_a_rotating_key(template: Template) -> None:
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})}
                    )
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )


def test_artifact_bucket_refuses_requests_without_tls(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )


def test_no_iam_statement_allows_every_action(template_json: dict[str, Any]) -> None:
    for logical_id, statement in _statements(template_json):
        assert "*" not in _as_list(statement["Action"]), logical_id
        assert not any(a.endswith(":*") for a in _as_list(statement["Action"])), logical_id


# ---------------------------------------------------------------- scanners


def test_cdk_nag_reports_no_unacknowledged_findings(cdk_out: Path) -> None:
    report = json.loads((cdk_out / "validation-report.json").read_text())
    conclusions = {p["pluginName"]: (p["conclusion"], len(p["violations"])) for p in report["pluginReports"]}
    assert conclusions == {"AwsSolutions": ("success", 0), "Serverless": ("success", 0)}


def test_no_acknowledgment_is_stack_wide_and_each_has_a_reason(app: App) -> None:
    acknowledged = 0
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != "aws:cdk:acknowledged-rules":
                continue
            assert not isinstance(construct, (Stack, App)), construct.node.path
            for rule, reason in entry.data.items():
                assert "::" in rule and len(reason) > 20, (construct.node.path, rule)
                if "IAM5" in rule:
                    assert "[" in rule, (construct.node.path, rule)  # one finding, never the whole rule
                acknowledged += 1
    assert acknowledged > 0


def test_cfn_lint_finds_no_errors(cdk_out: Path) -> None:
    from cfnlint.api import ManualArgs, lint_file  # noqa: PLC0415 - slow import, one test

    config = (
        yaml.safe_load((ROOT / ".cfnlintrc.yaml").read_text()) if (ROOT / ".cfnlintrc.yaml").exists() else {}
    )
    matches = lint_file(
        cdk_out / f"{STACK_ID}.template.json",
        config=ManualArgs(regions=[REGION], ignore_checks=config.get("ignore_checks", [])),
    )
    errors = [str(m) for m in matches if m.rule.id.startswith("E")]
    assert errors == []
