"""The bake: the environment's test build watches its bake alarm, and a failed stage rolls back.

A V2 `CloudWatchAlarm` rule runs as the pipeline's role in the pipeline's account, and AWS documents
no way to read an alarm in another account with it (ADR 0018). So the bake is the last step of the
environment's test build (`make bake`, pipeline/bake_watch.py, as the environment's TestRole), and
the stage's `OnFailure` condition (Result ROLLBACK) rolls the stage back when any of its actions
fails: a failed deployment, failed tests, or an alarm during the bake. One mechanism for one
account and for three. CDK Pipelines creates its stages without condition props, so the condition
is added to the rendered CfnPipeline after `build_pipeline()` (the one escape hatch in this app).
"""

from __future__ import annotations

from typing import cast

from aws_cdk import aws_codepipeline as codepipeline

from pipeline.config import EnvironmentConfig


def bake_variables(environment: EnvironmentConfig) -> dict[str, str]:
    """What `make bake` reads in the test build."""
    return {"BAKE_ALARM_NAME": environment.bake_alarm_name, "BAKE_MINUTES": str(environment.bake_minutes)}


def roll_back_on_failure(pipeline: codepipeline.Pipeline, *, stage_name: str) -> None:
    """A failed `stage_name` rolls back to the last execution that succeeded in it."""
    names = [stage.stage_name for stage in pipeline.stages]
    cfn_pipeline = cast(codepipeline.CfnPipeline, pipeline.node.default_child)
    cfn_pipeline.add_property_override(f"Stages.{names.index(stage_name)}.OnFailure", {"Result": "ROLLBACK"})
