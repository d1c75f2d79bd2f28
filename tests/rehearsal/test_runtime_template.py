"""Templates: reading, the SAM transform, parameters, intrinsic functions, and provisioning edge cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from rehearsal.base.errors import UserError
from rehearsal.cloud.resources import physical_name
from rehearsal.cloud.template import (
    Resolver,
    StackIdentity,
    UnresolvedReferenceError,
    load_template,
    transform_template,
)
from rehearsal.runtime.environment import LocalEnvironment

IDENTITY = StackIdentity(stack_name="s", region="us-east-1", account_id="123456789012")


def _resolver(**extra: Any) -> Resolver:
    return Resolver(
        parameters={"Env": "prod", **IDENTITY.pseudo_parameters()},
        conditions={
            "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
            "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
        },
        mappings={"Sizes": {"prod": {"Memory": 512}}},
        **extra,
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"Fn::Join": ["-", ["a", {"Ref": "Env"}]]}, "a-prod"),
        ({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}, "y"),
        ({"Fn::If": ["IsDev", "dev", "prod-value"]}, "prod-value"),
        ({"Fn::And": [{"Condition": "IsProd"}, {"Fn::Or": [False, True]}]}, True),
        ({"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "Memory"]}, 512),
        ({"Fn::GetAZs": ""}, ["us-east-1a", "us-east-1b", "us-east-1c"]),
        (
            {"Fn::Sub": ["${A}-${!Literal}-${AWS::Region}", {"A": {"Ref": "Env"}}]},
            "prod-${Literal}-us-east-1",
        ),
        ({"Fn::ToJsonString": {"a": 1}}, '{"a": 1}'),
        ({"Fn::Base64": "x"}, "x"),
        ({"List": ["a", {"Ref": "AWS::NoValue"}], "Gone": {"Ref": "AWS::NoValue"}}, {"List": ["a"]}),
    ],
)
def test_intrinsic_functions_resolve_like_cloudformation(expression: Any, expected: Any) -> None:
    assert _resolver().resolve(expression) == expected


def test_unknown_references_are_reported_not_guessed() -> None:
    resolver = _resolver()
    with pytest.raises(UnresolvedReferenceError):
        resolver.resolve({"Ref": "Missing"})
    with pytest.raises(UnresolvedReferenceError):
        resolver.resolve({"Fn::Sub": "${Missing.Arn}"})
    with pytest.raises(UserError, match="does not define"):
        resolver.condition("Nope")
    with pytest.raises(UserError, match="FindInMap"):
        resolver.resolve({"Fn::FindInMap": ["Sizes", "dev", "Memory"]})
    resolver.placeholders["Role"] = "s-Role"
    assert resolver.resolve({"Ref": "Role"}) == "s-Role"
    assert "Role/Arn" in resolver.resolve({"Fn::GetAtt": "Role.Arn"})


def test_parameters_are_checked_against_the_template(tmp_path: Path) -> None:
    template = {
        "Parameters": {
            "Env": {"Type": "String", "AllowedValues": ["a"]},
            "List": {"Type": "CommaDelimitedList"},
        },
        "Resources": {},
    }
    with pytest.raises(UserError, match="has no default"):
        transform_template(template, identity=IDENTITY, parameters={"Env": "a"}, base_dir=tmp_path)
    with pytest.raises(UserError, match="is not one of"):
        transform_template(
            template, identity=IDENTITY, parameters={"Env": "b", "List": "x"}, base_dir=tmp_path
        )
    with pytest.raises(UserError, match="has no parameter"):
        transform_template(template, identity=IDENTITY, parameters={"Other": "b"}, base_dir=tmp_path)
    plain = transform_template(
        template, identity=IDENTITY, parameters={"Env": "a", "List": "x,y"}, base_dir=tmp_path
    )
    assert plain.parameters["List"] == ["x", "y"]


def test_templates_that_cannot_be_read_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read"):
        load_template(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(UserError, match="no Resources"):
        load_template(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  F:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {Handler: a.b, Runtime: python3.13}\n"
    )
    with pytest.raises(UserError, match="SAM transform rejected"):
        transform_template(load_template(tmp_path / "bad.yaml"), identity=IDENTITY, base_dir=tmp_path)


def test_generated_names_are_deterministic_and_within_limits() -> None:
    long = physical_name(IDENTITY, "X" * 100, limit=63, lower=True)
    assert len(long) == 63 and long == long.lower()
    assert physical_name(IDENTITY, "Queue") == "s-Queue"


def test_provisioning_again_keeps_the_data(fixture_env: LocalEnvironment) -> None:
    from rehearsal.cloud.provision import provision_stack  # noqa: PLC0415 - next to its only use

    table = fixture_env.outputs()["ItemsTableName"]
    fixture_env.cloud.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "kept"}})
    stack = provision_stack(
        fixture_env.cloud,
        fixture_env.stack.template,
        identity=fixture_env.stack.identity,
        environment=fixture_env.name,
    )
    assert stack.outputs()["ItemsTableName"] == table
    items = fixture_env.cloud.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "kept"}})
    assert "Item" in items


def test_the_control_plane_serves_lambda_invoke_and_codedeploy_hook_status(
    fixture_env: LocalEnvironment,
) -> None:
    endpoint = fixture_env.control.endpoint_url
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    lambda_client = session.client("lambda", endpoint_url=endpoint)
    echo = fixture_env.stack.functions["EchoFunction"].name

    answer = lambda_client.invoke(FunctionName=f"{echo}:live", Payload=b'{"raw": true}')
    failing = lambda_client.invoke(
        FunctionName=fixture_env.stack.functions["FailFunction"].name, Payload=b"{}"
    )
    queued = lambda_client.invoke(FunctionName=echo, InvocationType="Event", Payload=b"{}")
    dry = lambda_client.invoke(FunctionName=echo, InvocationType="DryRun", Payload=b"{}")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="missing", Payload=b"{}")

    assert answer["ExecutedVersion"] == "1"
    assert b'"cold"' in answer["Payload"].read()
    assert failing["FunctionError"] == "Unhandled"
    assert queued["StatusCode"] == 202 and dry["StatusCode"] == 204
    codedeploy = session.client("codedeploy", endpoint_url=endpoint)
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId="d-1", lifecycleEventHookExecutionId="hook-1", status="Succeeded"
    )
    status = fixture_env.control.wait_for_hook("hook-1", timeout=5)
    assert status is not None and status.status == "Succeeded"
    assert fixture_env.control.environ()["AWS_ENDPOINT_URL_LAMBDA"] == endpoint
    assert requests.post(endpoint, data=b"{}", timeout=5).status_code == 400


def test_plain_cloudformation_resources_are_provisioned_and_the_rest_listed(
    fixture_env: LocalEnvironment,
) -> None:
    from rehearsal.cloud.provision import provision_stack  # noqa: PLC0415 - next to its only use

    path = Path(__file__).parent / "fixtures" / "resources.yaml"
    identity = StackIdentity(stack_name="extra", region="us-east-1", account_id="123456789012")
    template = transform_template(load_template(path), identity=identity, base_dir=path.parent)
    stack = provision_stack(fixture_env.cloud, template, identity=identity, environment="staging")

    created = {logical: kind for logical, kind, _ in stack.created}
    assert "Skipped" not in created
    assert stack.outputs()["Ordered"].endswith(".fifo")
    assert set(stack.outputs()) == {"Ordered"}
    not_emulated = {logical: reason for logical, _, reason in stack.not_emulated}
    assert "not emulated" in not_emulated["Machine"]
    assert "only SQS event sources" in not_emulated["StreamMapping"]
    assert "inline (Body)" in not_emulated["External"]
    s3 = fixture_env.cloud.client("s3")
    bucket = stack.resolver.refs["Versioned"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert configuration["QueueConfigurations"][0]["QueueArn"].endswith("extra-Events")
    topics = fixture_env.cloud.client("sns").list_subscriptions()["Subscriptions"]
    assert {subscription["Protocol"] for subscription in topics} >= {"sqs", "email"}


def test_a_template_whose_references_never_resolve_is_a_user_error(
    fixture_env: LocalEnvironment, tmp_path: Path
) -> None:
    from rehearsal.cloud.provision import provision_stack  # noqa: PLC0415 - next to its only use

    (tmp_path / "t.yaml").write_text(
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n"
        "      DelaySeconds: !GetAtt Nowhere.Delay\n"
    )
    identity = StackIdentity(stack_name="broken", region="us-east-1", account_id="123456789012")
    template = transform_template(load_template(tmp_path / "t.yaml"), identity=identity, base_dir=tmp_path)
    with pytest.raises(UserError, match="cannot provision Q"):
        provision_stack(fixture_env.cloud, template, identity=identity, environment="staging")
