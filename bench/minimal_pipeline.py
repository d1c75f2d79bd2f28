"""The reference for `make synth`: a minimal CDK Pipelines app, synthesized in the same bench rounds.

Source (CodeConnections), a synth step, two stages of one small stack each, a manual approval
before the second; no cdk-nag, no custom steps. Run by the bench as
`cdk synth --app "python -m bench.minimal_pipeline"`; it needs no AWS account.
"""

from __future__ import annotations

from aws_cdk import App, Environment, Stack, Stage, pipelines
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ENVIRONMENT = Environment(account="111111111111", region="eu-west-1")
CONNECTION_ARN = (
    "arn:aws:codeconnections:eu-west-1:111111111111:connection/00000000-0000-0000-0000-000000000000"
)


class ServiceStage(Stage):
    """One environment: a stack with one queue."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id, env=ENVIRONMENT)
        sqs.Queue(Stack(self, "Service"), "Queue")


class MinimalPipelineStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id, env=ENVIRONMENT)
        source = pipelines.CodePipelineSource.connection(
            "example-org/service", "main", connection_arn=CONNECTION_ARN
        )
        pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            synth=pipelines.ShellStep("Synth", input=source, commands=["make synth"]),
        )
        pipeline.add_stage(ServiceStage(self, "Staging"))
        pipeline.add_stage(ServiceStage(self, "Production"), pre=[pipelines.ManualApprovalStep("Release")])


def main() -> None:
    app = App()
    MinimalPipelineStack(app, "MinimalPipeline")
    app.synth()


if __name__ == "__main__":
    main()
