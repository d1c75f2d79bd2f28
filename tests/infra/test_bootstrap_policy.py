"""`make bootstrap`: the execution policy derived from the templates, the boundary, the API Gateway role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline import bootstrap
from pipeline.config import PipelineConfig
from pipeline.execution_policy import (
    BOUNDARY_SERVICES,
    MANAGED_POLICY_MAX_CHARS,
    ONLY_ON_ANY_RESOURCE,
    RESOURCE_TYPES,
    PolicyScope,
    execution_statements,
    handler_permissions,
    policy_documents,
    policy_size,
    required_actions,
)
from rehearsal.cloud import moto_fixes
from tests.infra.conftest import FIXTURE_CONTEXT, PIPELINE_ACCOUNT, REGION, STAGING_ACCOUNT, Synthesized
from tests.infra.test_service_template import _transform

SERVICE = FIXTURE_CONTEXT["serviceName"]
QUALIFIER = FIXTURE_CONTEXT["bootstrapQualifier"]
# What the pipeline hands the service stack (tests/infra/test_cross_account.py checks it does).
DEPLOYED_PARAMETERS = {
    "Environment": "staging",
    "DeploymentType": "Canary10Percent5Minutes",
    "PermissionsBoundaryArn": f"arn:aws:iam::{STAGING_ACCOUNT}:policy/{SERVICE}-permissions-boundary",
    "TestRunnerRoleArn": f"arn:aws:iam::{PIPELINE_ACCOUNT}:role/{SERVICE}-pipeline-TestsRole-1A2B3C",
}


def _config() -> PipelineConfig:
    return PipelineConfig.from_context(FIXTURE_CONTEXT)


@pytest.fixture(scope="module")
def scope() -> PolicyScope:
    return bootstrap.scope_for(_config(), account=STAGING_ACCOUNT, region=REGION)


@pytest.fixture(scope="module")
def statements(scope: PolicyScope) -> list[dict[str, Any]]:
    return execution_statements(scope)


@pytest.fixture(scope="module")
def service_template() -> dict[str, Any]:
    return _transform(DEPLOYED_PARAMETERS)


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    """moto's IAM with AWS managed policies loaded, as the real account has them."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    moto_fixes.parse_managed_policies_once()  # once per process, not per test (moto_fixes)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def _types(template: dict[str, Any]) -> set[str]:
    return {resource["Type"] for resource in template["Resources"].values()}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allows(statements: list[dict[str, Any]], action: str) -> bool:
    return any(
        s["Effect"] == "Allow" and any(fnmatchcase(action, pattern) for pattern in _as_list(s["Action"]))
        for s in statements
    )


# ---------------------------------------------------------------- derived from the templates


def test_policy_covers_exactly_the_resource_types_both_templates_contain(
    synthesized: Synthesized, single_account: Synthesized, service_template: dict[str, Any]
) -> None:
    contained = (
        _types(synthesized.template_json) | _types(single_account.template_json) | _types(service_template)
    )
    missing, stale = contained - RESOURCE_TYPES, RESOURCE_TYPES - contained
    assert not missing, f"add {sorted(missing)} to RESOURCE_TYPES in pipeline/execution_policy.py"
    assert not stale, f"no template contains {sorted(stale)} any more: remove it from RESOURCE_TYPES"


def test_every_handler_permission_the_types_need_is_allowed(statements: list[dict[str, Any]]) -> None:
    needed = required_actions(RESOURCE_TYPES, REGION)
    assert {"sqs:CreateQueue", "lambda:CreateFunction", "codepipeline:CreatePipeline"} <= needed
    assert [action for action in sorted(needed) if not _allows(statements, action)] == []


def test_handler_permissions_come_from_the_registry_schema() -> None:
    assert {"sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes"} <= handler_permissions(
        "AWS::SQS::Queue", REGION
    )


def test_a_new_resource_type_of_an_unscoped_service_fails_with_the_fix(scope: PolicyScope) -> None:
    with pytest.raises(ValueError, match=r"no resource scope for states actions: add one to _resources\(\)"):
        execution_statements(scope, RESOURCE_TYPES | {"AWS::StepFunctions::StateMachine"})


def test_a_resource_type_without_a_schema_fails_with_its_name(scope: PolicyScope) -> None:
    with pytest.raises(ValueError, match="AWS::Nothing::Here has no CloudFormation registry schema"):
        execution_statements(scope, {"AWS::Nothing::Here"})


def test_no_statement_grants_every_action_of_a_service(statements: list[dict[str, Any]]) -> None:
    actions = [a for s in statements for a in _as_list(s["Action"])]
    assert [a for a in actions if a.endswith(":*") or a == "*"] == []


