"""Alarm-gated bake: a V2 stage `OnSuccess` condition that watches the environment's alarm.

CDK Pipelines creates its stages without condition props, so the conditions are added to the
rendered CfnPipeline after `build_pipeline()` (the one escape hatch in this app; see ADR 0005).
"""

from __future__ import annotations

from typing import Any, cast

from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam

from pipeline.bootstrap_roles import partition_of
from pipeline.config import EnvironmentConfig


def bake_condition(environment: EnvironmentConfig) -> dict[str, Any]:
    """An OnSuccess condition: if the alarm goes to ALARM during the bake, roll the stage back."""
    return {
        "Conditions": [
            {
                "Result": "ROLLBACK",
                "Rules": [
                    {
                        "Name": f"Bake{environment.name.capitalize()}",
                        "RuleTypeId": {
                            "Category": "Rule",
                            "Owner": "AWS",
                            "Provider": "CloudWatchAlarm",
                            "Version": "1",
                        },
                        "Configuration": {
                            "AlarmName": environment.bake_alarm_name,
                            "AlarmStates": "ALARM",
                            "WaitTime": str(environment.bake_minutes),
                        },
                        "Region": environment.region,
                    }
                ],
            }
        ]
    }


def add_bake(pipeline: codepipeline.Pipeline, *, stage_name: str, environment: EnvironmentConfig) -> None:
    """Gate the end of `stage_name` on the environment's bake alarm."""
    names = [stage.stage_name for stage in pipeline.stages]
    index = names.index(stage_name)
    cfn_pipeline = cast(codepipeline.CfnPipeline, pipeline.node.default_child)
    cfn_pipeline.add_property_override(f"Stages.{index}.OnSuccess", bake_condition(environment))
    # The rule runs as the pipeline role: it reads alarm states, nothing else.
    pipeline.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid=f"ReadBakeAlarm{environment.name.capitalize()}",
            actions=["cloudwatch:DescribeAlarms"],
            resources=[
                f"arn:{partition_of(environment.region)}:cloudwatch:{environment.region}:{environment.account}:alarm:{environment.bake_alarm_name}"
            ],
        )
    )
