"""The CloudFormation execution policy, derived from the resource types the two templates contain.

`cdk bootstrap --cloudformation-execution-policies` attaches these managed policies to the role
CloudFormation runs as in every account (ADR 0015). The actions are the create/update/delete handler
permissions of each resource type's CloudFormation registry schema (the copy cfn-lint ships), so a
new resource type in either template needs a line in `RESOURCE_TYPES`, and
tests/infra/test_bootstrap_policy.py fails until it has one. Resources are scoped to the names
CloudFormation generates (`<stack name>-<logical id>-<suffix>`, and every stack name starts with the
service name) wherever the service's ARNs carry a name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint

from pipeline.boundary import boundary_policy_arn

_IAM_ACTION = re.compile(r"[a-z0-9-]+:[A-Za-z0-9]+")
SCHEMAS = Path(cfnlint.__file__).resolve().parent / "data" / "schemas"
# A managed policy document may hold at most 6,144 characters, whitespace not counted (IAM quotas).
MANAGED_POLICY_MAX_CHARS = 6144
# The account AWS publishes the Powertools for AWS Lambda (Python) layers from.
POWERTOOLS_ACCOUNT = "017000801446"

# Every resource type of the synthesized pipeline stack and of the transformed service template
# (tests/infra/test_bootstrap_policy.py keeps this equal to what the two templates contain).
RESOURCE_TYPES = frozenset(
    {
        # pipeline stack (cdk.out)
        "AWS::CodeBuild::Project",
        "AWS::CodeBuild::ReportGroup",
        "AWS::CodePipeline::Pipeline",
        "AWS::CodeStarNotifications::NotificationRule",
        "AWS::IAM::Policy",
        "AWS::IAM::Role",
        "AWS::KMS::Key",
        "AWS::S3::Bucket",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::Subscription",
        "AWS::SNS::Topic",
        "AWS::SNS::TopicPolicy",
        # service template after the SAM transform
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Stage",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::CompositeAlarm",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
        "AWS::DynamoDB::Table",
        "AWS::Events::Rule",
        "AWS::Lambda::Alias",
        "AWS::Lambda::EventSourceMapping",
        "AWS::Lambda::Function",
        "AWS::Lambda::Permission",
        "AWS::Lambda::Version",
        "AWS::Logs::LogGroup",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
    }
)

# Types whose registry schema lists no handler permissions (not yet registry types): what their
# CloudFormation handler calls, taken from the service's API reference ("unverified" in ADR 0015).
HANDLERLESS_PERMISSIONS: Mapping[str, tuple[str, ...]] = {
    "AWS::CodeBuild::Project": (
        "codebuild:CreateProject",
        "codebuild:UpdateProject",
        "codebuild:DeleteProject",
        "codebuild:BatchGetProjects",
        "iam:PassRole",
    ),
}

# Handler permissions for features neither template uses: Lambda functions in a VPC or with a file
# system, DynamoDB's Kinesis streaming destination, S3 Tables, log group deliveries, resource and
# index policies. Left out so the policy grants no account-wide write for them.
UNUSED_FEATURE_SERVICES = frozenset(
    {"ec2", "elasticfilesystem", "s3files", "kinesis", "firehose", "s3tables"}
)
UNUSED_FEATURE_ACTIONS = frozenset(
    {
        "logs:CreateLogDelivery",
        "logs:PutResourcePolicy",
        "logs:DeleteResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:PutIndexPolicy",
        "logs:DeleteIndexPolicy",
        "logs:DescribeIndexPolicies",
        # The execution role never removes the permissions boundary it had to set.
        "iam:DeleteRolePermissionsBoundary",
    }
)

# Actions the Service Authorization Reference lists with no resource type: IAM accepts them only on
# `Resource: "*"` (checked against its tables; see ADR 0015). Anything else is scoped.
ONLY_ON_ANY_RESOURCE: Mapping[str, str] = {
    "codedeploy:StopDeployment": "CodeDeploy: StopDeployment has no resource type",
    "kms:CreateKey": "KMS: a key's ARN does not exist before CreateKey",
    "kms:ListAliases": "KMS: ListAliases has no resource type",
    "lambda:CreateEventSourceMapping": "Lambda: CreateEventSourceMapping has no resource type",
    "logs:DescribeLogGroups": "CloudWatch Logs: DescribeLogGroups has no resource type",
    "sns:GetSubscriptionAttributes": "SNS: subscriptions have no resource type",
    "sns:SetSubscriptionAttributes": "SNS: subscriptions have no resource type",
    "sns:Unsubscribe": "SNS: subscriptions have no resource type",
}


@dataclass(frozen=True, kw_only=True)
class PolicyScope:
    """Where the policy applies: one account and region, and the names this service's stacks use."""

    service_name: str
    account: str
    region: str
    partition: str
    qualifier: str
    connection_arn: str

    @property
    def boundary_arn(self) -> str:
        return boundary_policy_arn(
            partition=self.partition, account=self.account, service_name=self.service_name
        )


