"""Test builds in the pipeline account reach staging and production through each stack's TestRole.

Both topologies are synthesized: three accounts (FIXTURE_CONTEXT) and one (SINGLE_ACCOUNT_CONTEXT).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.infra.conftest import (
    FIXTURE_CONTEXT,
    PIPELINE_ACCOUNT,
    PRODUCTION_ACCOUNT,
    REGION,
    SINGLE_ACCOUNT_CONTEXT,
    STAGING_ACCOUNT,
    Synth,
)
from tests.infra.cross_account_support import parameter_overrides, render
from tests.infra.test_bootstrap_policy import DEPLOYED_PARAMETERS
from tests.infra.test_service_template import _transform
from tests.integration.conftest import session_for_tests

SERVICE = FIXTURE_CONTEXT["serviceName"]
TOPOLOGIES = [
    pytest.param(
        FIXTURE_CONTEXT, {"Staging": STAGING_ACCOUNT, "Production": PRODUCTION_ACCOUNT}, id="three-accounts"
    ),
    pytest.param(
        SINGLE_ACCOUNT_CONTEXT,
        {"Staging": PIPELINE_ACCOUNT, "Production": PIPELINE_ACCOUNT},
        id="one-account",
    ),
]
TEST_BUILDS = {"Staging": "IntegrationTests", "Production": "SmokeTests"}


def _actions(template: dict[str, Any], stage: str) -> dict[str, dict[str, Any]]:
    (pipeline,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
    (found,) = [s for s in pipeline["Properties"]["Stages"] if s["Name"] == stage]
    return {action["Name"]: action for action in found["Actions"]}


def _test_build_role(template: dict[str, Any], stage: str) -> str:
    """Logical id of the role the stage's test build runs as."""
    name = f"{SERVICE}-{stage.lower()}-{TEST_BUILDS[stage].lower()}"
    (project,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CodeBuild::Project" and r["Properties"]["Name"] == name
    ]
    return str(project["Properties"]["ServiceRole"]["Fn::GetAtt"][0])


def _role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


# ---------------------------------------------------------------- pipeline side


@pytest.mark.parametrize(("context", "accounts"), TOPOLOGIES)
@pytest.mark.parametrize("stage", ["Staging", "Production"])
def test_a_test_build_reaches_its_environment_only_by_assuming_its_test_role(
    synth: Synth, context: dict[str, Any], accounts: dict[str, str], stage: str
) -> None:
    template = synth(context).template_json
    statements = _role_statements(template, _test_build_role(template, stage))
    (assume,) = [s for s in statements if s["Action"] == "sts:AssumeRole"]
    assert assume["Resource"] == f"arn:aws:iam::{accounts[stage]}:role/{SERVICE}-{stage.lower()}-TestRole-*"
    actions = {
        a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert not {a for a in actions if a.split(":")[0] in ("execute-api", "sqs", "dynamodb")}


@pytest.mark.parametrize(("context", "accounts"), TOPOLOGIES)
@pytest.mark.parametrize("stage", ["Staging", "Production"])
def test_the_service_stack_is_told_its_test_build_role_and_its_accounts_boundary(
    synth: Synth, context: dict[str, Any], accounts: dict[str, str], stage: str
) -> None:
    template = synth(context).template_json
    overrides = parameter_overrides(_actions(template, stage)["Service.Prepare"])
    assert overrides["TestRunnerRoleArn"] == f"<{_test_build_role(template, stage)}.Arn>"
    assert overrides["PermissionsBoundaryArn"] == (
        f"arn:aws:iam::{accounts[stage]}:policy/{SERVICE}-permissions-boundary"
    )


@pytest.mark.parametrize("stage", ["Staging", "Production"])
def test_the_test_build_gets_the_test_role_from_the_stack_output(synth: Synth, stage: str) -> None:
    action = _actions(synth(FIXTURE_CONTEXT).template_json, stage)[TEST_BUILDS[stage]]
    variables = {
        v["name"]: v["value"] for v in json.loads(render(action["Configuration"]["EnvironmentVariables"]))
    }
    assert variables["TEST_ROLE_ARN"] == f"#{{{stage}Stack.TestRoleArn}}"


# ---------------------------------------------------------------- service side


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return dict(_transform(DEPLOYED_PARAMETERS)["Resources"])


def test_only_the_named_test_build_role_may_assume_the_test_role(resources: dict[str, Any]) -> None:
    (statement,) = resources["TestRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    # The account of the test build's role (the pipeline account), narrowed to that one role.
    assert statement["Principal"]["AWS"]["Fn::Sub"][1] == {
        "RunnerAccount": {"Fn::Select": [4, {"Fn::Split": [":", {"Ref": "TestRunnerRoleArn"}]}]}
    }
    assert statement["Condition"] == {"ArnEquals": {"aws:PrincipalArn": {"Ref": "TestRunnerRoleArn"}}}


def test_the_test_role_touches_only_this_stacks_api_table_and_bake_alarm(
    resources: dict[str, Any],
) -> None:
    (policy,) = resources["TestRole"]["Properties"]["Policies"]
    granted = {
        statement["Sid"]: json.dumps(statement["Resource"])
        for statement in policy["PolicyDocument"]["Statement"]
    }
    assert set(granted) == {
        "InvokeThisApi",
        "CheckNothingWritten",
        "WatchTheBakeAlarm",
    }
    assert "${Api}/v1/*" in granted["InvokeThisApi"]
    assert "OrdersTable" in granted["CheckNothingWritten"]
    assert "${AWS::StackName}-bake" in granted["WatchTheBakeAlarm"]
    assert all('"*"' not in resource for resource in granted.values())


def test_a_stack_without_a_test_build_has_no_test_role() -> None:
    transformed = _transform({"Environment": "local", "DeploymentType": "AllAtOnce"})
    # CloudFormation leaves out resources and outputs whose condition is false.
    assert transformed["Conditions"]["HasTestRunner"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "TestRunnerRoleArn"}, ""]}]
    }
    assert transformed["Parameters"]["TestRunnerRoleArn"]["Default"] == ""
    assert transformed["Resources"]["TestRole"]["Condition"] == "HasTestRunner"
    assert transformed["Outputs"]["TestRoleArn"]["Condition"] == "HasTestRunner"


# ---------------------------------------------------------------- the tests' side


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def test_tests_run_as_the_test_role_when_one_is_named(aws: boto3.session.Session) -> None:
    role = aws.client("iam").create_role(
        RoleName="payments-staging-TestRole-X", AssumeRolePolicyDocument="{}"
    )
    session = session_for_tests(aws, {"TEST_ROLE_ARN": role["Role"]["Arn"]})
    identity = session.client("sts").get_caller_identity()["Arn"]
    assert ":assumed-role/payments-staging-TestRole-X/release-pipeline-tests" in identity


def test_tests_run_as_the_build_itself_without_a_test_role(aws: boto3.session.Session) -> None:
    assert session_for_tests(aws, {}) is aws


def test_offline_the_test_role_is_not_assumed_and_a_warning_says_why(aws: boto3.session.Session) -> None:
    environ = {
        "TEST_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert session_for_tests(aws, environ) is aws
    assert "not assumed: AWS_ENDPOINT_URL is a local cloud" in str(caught[0].message)