def test_only_actions_iam_takes_on_any_resource_are_granted_on_any_resource(
    statements: list[dict[str, Any]],
) -> None:
    on_any = {a for s in statements if s["Resource"] == "*" for a in _as_list(s["Action"])}
    assert on_any
    assert on_any <= set(ONLY_ON_ANY_RESOURCE)


def test_service_resources_are_scoped_to_the_services_names(statements: list[dict[str, Any]]) -> None:
    (sqs,) = [s for s in statements if s["Sid"] == "ManageSqs"]
    assert sqs["Resource"] == [f"arn:aws:sqs:{REGION}:{STAGING_ACCOUNT}:{SERVICE}-*"]
    (dynamodb,) = [s for s in statements if s["Sid"] == "ManageDynamodb"]
    assert dynamodb["Resource"] == [f"arn:aws:dynamodb:{REGION}:{STAGING_ACCOUNT}:table/{SERVICE}-*"]


# ---------------------------------------------------------------- IAM: boundary and PassRole


def test_roles_are_created_only_with_the_services_permissions_boundary(
    statements: list[dict[str, Any]], scope: PolicyScope
) -> None:
    creating = [s for s in statements if "iam:CreateRole" in _as_list(s["Action"])]
    assert creating
    for statement in creating:
        assert statement["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": scope.boundary_arn}}
    assert scope.boundary_arn == f"arn:aws:iam::{STAGING_ACCOUNT}:policy/{SERVICE}-permissions-boundary"
    assert not _allows(statements, "iam:DeleteRolePermissionsBoundary")


def test_pass_role_names_the_receiving_service_and_covers_the_bootstrap_roles(
    statements: list[dict[str, Any]],
) -> None:
    passing = [s for s in statements if "iam:PassRole" in _as_list(s["Action"])]
    assert passing
    assert all("iam:PassedToService" in s["Condition"]["StringEquals"] for s in passing)
    resources = {r for s in passing for r in _as_list(s["Resource"])}
    assert f"arn:aws:iam::*:role/cdk-{QUALIFIER}-cfn-exec-role-*" in resources
    assert f"arn:aws:iam::{STAGING_ACCOUNT}:role/{SERVICE}-*" in resources


