"""The bench's reference app is what the synth figure claims: a minimal CDK Pipelines app."""

from __future__ import annotations

from aws_cdk import App
from aws_cdk.assertions import Template

from bench.minimal_pipeline import MinimalPipelineStack


def test_the_reference_app_has_source_synth_two_stages_and_an_approval() -> None:
    app = App()
    template = Template.from_stack(MinimalPipelineStack(app, "MinimalPipeline")).to_json()
    (pipeline,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
    stages = {stage["Name"]: stage for stage in pipeline["Properties"]["Stages"]}
    assert {"Source", "Build", "Staging", "Production"} <= set(stages)
    providers = [action["ActionTypeId"]["Provider"] for action in stages["Production"]["Actions"]]
    assert providers[0] == "Manual"
