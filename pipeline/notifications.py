"""Tell people what the pipeline did: failures, successes, cancellations and pending approvals go to SNS."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codestarnotifications as notifications
from aws_cdk import aws_kms as kms
from constructs import Construct

from pipeline.topics import email_topic

PIPELINE_EVENTS = (
    "codepipeline-pipeline-pipeline-execution-failed",
    "codepipeline-pipeline-pipeline-execution-succeeded",
    # A release that never finishes must say so too: cancelled (the pipeline was updated under it
    # and restarted) or superseded by a newer commit (ADR 0010).
    "codepipeline-pipeline-pipeline-execution-canceled",
    "codepipeline-pipeline-pipeline-execution-superseded",
    "codepipeline-pipeline-manual-approval-needed",
)


class PipelineNotifications(Construct):
    """A notification rule on the pipeline, delivered to an encrypted SNS topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline: codepipeline.IPipeline,
        pipeline_name: str,
        emails: Sequence[str],
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = email_topic(
            self, display_name=f"{pipeline_name} releases", emails=emails, encryption_key=encryption_key
        )
        self.rule = notifications.NotificationRule(
            self,
            "Rule",
            source=pipeline,
            events=list(PIPELINE_EVENTS),
            targets=[self.topic],
            detail_type=notifications.DetailType.FULL,
        )
