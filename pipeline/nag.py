"""cdk-nag acknowledgments: each names one construct, one finding and the reason.

Acknowledging on a Stack or App would hide future findings of the same rule everywhere below it
(cdk-nag#833); `acknowledge` refuses that, and a test checks the construct tree. The IAM5
findings below come from CDK's own grants on this stack's artifact bucket and key, which are
already scoped to that one bucket and key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from aws_cdk import Acknowledgment, App, CfnElement, Stack, Validations
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import IConstruct

from pipeline.bootstrap_roles import partition_of
from pipeline.cross_account import assume_test_role_statement

if TYPE_CHECKING:
    from pipeline.pipeline_stack import PipelineStack

_KMS = "grant on this stack's own artifact key; the wildcard covers the data-key variants SSE-KMS uses"
_S3 = "CDK's grant on this stack's own artifact bucket; the wildcard covers that service's variants only"
_OBJECTS = "objects in this stack's own artifact bucket; keys are generated per pipeline execution"
_LOGS = "the CodeBuild project's own log group; CodeBuild names one log stream per build"
_REPORTS = "CodeBuild's default grant on the project's own report groups (<project>-*)"
_TEST_ROLE = (
    "sts:AssumeRole on the environment's TestRole only: CloudFormation generates the end of its name "
    "(<stack>-TestRole-<id>) at deploy time, after this policy exists"
)
_POWERTOOLS = (
    "ssm:GetParameter only, on the public Powertools layer parameters (one per release) that "
    "pipeline/layer_check.py checks before packaging"
)

_LIST_PIPELINES = (
    "codepipeline:ListPipelines only (the console's pipeline list): it supports no resource but *"
)
_EVIDENCE_LOGS = (
    "logs:GetLogEvents only, on the evidence builds' own log groups; CodeBuild names a stream per build"
)

KMS_READ_WRITE = (("Action::kms:GenerateDataKey*", _KMS), ("Action::kms:ReEncrypt*", _KMS))
S3_READ = (
    ("Action::s3:GetBucket*", _S3),
    ("Action::s3:GetObject*", _S3),
    ("Action::s3:List*", _S3),
)
S3_WRITE = (("Action::s3:Abort*", _S3), ("Action::s3:DeleteObject*", _S3))


def acknowledge(construct: IConstruct, *, rule: str, reason: str) -> None:
    """Acknowledge one finding on one resource."""
    if isinstance(construct, (Stack, App)):
        raise ValueError(f"acknowledge {rule} on a resource, not on {construct.node.path or 'the app'}")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def _iam5(policy_owner: iam.IRole | None, findings: tuple[tuple[str, str], ...]) -> None:
    if policy_owner is None:
        raise ValueError("the role to acknowledge findings on does not exist (yet)")
    policy = policy_owner.node.find_child("DefaultPolicy")
    for finding, reason in findings:
        acknowledge(policy, rule=f"AwsSolutions::AwsSolutions-IAM5[{finding}]", reason=reason)


def _logical_id(construct: IConstruct) -> str:
    element = cast(
        CfnElement, construct if isinstance(construct, CfnElement) else construct.node.default_child
    )
    return Stack.of(element).get_logical_id(element)


def _project_findings(project: codebuild.IProject | None) -> tuple[tuple[str, str], ...]:
    if project is None:
        raise ValueError("acknowledge findings after build_pipeline() created the projects")
    name = f"<{_logical_id(project)}>"
    stack = Stack.of(project)
    partition_region_account = f"arn:{partition_of(stack.region)}:{{}}:{stack.region}:{stack.account}"
    return (
        (f"Resource::{partition_region_account.format('logs')}:log-group:/aws/codebuild/{name}:*", _LOGS),
        (f"Resource::{partition_region_account.format('codebuild')}:report-group/{name}-*", _REPORTS),
    )


def acknowledge_findings(stack: PipelineStack) -> None:
    """The pipeline stack's acknowledged findings, one call per resource and finding."""
    objects = ((f"Resource::<{_logical_id(stack.artifacts.bucket)}.Arn>/*", _OBJECTS),)
    read_write = KMS_READ_WRITE + S3_READ + S3_WRITE + objects
    read = KMS_READ_WRITE + S3_READ + objects

    _iam5(stack.code_pipeline.role, read_write)
    _iam5(stack.source_action_role, read_write)
    build_project = stack.build.project
    powertools = tuple(
        (f"Resource::{arn}", _POWERTOOLS) for arn in stack.read_powertools_parameters.resources
    )
    _iam5(
        build_project.role if build_project else None,
        read_write + _project_findings(build_project) + powertools,
    )
    for environment in stack.config.environments:
        project = stack.test_steps[environment.name].project
        service_resources = tuple(
            (f"Resource::{arn}", _TEST_ROLE) for arn in assume_test_role_statement(environment).resources
        )
        _iam5(project.role if project else None, read + _project_findings(project) + service_resources)
    _iam5(stack.approval_action_role, (KMS_READ_WRITE[0],))
    evidence_logs = tuple(
        (f"Resource::{arn}", _EVIDENCE_LOGS)
        for statement in stack.approval.evidence_statements
        if statement.sid == "ReadEvidenceLogs"
        for arn in statement.resources
    )
    _iam5(stack.approval.role, (("Resource::*", _LIST_PIPELINES), *evidence_logs))

    acknowledge(
        stack.artifacts.bucket,
        rule="AwsSolutions::AwsSolutions-S1",
        reason="artifact bucket reached only by this pipeline's roles; CloudTrail data events audit it, "
        "and an access-log bucket would need the same acknowledgment",
    )
    for topic in (stack.approval.topic, stack.notifications.topic):
        for subscription in topic.node.children:
            if isinstance(subscription, sns.Subscription):
                acknowledge(
                    subscription,
                    rule="Serverless::Serverless-SNSRedrivePolicy",
                    reason="e-mail subscription: SNS retries delivery itself; a dead-letter queue of "
                    "undelivered mails would have no reader",
                )