def test_every_role_of_the_service_template_carries_the_boundary(service_template: dict[str, Any]) -> None:
    roles = {k: v for k, v in service_template["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
    assert "DeploymentRole" in roles and "TestRole" in roles
    for logical_id, role in roles.items():
        boundary = role["Properties"].get("PermissionsBoundary")
        assert boundary == {
            "Fn::If": ["HasPermissionsBoundary", {"Ref": "PermissionsBoundaryArn"}, {"Ref": "AWS::NoValue"}]
        }, logical_id


def test_every_role_of_the_pipeline_stack_carries_the_boundary(synthesized: Synthesized) -> None:
    roles = {k: v for k, v in synthesized.template_json["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
    assert roles
    for logical_id, role in roles.items():
        assert f":policy/{SERVICE}-permissions-boundary" in json.dumps(
            role["Properties"]["PermissionsBoundary"]
        ), logical_id


def test_codedeploy_runs_as_the_templates_own_bounded_role(service_template: dict[str, Any]) -> None:
    groups = [
        v for v in service_template["Resources"].values() if v["Type"] == "AWS::CodeDeploy::DeploymentGroup"
    ]
    assert groups
    assert all(g["Properties"]["ServiceRoleArn"] == {"Fn::GetAtt": ["DeploymentRole", "Arn"]} for g in groups)


# ---------------------------------------------------------------- size


def test_the_policy_fits_iams_managed_policy_limits(scope: PolicyScope) -> None:
    documents = list(bootstrap.execution_policies(scope).values())
    # The cfn-exec role also holds the bootstrap's own policies: stay well under 10 attached policies.
    assert 1 <= len(documents) <= 5
    assert all(policy_size(document) <= MANAGED_POLICY_MAX_CHARS for document in documents)


def test_statements_are_split_over_several_policies_when_one_would_be_too_large() -> None:
    statement = {"Sid": "S", "Effect": "Allow", "Action": ["sqs:" + "A" * 2000], "Resource": "*"}
    documents = policy_documents([statement, {**statement, "Sid": "T"}, {**statement, "Sid": "U"}])
    assert len(documents) == 2
    assert [len(d["Statement"]) for d in documents] == [2, 1]


def test_a_statement_larger_than_a_policy_is_refused() -> None:
    statement = {"Sid": "Huge", "Effect": "Allow", "Action": ["sqs:" + "A" * 7000], "Resource": "*"}
    with pytest.raises(ValueError, match="statement Huge alone exceeds 6144 characters"):
        policy_documents([statement])


# ---------------------------------------------------------------- make bootstrap against (moto) IAM


def test_bootstrap_trusts_the_pipeline_account_with_every_execution_policy() -> None:
    command = bootstrap.bootstrap_command(
        account=STAGING_ACCOUNT, region=REGION, config=_config(), policy_arns=["arn:p1", "arn:p2"]
    )
    assert command[:3] == ["cdk", "bootstrap", f"aws://{STAGING_ACCOUNT}/{REGION}"]
    assert command[command.index("--trust") + 1] == PIPELINE_ACCOUNT
    assert command[command.index("--cloudformation-execution-policies") + 1] == "arn:p1,arn:p2"
    assert command[command.index("--qualifier") + 1] == QUALIFIER


def test_policies_are_created_then_given_a_new_default_version(session: boto3.session.Session) -> None:
    first = bootstrap.prepare_account(_config(), account="123456789012", region=REGION, session=session)
    second = bootstrap.prepare_account(_config(), account="123456789012", region=REGION, session=session)
    assert first == second
    assert first[0] == f"arn:aws:iam::123456789012:policy/{SERVICE}-cfn-execution-1"
    iam = session.client("iam")
    versions = iam.list_policy_versions(PolicyArn=first[0])["Versions"]
    assert len(versions) == 2
    boundary = f"arn:aws:iam::123456789012:policy/{SERVICE}-permissions-boundary"
    assert iam.get_policy(PolicyArn=boundary)["Policy"]["DefaultVersionId"] == "v2"


def test_old_policy_versions_are_pruned_before_iams_limit_of_five(session: boto3.session.Session) -> None:
    for _ in range(7):
        arns = bootstrap.prepare_account(_config(), account="123456789012", region=REGION, session=session)
    assert len(session.client("iam").list_policy_versions(PolicyArn=arns[0])["Versions"]) <= 5


def test_api_gateway_gets_a_cloudwatch_logs_role_when_the_account_has_none(
    session: boto3.session.Session,
) -> None:
    bootstrap.prepare_account(_config(), account="123456789012", region=REGION, session=session)
    account = session.client("apigateway").get_account()
    assert account["cloudwatchRoleArn"].endswith(f":role/{bootstrap.API_GATEWAY_LOGS_ROLE}")
    attached = session.client("iam").list_attached_role_policies(RoleName=bootstrap.API_GATEWAY_LOGS_ROLE)
    assert [p["PolicyName"] for p in attached["AttachedPolicies"]] == ["AmazonAPIGatewayPushToCloudWatchLogs"]


def test_a_cloudwatch_logs_role_the_account_already_set_is_kept(session: boto3.session.Session) -> None:
    theirs = "arn:aws:iam::123456789012:role/their-apigateway-logs"
    session.client("apigateway").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": theirs}]
    )
    bootstrap.prepare_account(_config(), account="123456789012", region=REGION, session=session)
    assert session.client("apigateway").get_account()["cloudwatchRoleArn"] == theirs
    roles = [r["RoleName"] for r in session.client("iam").list_roles()["Roles"]]
    assert bootstrap.API_GATEWAY_LOGS_ROLE not in roles


def test_bootstrap_runs_cdk_only_for_the_signed_in_account(
    session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = PipelineConfig.from_context(
        {
            **FIXTURE_CONTEXT,
            "pipelineAccount": "123456789012",
            "stagingAccount": "123456789012",
            "productionAccount": "210987654321",
        }
    )
    calls: list[list[str]] = []
    monkeypatch.setattr(bootstrap, "load_config", lambda: config)
    monkeypatch.setattr(bootstrap.subprocess, "run", lambda command, check: calls.append(command))
    assert bootstrap.main() == 0
    assert [c[2] for c in calls] == [f"aws://123456789012/{REGION}"]
    assert "account 210987654321: sign in to it" in capsys.readouterr().out


def test_the_boundary_admits_every_action_the_templates_grant_their_roles(
    synthesized: Synthesized, single_account: Synthesized, service_template: dict[str, Any]
) -> None:
    from tests.infra.test_least_privilege import template_statements  # noqa: PLC0415 - one collector

    granted = {
        action
        for template in (synthesized.template_json, single_account.template_json, service_template)
        for _, statement in template_statements(template, "t")
        if statement.get("Effect") == "Allow"
        for action in _as_list(statement["Action"])
    }
    assert granted
    assert sorted(a for a in granted if a.split(":")[0] not in BOUNDARY_SERVICES) == []
