"""Deploy the packaged template into one environment: create a change set, then execute it.

The same packaged template artifact goes to every environment; only parameters differ.
The SAM `DeploymentPreference` runs the canary inside the stack update, so the execute
action waits for the shift (CodePipeline waits for free; CodeBuild would bill it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsii
from aws_cdk import CfnCapabilities, pipelines
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions

from pipeline.bootstrap_roles import BootstrapRoles

PACKAGED_TEMPLATE_FILE = "packaged.yaml"


@jsii.implements(pipelines.ICodePipelineActionFactory)
class SamDeployStep(pipelines.Step):
    """CloudFormation CreateReplaceChangeSet + ExecuteChangeSet from the packaged template."""

    def __init__(
        self,
        step_id: str,
        *,
        packaged_template: pipelines.FileSet,
        stack_name: str,
        account: str,
        region: str,
        parameters: Mapping[str, str],
        roles: BootstrapRoles,
        variables_namespace: str,
    ) -> None:
        super().__init__(step_id)
        self.packaged_template = packaged_template
        self.stack_name = stack_name
        self.account = account
        self.region = region
        self.parameters = dict(parameters)
        self.roles = roles
        self.variables_namespace = variables_namespace
        self.change_set_name = f"{stack_name}-release"
        self._add_dependency_file_set(packaged_template)

    def output_variable(self, output_name: str) -> str:
        """A CodePipeline variable holding one of the deployed stack's outputs."""
        return f"#{{{self.variables_namespace}.{output_name}}}"

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
        template = artifacts.to_code_pipeline(self.packaged_template)
        stage.add_action(
            actions.CloudFormationCreateReplaceChangeSetAction(
                action_name=f"{action_name}.Prepare",
                run_order=run_order,
                stack_name=self.stack_name,
                change_set_name=self.change_set_name,
                template_path=template.at_path(PACKAGED_TEMPLATE_FILE),
                parameter_overrides=self.parameters,
                cfn_capabilities=[CfnCapabilities.ANONYMOUS_IAM, CfnCapabilities.AUTO_EXPAND],
                admin_permissions=False,
                role=self.roles.deploy,
                deployment_role=self.roles.execution,
                account=self.account,
                region=self.region,
            )
        )
        stage.add_action(
            actions.CloudFormationExecuteChangeSetAction(
                action_name=f"{action_name}.Deploy",
                run_order=run_order + 1,
                stack_name=self.stack_name,
                change_set_name=self.change_set_name,
                role=self.roles.deploy,
                account=self.account,
                region=self.region,
                variables_namespace=self.variables_namespace,
            )
        )
        return pipelines.CodePipelineActionFactoryResult(run_orders_consumed=2)
