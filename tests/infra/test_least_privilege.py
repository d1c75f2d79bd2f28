"""Least privilege, tested: nothing is granted on `Resource: "*"` unless AWS offers nothing narrower.

Every IAM statement of the synthesized pipeline stack (both topologies), of the transformed service
template and of the bootstrap execution policy is read; a statement that allows an action on `*`
fails the test unless the action is in `ONLY_ON_ANY_RESOURCE` below: actions the Service
Authorization Reference lists with no resource type, so IAM takes them only on `*`. (The
permissions boundary is not listed: it grants nothing, it caps what the roles' own policies grant.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline import bootstrap
from pipeline.config import PipelineConfig
from tests.infra.conftest import FIXTURE_CONTEXT, REGION, STAGING_ACCOUNT, Synthesized
from tests.infra.test_bootstrap_policy import DEPLOYED_PARAMETERS
from tests.infra.test_service_template import _transform

SAR = "https://docs.aws.amazon.com/service-authorization/latest/reference"
# action -> the Service Authorization Reference page whose "Actions" table lists it with an empty
# "Resource types" column (checked 2026-12-01).
ONLY_ON_ANY_RESOURCE = {
    # CodeDeploy: a Lambda alias update stops a deployment by id; the action has no resource type.
    "codedeploy:StopDeployment": f"{SAR}/list_awscodedeploy.html",
    # CodePipeline: the release managers' console lists the account's pipelines.
    "codepipeline:ListPipelines": f"{SAR}/list_awscodepipeline.html",
    # KMS: a key has no ARN before CreateKey; ListAliases lists the account's aliases.
    "kms:CreateKey": f"{SAR}/list_awskeymanagementservice.html",
    "kms:ListAliases": f"{SAR}/list_awskeymanagementservice.html",
    # Lambda: the mapping's UUID does not exist before CreateEventSourceMapping.
    "lambda:CreateEventSourceMapping": f"{SAR}/list_awslambda.html",
    # CloudWatch Logs: DescribeLogGroups lists the account's log groups.
    "logs:DescribeLogGroups": f"{SAR}/list_amazoncloudwatchlogs.html",
    # SNS: subscriptions have no resource type of their own.
    "sns:GetSubscriptionAttributes": f"{SAR}/list_amazonsns.html",
    "sns:SetSubscriptionAttributes": f"{SAR}/list_amazonsns.html",
    "sns:Unsubscribe": f"{SAR}/list_amazonsns.html",
}

Statement = tuple[str, dict[str, Any]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def template_statements(template: dict[str, Any], source: str) -> Iterator[Statement]:
    """Identity statements of a template: IAM policies, managed policies and roles' inline policies."""
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [properties["PolicyDocument"]]
        elif resource["Type"] == "AWS::IAM::Role":
            documents = [policy["PolicyDocument"] for policy in properties.get("Policies") or []]
        else:
            continue
        for document in documents:
            for statement in _as_list(document["Statement"]):
                yield f"{source}:{logical_id}", statement


def grants_on_any_resource(statements: Iterator[Statement]) -> dict[str, list[str]]:
    """action -> where it is allowed on `Resource: "*"`."""
    found: dict[str, list[str]] = {}
    for where, statement in statements:
        if statement.get("Effect") == "Allow" and "*" in _as_list(statement.get("Resource")):
            for action in _as_list(statement["Action"]):
                found.setdefault(action, []).append(where)
    return found


@pytest.fixture(scope="module")
def every_statement(synthesized: Synthesized, single_account: Synthesized) -> list[Statement]:
    config = PipelineConfig.from_context(FIXTURE_CONTEXT)
    execution = bootstrap.execution_policies(
        bootstrap.scope_for(config, account=STAGING_ACCOUNT, region=REGION)
    )
    return [
        *template_statements(synthesized.template_json, "pipeline (three accounts)"),
        *template_statements(single_account.template_json, "pipeline (one account)"),
        *template_statements(_transform(DEPLOYED_PARAMETERS), "service template"),
        *(
            (f"bootstrap:{name}", statement)
            for name, document in execution.items()
            for statement in document["Statement"]
        ),
    ]


def test_every_source_of_statements_is_read(every_statement: list[Statement]) -> None:
    sources = {where.split(":")[0] for where, _ in every_statement}
    assert sources == {"pipeline (three accounts)", "pipeline (one account)", "service template", "bootstrap"}


def test_nothing_is_granted_on_any_resource_that_aws_lets_us_scope(every_statement: list[Statement]) -> None:
    unexpected = {
        action: where
        for action, where in grants_on_any_resource(iter(every_statement)).items()
        if action not in ONLY_ON_ANY_RESOURCE
    }
    assert unexpected == {}, "scope these to resources, or cite why AWS takes them only on *"


def test_a_grant_on_any_resource_is_found_wherever_it_is() -> None:
    template = {
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Policies": [
                        {
                            "PolicyDocument": {
                                "Statement": {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}
                            }
                        }
                    ]
                },
            },
            "Policy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyDocument": {
                        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["x", "*"]}]
                    }
                },
            },
        }
    }
    found = grants_on_any_resource(template_statements(template, "t"))
    assert found == {"sqs:SendMessage": ["t:Role"], "s3:GetObject": ["t:Policy"]}
