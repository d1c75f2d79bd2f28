"""Entry point (`cdk.json` runs `python -m pipeline.app`): read context, validate, synthesize.

A configuration mistake ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from pipeline.config import ConfigError, PipelineConfig
from pipeline.nag import acknowledge_findings
from pipeline.pipeline_stack import PipelineStack

STACK_ID = "Pipeline"
CONTEXT_KEYS = (
    "serviceName",
    "repository",
    "branch",
    "connectionArn",
    "pipelineAccount",
    "pipelineRegion",
    "stagingAccount",
    "stagingRegion",
    "productionAccount",
    "productionRegion",
    "releaseManagerEmails",
    "notificationEmails",
    "approverPrincipals",
    "stagingCanaryType",
    "productionCanaryType",
    "stagingBakeMinutes",
    "productionBakeMinutes",
    "bakeAlarmName",
    "executionMode",
    "triggerFilePathsExcluded",
    "reviewUrl",
    "bootstrapQualifier",
)


def read_config(app: App) -> PipelineConfig:
    """The validated config from the app's context (cdk.json merged with `-c` overrides).

    `make deploy` and the pipeline's Build synthesize with the same context (cdk.json alone); the
    deploy-only checks run before `cdk deploy`, in pipeline/deploy_guard.py.
    """
    return PipelineConfig.from_context({key: app.node.try_get_context(key) for key in CONTEXT_KEYS})


def build_app(context: Mapping[str, Any] | None = None, *, outdir: str | None = None) -> App:
    """Build the app with cdk-nag attached; tests pass a context dict, the CLI passes none."""
    app = App(context=dict(context) if context is not None else None, outdir=outdir)
    stack = PipelineStack(app, STACK_ID, config=read_config(app))
    acknowledge_findings(stack)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return app


def main(context: Mapping[str, Any] | None = None) -> int:
    """Synthesize; the CDK CLI hands context over in CDK_CONTEXT_JSON, tests may pass it here."""
    try:
        app = build_app(context)
    except ConfigError as error:
        print(f"cdk.json: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