def _resources(service: str, scope: PolicyScope) -> list[str]:
    """The ARNs one service's actions may touch: this service's names where the ARN has one."""
    p, r, a, name = scope.partition, scope.region, scope.account, scope.service_name
    arn = f"arn:{p}:{service}:{r}:{a}"
    patterns: dict[str, list[str]] = {
        # API ids are random: the region's REST APIs and their tags (no name in the ARN).
        "apigateway": [
            f"arn:{p}:apigateway:{r}::/restapis",
            f"arn:{p}:apigateway:{r}::/restapis/*",
            f"arn:{p}:apigateway:{r}::/tags/*",
        ],
        "cloudwatch": [f"{arn}:alarm:{name}-*"],
        "codebuild": [f"{arn}:project/{name}-*", f"{arn}:report-group/{name}-*"],
        "codedeploy": [
            f"{arn}:application:{name}-*",
            f"{arn}:deploymentgroup:{name}-*/*",
            f"{arn}:deploymentconfig:*",
        ],
        "codepipeline": [f"{arn}:{name}-*"],
        "codestar-connections": [scope.connection_arn.replace(":codeconnections:", ":codestar-connections:")],
        "codeconnections": [scope.connection_arn.replace(":codestar-connections:", ":codeconnections:")],
        # Notification rule ids are random.
        "codestar-notifications": [f"{arn}:notificationrule/*"],
        "dynamodb": [f"{arn}:table/{name}-*"],
        # The service's schedules (SAM `Schedule` events): rules named after the stack.
        "events": [f"{arn}:rule/{name}-*"],
        "iam": [f"arn:{p}:iam::{a}:role/{name}-*", f"arn:{p}:iam::{a}:policy/{name}-*"],
        # Key ids are random; aliases are not used.
        "kms": [f"{arn}:key/*"],
        "lambda": [
            f"{arn}:function:{name}-*",
            f"{arn}:function:CodeDeployHook_{name}-*",
            f"{arn}:event-source-mapping:*",
            f"arn:{p}:lambda:{r}:{POWERTOOLS_ACCOUNT}:layer:AWSLambdaPowertoolsPythonV3-*",
        ],
        "logs": [f"{arn}:log-group:{name}-*", f"{arn}:log-group:{name}-*:*"],
        "s3": [f"arn:{p}:s3:::{name}-*", f"arn:{p}:s3:::{name}-*/*"],
        "sns": [f"{arn}:{name}-*"],
        "sqs": [f"{arn}:{name}-*"],
    }
    if service not in patterns:
        raise ValueError(
            f"no resource scope for {service} actions: add one to _resources() in "
            "pipeline/execution_policy.py"
        )
    return patterns[service]


@cache
def _schema_index(region: str) -> Mapping[str, str]:
    index: dict[str, str] = json.loads((SCHEMAS / "providers" / f"{region}.json").read_text(encoding="utf-8"))
    return index


def handler_permissions(resource_type: str, region: str) -> frozenset[str]:
    """Create, update and delete handler permissions of one type, from its registry schema."""
    if resource_type in HANDLERLESS_PERMISSIONS:
        return frozenset(HANDLERLESS_PERMISSIONS[resource_type])
    schema_id = _schema_index(region).get(resource_type)
    if schema_id is None:
        raise ValueError(f"{resource_type} has no CloudFormation registry schema in {region}")
    schema = json.loads((SCHEMAS / "resources" / f"{schema_id}.json").read_text(encoding="utf-8"))
    handlers: Mapping[str, Any] = schema.get("handlers") or {}
    actions = {
        action
        for name in ("create", "update", "delete")
        for action in handlers.get(name, {}).get("permissions", ())
    }
    if not actions:
        raise ValueError(
            f"{resource_type} lists no handler permissions: add it to HANDLERLESS_PERMISSIONS "
            "in pipeline/execution_policy.py"
        )
    return frozenset(actions)


def required_actions(resource_types: Iterable[str], region: str) -> frozenset[str]:
    """What CloudFormation may call for these types, less the features no template uses."""
    actions = set().union(*(handler_permissions(t, region) for t in resource_types))
    return frozenset(
        a
        for a in actions
        if a.split(":")[0] not in UNUSED_FEATURE_SERVICES and a not in UNUSED_FEATURE_ACTIONS
    )


