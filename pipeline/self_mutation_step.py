"""Self-mutation without a CodeBuild start-up: a CloudFormation action updates the pipeline stack
from the template synthesized in Build (possible because the pipeline stack has no assets).
"""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import CfnCapabilities, pipelines
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions

from pipeline.bootstrap_roles import BootstrapRoles


@jsii.implements(pipelines.ICodePipelineActionFactory)
class UpdatePipelineStep(pipelines.Step):
    """CloudFormation CreateUpdateStack on this pipeline's own stack."""

    def __init__(
        self,
        step_id: str,
        *,
        cloud_assembly: pipelines.FileSet,
        stack_name: str,
        template_file: str,
        roles: BootstrapRoles,
    ) -> None:
        super().__init__(step_id)
        self.cloud_assembly = cloud_assembly
        self.stack_name = stack_name
        self.template_file = template_file
        self.roles = roles
        self._add_dependency_file_set(cloud_assembly)

    def produce_action(
        self,
        stage: codepipeline.IStage,
        *,
        action_name: str,
        artifacts: pipelines.ArtifactMap,
        pipeline: pipelines.CodePipeline,
        run_order: int | float,
        scope: Any,
        stack_outputs_map: pipelines.StackOutputsMap,
        before_self_mutation: bool | None = None,
        code_build_defaults: pipelines.CodeBuildOptions | None = None,
        fallback_artifact: codepipeline.Artifact | None = None,
        variables_namespace: str | None = None,
    ) -> pipelines.CodePipelineActionFactoryResult:
        stage.add_action(
            actions.CloudFormationCreateUpdateStackAction(
                action_name=action_name,
                run_order=run_order,
                stack_name=self.stack_name,
                template_path=artifacts.to_code_pipeline(self.cloud_assembly).at_path(self.template_file),
                cfn_capabilities=[CfnCapabilities.NAMED_IAM, CfnCapabilities.AUTO_EXPAND],
                admin_permissions=False,
                role=self.roles.deploy,
                deployment_role=self.roles.execution,
            )
        )
        return pipelines.CodePipelineActionFactoryResult(run_orders_consumed=1)
