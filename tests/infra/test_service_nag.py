"""cdk-nag's AwsSolutions and Serverless packs over the SAM-transformed service template.

The template is transformed as CloudFormation would (aws-sam-translator, offline), included in a
CDK stack with `CfnInclude`, and checked by the same packs that guard the pipeline. Each finding
is either fixed in the template or acknowledged below: one rule, one resource, one reason.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk.cloudformation_include import CfnInclude
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from tests.infra.test_service_template import TEMPLATE, _transform

_API_FUNCTIONS = ("SubmitOrderFunction", "GetOrderFunction", "PresignAttachmentFunction")
_QUEUE_FUNCTIONS = ("ProcessOrdersFunction", "RecordAttachmentFunction")
_OTHER_FUNCTIONS = ("SweepUnsentOrdersFunction", "PreTrafficHookFunction", "StagingTrafficFunction")
_FUNCTIONS = _API_FUNCTIONS + _QUEUE_FUNCTIONS + _OTHER_FUNCTIONS
_ROLES = tuple(f"{function}Role" for function in _FUNCTIONS)
_TABLE_USERS = {
    "OrdersTable": tuple(
        f"{f}Role" for f in _API_FUNCTIONS + _QUEUE_FUNCTIONS + ("SweepUnsentOrdersFunction",)
    ),
    "IdempotencyTable": ("SubmitOrderFunctionRole", "ProcessOrdersFunctionRole"),
}


def _service_name() -> str:
    """The service name the attachments bucket carries (`make init` renames it with the service)."""
    found = re.search(r"BucketName: !Sub ([a-z0-9-]+)-attachments-", TEMPLATE.read_text())
    assert found, "the attachments bucket's name no longer starts with the service name"
    return found.group(1)


_RUNTIME = (
    "python3.13 is pinned on purpose: the Powertools layer (python313 build) and the CodeBuild image the "
    "tests run on (standard:7.0) are pinned to it; a runtime upgrade is a deliberate change of all three"
)
_INDEX = (
    "SAM's DynamoDB policy template grants the table's own indexes (table/<name>/index/*); the "
    "sweeper queries the `unsent` index, the others use none, and index names are not known to SAM"
)


def _acknowledgments() -> dict[tuple[str, str], str]:
    """(rule id, logical id) -> reason. Rule ids are cdk-nag's, with the pack prefix."""
    acks: dict[tuple[str, str], str] = {}

    def add(rule: str, resources: tuple[str, ...], reason: str) -> None:
        for resource in resources:
            acks[(rule, resource)] = reason

    iam4 = "AwsSolutions::AwsSolutions-IAM4[Policy::arn:aws:iam::aws:policy/"
    add(
        iam4 + "service-role/AWSLambdaBasicExecutionRole]",
        _ROLES,
        "SAM's managed policy for writing the function's own CloudWatch Logs; the log groups are explicit",
    )
    add(
        iam4 + "AWSXrayWriteOnlyAccess]",
        _ROLES,
        "SAM's managed policy for Tracing: Active; X-Ray segment writes have no resource-level permissions",
    )
    add(
        iam4 + "service-role/AWSLambdaSQSQueueExecutionRole]",
        tuple(f"{f}Role" for f in _QUEUE_FUNCTIONS),
        "SAM's managed policy for an SQS event source: receive and delete on the function's own queue",
    )
    add(
        "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSCodeDeployRoleForLambda]",
        ("DeploymentRole",),
        "SAM's CodeDeploy role for DeploymentPreference: shifts aliases, reads alarms, runs CodeDeployHook_*",
    )
    add(
        "AwsSolutions::AwsSolutions-IAM5[Action::sqs:SendMessage*]",
        ("SubmitOrderFunctionRole", "SweepUnsentOrdersFunctionRole"),
        "SAM's SQSSendMessagePolicy on the orders queue only: SendMessage and SendMessageBatch",
    )
    for table, roles in _TABLE_USERS.items():
        resource = (
            'AwsSolutions::AwsSolutions-IAM5[Resource::["arn:${AWS::Partition}:dynamodb:${AWS::Region}:'
            '${AWS::AccountId}:table/${tableName}/index/*",{"tableName":{"Ref":"' + table + '"}}]]'
        )
        add(resource, roles, _INDEX)
    add(
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::"
        f"{_service_name()}-attachments-<AWS::AccountId>-<AWS::Region>-<Environment>/orders/*]",
        ("PresignAttachmentFunctionRole",),
        "s3:PutObject under orders/ of the attachments bucket: a presigned POST carries this role's "
        "permission, and each upload's key is generated per request",
    )
    add(
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:codedeploy:<AWS::Region>:"
        "<AWS::AccountId>:deploymentgroup:<ServerlessDeploymentApplication>/*]",
        ("PreTrafficHookFunctionRole",),
        "PutLifecycleEventHookExecutionStatus on this stack's CodeDeploy application's deployment groups, "
        "whose names SAM generates",
    )
    add(
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:"
        "<AWS::AccountId>:<Api>/v1/*]",
        ("TestRole",),
        "the pipeline's integration and smoke tests call every route of this stack's own API stage "
        "(ADR 0017); the API id is generated at deploy time",
    )
    add("AwsSolutions::AwsSolutions-L1", _FUNCTIONS, _RUNTIME)
    add("Serverless::Serverless-LambdaLatestVersion", _FUNCTIONS, _RUNTIME)
    add(
        "AwsSolutions::AwsSolutions-APIG2",
        ("Api",),
        "request validation is set per method: both POST routes validate their body against a model "
        "(BodyValidator); GET /orders/{orderId} has no body and the code checks the id",
    )
    add(
        "AwsSolutions::AwsSolutions-APIG3",
        ("Apiv1Stage",),
        "IAM-authorized API (SigV4) with stage throttling; a WAF web ACL is an account-level choice "
        "with its own cost, left to the team (docs/decisions/0002-service-template.md)",
    )
    add(
        "AwsSolutions::AwsSolutions-S1",
        ("AttachmentsBucket",),
        "uploads arrive only through presigned POSTs pinned to one key each, and every upload is "
        "recorded on its order via the attachments queue; server access logs would need a second "
        "bucket per environment (CloudTrail data events are the audit option)",
    )
    add(
        "Serverless::Serverless-SQSRedrivePolicy",
        ("OrdersDeadLetterQueue", "AttachmentsDeadLetterQueue"),
        "this is a dead-letter queue: the end of its redrive chain, watched by a depth alarm",
    )
    add(
        "Serverless::Serverless-LambdaDLQ",
        _API_FUNCTIONS + ("PreTrafficHookFunction",),
        "invoked synchronously (API Gateway, or CodeDeploy's hook invoke): the caller gets the error",
    )
    add(
        "Serverless::Serverless-LambdaDLQ",
        _QUEUE_FUNCTIONS,
        "invoked by an SQS event source mapping: failed messages go to the queue's own dead-letter queue",
    )
    add(
        "Serverless::Serverless-LambdaDLQ",
        ("SweepUnsentOrdersFunction",),
        "a schedule invokes it every minute; a failed sweep is simply the next minute's work",
    )
    add(
        "Serverless::Serverless-EventBusDLQ",
        ("SweepUnsentOrdersFunctionEveryMinute", "StagingTrafficFunctionEveryMinute"),
        "an every-minute schedule (the sweeper, staging traffic): a missed tick is replaced by the next",
    )
    add(
        "Serverless::Serverless-LambdaDLQ",
        ("StagingTrafficFunction",),
        "staging's synthetic traffic, every minute: a failed run is replaced by the next minute's calls",
    )
    add(
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:"
        "<AWS::AccountId>:<Api>/v1/*/orders*]",
        ("StagingTrafficFunctionRole",),
        "execute-api:Invoke on this stack's own API stage, every method under /orders: the traffic "
        "source calls every route of the service (docs/decisions/0021-deployment-and-operations-alarms.md)",
    )
    add(
        "Serverless::Serverless-LambdaEventSourceMappingDestination",
        ("ProcessOrdersFunctionOrders", "RecordAttachmentFunctionAttachmentUploaded"),
        "SQS event sources keep failed messages through the queue's redrive policy (DLQ after 5 "
        "receives) rather than an on-failure destination",
    )
    return acks


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Synthesize the included template with both packs; the validation report cdk-nag writes."""
    workdir = tmp_path_factory.mktemp("service-nag")
    transformed = _transform({"Environment": "production", "DeploymentType": "Canary10Percent5Minutes"})
    (workdir / "service.json").write_text(json.dumps(transformed))
    app = App(outdir=str(workdir / "cdk.out"))
    included = CfnInclude(Stack(app, "OrderService"), "Service", template_file=str(workdir / "service.json"))
    for (rule, logical_id), reason in _acknowledgments().items():
        Validations.of(included.get_resource(logical_id)).acknowledge(Acknowledgment(id=rule, reason=reason))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    # Findings make synth raise; the report it writes first says which.
    with contextlib.suppress(Exception):
        app.synth()
    document: dict[str, Any] = json.loads(Path(workdir / "cdk.out" / "validation-report.json").read_text())
    return document


def _violations(report: dict[str, Any], plugin: str) -> list[str]:
    (found,) = [entry for entry in report["pluginReports"] if entry["pluginName"] == plugin]
    return [
        f"{violation['ruleName']} on {construct['constructPath']}"
        for violation in found["violations"]
        for construct in violation["violatingConstructs"]
    ]


@pytest.mark.parametrize("plugin", ["AwsSolutions", "Serverless"])
def test_the_service_template_has_no_unacknowledged_finding(report: dict[str, Any], plugin: str) -> None:
    assert _violations(report, plugin) == []


def test_each_acknowledgment_names_one_resource_and_a_reason() -> None:
    transformed = _transform({"Environment": "production", "DeploymentType": "Canary10Percent5Minutes"})
    for (rule, logical_id), reason in _acknowledgments().items():
        assert logical_id in transformed["Resources"], (rule, logical_id)
        assert "::" in rule and len(reason) > 40, (rule, logical_id)