def execution_statements(
    scope: PolicyScope, resource_types: Iterable[str] = RESOURCE_TYPES
) -> list[dict[str, Any]]:
    """One statement per service (scoped), one for the few actions IAM takes only on `*`, IAM apart."""
    actions = required_actions(resource_types, scope.region)
    by_service: dict[str, list[str]] = {}
    for action in sorted(actions - set(ONLY_ON_ANY_RESOURCE)):
        service = action.split(":")[0]
        if service != "iam":
            by_service.setdefault(service, []).append(action)
    statements = [
        {
            "Sid": f"Manage{_sid(service)}",
            "Effect": "Allow",
            "Action": service_actions,
            "Resource": _resources(service, scope),
        }
        for service, service_actions in by_service.items()
    ]
    star = sorted(actions & set(ONLY_ON_ANY_RESOURCE))
    if star:
        statements.append(
            {"Sid": "ActionsWithoutResourceTypes", "Effect": "Allow", "Action": star, "Resource": "*"}
        )
    return statements + _iam_statements(sorted(a for a in actions if a.startswith("iam:")), scope)


def _iam_statements(actions: list[str], scope: PolicyScope) -> list[dict[str, Any]]:
    """Roles only with the boundary; PassRole only to the services that run as these roles."""
    roles, policies = _resources("iam", scope)
    boundary = {"StringEquals": {"iam:PermissionsBoundary": scope.boundary_arn}}
    bounded = {"iam:CreateRole", "iam:PutRolePermissionsBoundary"}
    plain = [a for a in actions if a not in bounded and a != "iam:PassRole"]
    cdk_roles = [
        f"arn:{scope.partition}:iam::*:role/cdk-{scope.qualifier}-{kind}-role-*"
        for kind in ("deploy", "cfn-exec")
    ]
    return [
        {"Sid": "ManageServiceRoles", "Effect": "Allow", "Action": plain, "Resource": [roles, policies]},
        {
            "Sid": "CreateRolesWithinTheBoundary",
            "Effect": "Allow",
            "Action": sorted(bounded & set(actions)),
            "Resource": roles,
            "Condition": boundary,
        },
        {
            "Sid": "PassServiceRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": roles,
            "Condition": {
                "StringEquals": {
                    "iam:PassedToService": [
                        "apigateway.amazonaws.com",
                        "codebuild.amazonaws.com",
                        "codedeploy.amazonaws.com",
                        "codepipeline.amazonaws.com",
                        "lambda.amazonaws.com",
                    ]
                }
            },
        },
        # The pipeline's CloudFormation actions name the bootstrap roles of each account.
        {
            "Sid": "PassBootstrapRolesToThePipeline",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": cdk_roles,
            "Condition": {
                "StringEquals": {
                    "iam:PassedToService": ["cloudformation.amazonaws.com", "codepipeline.amazonaws.com"]
                }
            },
        },
        # Parameters CloudFormation resolves: CDK's bootstrap version and the pinned Powertools layer.
        {
            "Sid": "ReadTemplateParameters",
            "Effect": "Allow",
            "Action": "ssm:GetParameters",
            "Resource": [
                f"arn:{scope.partition}:ssm:{scope.region}:{scope.account}:parameter/cdk-bootstrap/{scope.qualifier}/*",
                f"arn:{scope.partition}:ssm:{scope.region}::parameter/aws/service/powertools/*",
            ],
        },
    ]


def _sid(service: str) -> str:
    return "".join(part.capitalize() for part in service.split("-"))


def policy_documents(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split the statements over as few managed policies as fit IAM's 6,144-character limit."""
    documents: list[dict[str, Any]] = []
    for statement in statements:
        if documents and policy_size(
            {**documents[-1], "Statement": [*documents[-1]["Statement"], statement]}
        ) <= (MANAGED_POLICY_MAX_CHARS):
            documents[-1]["Statement"].append(statement)
            continue
        document = {"Version": "2012-10-17", "Statement": [statement]}
        if policy_size(document) > MANAGED_POLICY_MAX_CHARS:
            raise ValueError(
                f"statement {statement['Sid']} alone exceeds {MANAGED_POLICY_MAX_CHARS} characters"
            )
        documents.append(document)
    return documents


def policy_size(document: Mapping[str, Any]) -> int:
    """Characters IAM counts against the managed policy limit (whitespace is not counted)."""
    return len(json.dumps(document, separators=(",", ":")))


def boundary_document(scope: PolicyScope) -> dict[str, Any]:
    """The ceiling for every role the two templates create: the services they use, never IAM itself.

    A boundary grants nothing by itself; it caps what a role's own policies can grant, so a role
    CloudFormation creates can never create or change roles (no privilege escalation through it).
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ServicesTheReleaseUses",
                "Effect": "Allow",
                "Action": [f"{service}:*" for service in BOUNDARY_SERVICES],
                "Resource": "*",
            },
        ],
    }


# What the roles of the two templates call at run time (Lambda functions, CodeBuild projects, the
# pipeline and its actions, CodeDeploy, the cross-account test role).
BOUNDARY_SERVICES = (
    "cloudformation",
    "cloudwatch",
    "codebuild",
    "codeconnections",
    "codedeploy",
    "codepipeline",
    "codestar-connections",
    "dynamodb",
    "execute-api",
    "kms",
    "lambda",
    "logs",
    "s3",
    "sns",
    "sqs",
    "ssm",
    "sts",
    "tag",
    "xray",
)
