"""The release managers' gate: an SNS topic that mails them, and the only role that may approve."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Stack, pipelines
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from pipeline.bootstrap_roles import partition_of
from pipeline.topics import email_topic


class ReviewedApprovalStep(pipelines.ManualApprovalStep):
    """A manual approval whose review URL may name variables of earlier actions (the commit id).

    CDK Pipelines gives an action a variables namespace only when a step says it reads that
    action's outputs; ManualApprovalStep does not look into its review URL, so this step does.
    """

    def __init__(
        self, step_id: str, *, comment: str, review_url: str, notification_topic: sns.ITopic
    ) -> None:
        super().__init__(
            step_id, comment=comment, review_url=review_url, notification_topic=notification_topic
        )
        self._discover_referenced_outputs(review_url)


class ReleaseApproval(Construct):
    """A manual approval step, its notification topic and the release-manager role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline_name: str,
        stage_name: str,
        action_name: str,
        emails: Sequence[str],
        approver_principals: Sequence[str],
        review_url: str,
        comment: str,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.evidence_statements: list[iam.PolicyStatement] = []
        self.topic = email_topic(
            self,
            display_name=f"{pipeline_name}: a release waits for approval",
            emails=emails,
            encryption_key=encryption_key,
        )
        self.step = ReviewedApprovalStep(
            action_name, comment=comment, review_url=review_url, notification_topic=self.topic
        )
        self.role = self._build_release_manager_role(
            pipeline_name=pipeline_name,
            stage_name=stage_name,
            action_name=action_name,
            approver_principals=approver_principals,
        )

    def _build_release_manager_role(
        self, *, pipeline_name: str, stage_name: str, action_name: str, approver_principals: Sequence[str]
    ) -> iam.Role:
        pipeline_arn = f"arn:{Aws.PARTITION}:codepipeline:{Aws.REGION}:{Aws.ACCOUNT_ID}:{pipeline_name}"
        role = iam.Role(
            self,
            "ReleaseManagerRole",
            # A fixed name, so that an SCP can exempt exactly this role (README, ADR 0011).
            role_name=f"{pipeline_name}-managers",
            description=f"Release managers assume this role to approve or reject {pipeline_name} releases",
            assumed_by=iam.CompositePrincipal(*(iam.ArnPrincipal(arn) for arn in approver_principals)),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ApproveOrRejectReleases",
                actions=["codepipeline:PutApprovalResult"],
                resources=[f"{pipeline_arn}/{stage_name}/{action_name}"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadThePipeline",
                actions=[
                    "codepipeline:GetPipeline",
                    "codepipeline:GetPipelineState",
                    "codepipeline:GetPipelineExecution",
                    "codepipeline:ListPipelineExecutions",
                    "codepipeline:ListActionExecutions",
                    # The bake's CloudWatchAlarm rule results, shown with each stage's conditions.
                    "codepipeline:ListRuleExecutions",
                ],
                resources=[pipeline_arn],
            )
        )
        # The console's pipeline list; the action supports only "*" (ADR 0011).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListPipelinesInTheConsole", actions=["codepipeline:ListPipelines"], resources=["*"]
            )
        )
        return role

    def _add_evidence(self, statement: iam.PolicyStatement) -> None:
        self.role.add_to_policy(statement)
        self.evidence_statements.append(statement)

    def allow_reading_evidence(
        self, *, project_names: Sequence[str], report_group_arns: Sequence[str]
    ) -> None:
        """Release managers read what they approve on: the builds' logs and test and coverage reports."""
        stack = Stack.of(self)
        partition_region_account = f"{partition_of(stack.region)}:{{}}:{stack.region}:{stack.account}"
        self._add_evidence(
            iam.PolicyStatement(
                sid="ReadEvidenceBuilds",
                actions=["codebuild:BatchGetBuilds"],
                resources=[
                    f"arn:{partition_region_account.format('codebuild')}:project/{n}" for n in project_names
                ],
            )
        )
        self._add_evidence(
            iam.PolicyStatement(
                sid="ReadEvidenceLogs",
                actions=["logs:GetLogEvents"],
                resources=[
                    f"arn:{partition_region_account.format('logs')}:log-group:/aws/codebuild/{n}:*"
                    for n in project_names
                ],
            )
        )
        self._add_evidence(
            iam.PolicyStatement(
                sid="ReadEvidenceReports",
                actions=[
                    "codebuild:BatchGetReports",
                    "codebuild:DescribeTestCases",
                    "codebuild:DescribeCodeCoverages",
                    "codebuild:ListReportsForReportGroup",
                ],
                resources=list(report_group_arns),
            )
        )
