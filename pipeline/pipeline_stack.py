"""The pipeline stack: composes the constructs and steps, and does the grants."""

from __future__ import annotations

from typing import cast

from aws_cdk import CfnOutput, DefaultStackSynthesizer, Environment, RemovalPolicy, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam
from constructs import Construct

from pipeline.approval import ReleaseApproval
from pipeline.artifacts import ArtifactStore
from pipeline.bake import bake_variables, roll_back_on_failure
from pipeline.bootstrap_roles import BootstrapRoles, import_bootstrap_roles, partition_of
from pipeline.boundary import apply_permissions_boundary
from pipeline.buildspec_step import BuildspecStep
from pipeline.config import EnvironmentConfig, PipelineConfig
from pipeline.cross_account import (
    TEST_ROLE_OUTPUT,
    TEST_ROLE_VARIABLE,
    access_parameters,
    assume_test_role_statement,
)
from pipeline.notifications import PipelineNotifications
from pipeline.post_deploy_access import STACK_OUTPUT_VARIABLES
from pipeline.sam_deploy_step import SamDeployStep
from pipeline.self_mutation_step import UpdatePipelineStep

# Stage names: the docs, the tests and the offline rehearsal use these words.
BUILD_STAGE = "Build"
UPDATE_PIPELINE_STAGE = "UpdatePipeline"
STAGING_STAGE = "Staging"
APPROVAL_STAGE = "Approval"
PRODUCTION_STAGE = "Production"
APPROVAL_ACTION = "Release"
# Build's output file sets; CDK Pipelines names their artifacts `<step>_<file set>`.
CLOUD_ASSEMBLY = "CloudAssembly"
PACKAGED_TEMPLATE = "PackagedTemplate"


class PipelineStack(Stack):
    """Source -> Build -> UpdatePipeline -> Staging -> Approval -> Production."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=config.stack_name,
            env=Environment(account=config.pipeline_account, region=config.pipeline_region),
            description=f"Release pipeline of the {config.service_name} service (pipeline/)",
            # The qualifier names the bootstrap roles, bucket and version parameter the stack uses;
            # without it here the synthesizer keeps CDK's default one (see ADR 0010).
            synthesizer=DefaultStackSynthesizer(qualifier=config.bootstrap_qualifier),
        )
        self.config = config
        self._roles: dict[str, BootstrapRoles] = {}
        self.artifacts = ArtifactStore(self, "Artifacts", service_name=config.service_name)
        self.code_pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_name=config.pipeline_name,
            pipeline_type=codepipeline.PipelineType.V2,
            execution_mode=codepipeline.ExecutionMode[config.execution_mode.value],
            artifact_bucket=self.artifacts.bucket,
            # Self-mutation updates this pipeline; CodePipeline cancels the execution in flight then,
            # so restart it with the commit that changed the pipeline, as CDK Pipelines does (ADR 0010).
            restart_execution_on_update=True,
        )
        self.source = pipelines.CodePipelineSource.connection(
            config.repository, config.branch, connection_arn=config.connection_arn
        )
        self.build = self._build_step()
        self.cdk_pipeline = pipelines.CodePipeline(
            self,
            "Release",
            code_pipeline=self.code_pipeline,
            synth=self.build,
            self_mutation=False,
            publish_assets_in_parallel=False,
        )
        self.approval = ReleaseApproval(
            self,
            "Approval",
            pipeline_name=config.pipeline_name,
            stage_name=APPROVAL_STAGE,
            action_name=APPROVAL_ACTION,
            emails=config.release_manager_emails,
            approver_principals=config.approver_principals,
            review_url=config.review_url_for(self.source.source_attribute("CommitId")),
            comment=f"Staging passed its integration tests and bake. Approve to release to production "
            f"({config.production.stack_name}, {config.production.canary_type}).",
            encryption_key=self.artifacts.key,
        )
        CfnOutput(
            self,
            "ReleaseManagerRoleArn",
            value=self.approval.role.role_arn,
            description="Release managers assume this role to approve or reject a release",
        )
        self._add_waves()
        self.cdk_pipeline.build_pipeline()
        self._finish_built_pipeline()
        apply_permissions_boundary(self, service_name=config.service_name)

    # ------------------------------------------------------------------ steps

    def _build_step(self) -> BuildspecStep:
        self.read_powertools_parameters = self._read_powertools_parameters()
        return BuildspecStep(
            BUILD_STAGE,
            buildspec_file="build.yml",
            project_name=f"{self.config.service_name}-build",
            encryption_key=self.artifacts.key,
            inputs=[self.source.primary_output],  # type: ignore[list-item]
            output_ids=[CLOUD_ASSEMBLY, PACKAGED_TEMPLATE],
            # `make package` encrypts the packaged code with the artifact key (sam package --kms-key-id).
            environment_variables={
                "ARTIFACT_BUCKET": self.artifacts.bucket.bucket_name,
                "ARTIFACT_KEY_ID": self.artifacts.key.key_arn,
            },
            cache=codebuild.Cache.local(codebuild.LocalCacheMode.CUSTOM),
            policy_statements=[self.read_powertools_parameters],
        )

    def _read_powertools_parameters(self) -> iam.PolicyStatement:
        """pipeline/layer_check.py reads the public Powertools layer parameter in each target region."""
        regions = sorted({env.region for env in self.config.environments})
        return iam.PolicyStatement(
            sid="ReadPowertoolsLayerParameters",
            actions=["ssm:GetParameter"],
            # Public parameters belong to no account, hence the empty account field.
            resources=[
                f"arn:{partition_of(region)}:ssm:{region}::parameter/aws/service/powertools/*"
                for region in regions
            ],
        )

    def _roles_for(self, *, account: str, region: str) -> BootstrapRoles:
        key = f"{account}-{region}"
        if key not in self._roles:
            self._roles[key] = import_bootstrap_roles(
                self,
                f"Bootstrap{account}",
                account=account,
                region=region,
                qualifier=self.config.bootstrap_qualifier,
            )
        return self._roles[key]

    def _deploy_step(self, environment: EnvironmentConfig) -> SamDeployStep:
        return SamDeployStep(
            "Service",
            packaged_template=self.build.outputs[PACKAGED_TEMPLATE],
            stack_name=environment.stack_name,
            account=environment.account,
            region=environment.region,
            parameters={
                "Environment": environment.name,
                "DeploymentType": environment.canary_type,
                **access_parameters(
                    environment,
                    service_name=self.config.service_name,
                    test_step=lambda: self.test_steps[environment.name],
                ),
            },
            roles=self._roles_for(account=environment.account, region=environment.region),
            variables_namespace=f"{environment.name.capitalize()}Stack",
        )

    def _test_step(
        self, step_id: str, *, buildspec_file: str, environment: EnvironmentConfig, deploy: SamDeployStep
    ) -> BuildspecStep:
        step = BuildspecStep(
            step_id,
            buildspec_file=buildspec_file,
            project_name=f"{self.config.service_name}-{environment.name}-{step_id.lower()}",
            encryption_key=self.artifacts.key,
            inputs=[self.source.primary_output],  # type: ignore[list-item]
            environment_variables={
                **{
                    variable: deploy.output_variable(output)
                    for output, variable in STACK_OUTPUT_VARIABLES.items()
                },
                TEST_ROLE_VARIABLE: deploy.output_variable(TEST_ROLE_OUTPUT),
                **bake_variables(environment),
            },
            # The tests, then the bake (ADR 0018).
            timeout_minutes=20 + environment.bake_minutes,
            # Keeps the tests' virtualenv and pip's cache between builds on one host (ADR 0058).
            cache=codebuild.Cache.local(codebuild.LocalCacheMode.CUSTOM),
            # The build reaches the environment only through its TestRole (ADR 0017).
            policy_statements=[assume_test_role_statement(environment)],
        )
        step.add_step_dependency(deploy)
        return step

    def _add_waves(self) -> None:
        config = self.config
        self.update_pipeline = UpdatePipelineStep(
            "SelfMutate",
            cloud_assembly=self.build.outputs[CLOUD_ASSEMBLY],
            stack_name=config.stack_name,
            template_file=self.template_file,
            roles=self._roles_for(account=config.pipeline_account, region=config.pipeline_region),
        )
        self.cdk_pipeline.add_wave(UPDATE_PIPELINE_STAGE, pre=[self.update_pipeline])
        self.deploy_steps: dict[str, SamDeployStep] = {}
        self.test_steps: dict[str, BuildspecStep] = {}
        for stage_name, environment, test_id, buildspec in (
            (STAGING_STAGE, config.staging, "IntegrationTests", "integration.yml"),
            (PRODUCTION_STAGE, config.production, "SmokeTests", "smoke.yml"),
        ):
            if environment is config.production:
                self.cdk_pipeline.add_wave(APPROVAL_STAGE, pre=[self.approval.step])
            deploy = self._deploy_step(environment)
            tests = self._test_step(test_id, buildspec_file=buildspec, environment=environment, deploy=deploy)
            deploy.add_step_dependency(self.update_pipeline)
            self.cdk_pipeline.add_wave(stage_name, pre=[deploy, tests])
            self.deploy_steps[environment.name] = deploy
            self.test_steps[environment.name] = tests

    # ------------------------------------------------------------------ after build_pipeline()

    def _finish_built_pipeline(self) -> None:
        config = self.config
        source_stage = self.code_pipeline.stages[0]
        source_action = source_stage.actions[0]
        self.code_pipeline.add_trigger(
            provider_type=codepipeline.ProviderType.CODE_STAR_SOURCE_CONNECTION,
            git_configuration=codepipeline.GitConfiguration(
                source_action=source_action,
                push_filter=[
                    codepipeline.GitPushFilter(
                        branches_includes=[config.branch],
                        file_paths_excludes=list(config.trigger_file_paths_excluded) or None,
                    )
                ],
            ),
        )
        self.source_action_role = self.action_role(
            source_stage.stage_name, source_action.action_properties.action_name
        )
        self.approval_action_role = self.action_role(APPROVAL_STAGE, APPROVAL_ACTION)
        # CDK grants only the old service prefix; connections created since 2024 need both.
        self.source_action_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="UseCodeConnection",
                actions=["codeconnections:UseConnection"],
                resources=[config.connection_arn],
            )
        )
        self._grant_report_groups()
        # What the release managers approve on: the Build's tests and staging's integration tests.
        self.approval.allow_reading_evidence(
            project_names=[self.build.project_name, self.test_steps[config.staging.name].project_name],
            report_group_arns=[group.report_group_arn for group in self.report_groups],
        )
        for stage_name in (STAGING_STAGE, PRODUCTION_STAGE):
            roll_back_on_failure(self.code_pipeline, stage_name=stage_name)
        self._grant_packaged_code_to_deployers()
        self.notifications = PipelineNotifications(
            self,
            "Notifications",
            pipeline=self.code_pipeline,
            pipeline_name=config.pipeline_name,
            emails=config.notification_emails,
            encryption_key=self.artifacts.key,
        )
        self.artifacts.allow_service(
            service_principal="codestar-notifications.amazonaws.com", region=self.region
        )

    def action_role(self, stage_name: str, action_name: str) -> iam.IRole:
        """The role CodePipeline created for one action (CDK does not expose it on the action)."""
        role = self.code_pipeline.node.find_child(stage_name).node.find_child(action_name)
        return cast(iam.IRole, role.node.find_child("CodePipelineActionRole"))

    def _grant_report_groups(self) -> None:
        """Report groups named `<project>-<report>` so the buildspec's `reports:` lands in them."""
        project = self.build.project
        if project is None:
            raise RuntimeError("report groups are granted after build_pipeline() created the project")
        project_name = f"{self.config.service_name}-build"
        self.report_groups: list[codebuild.ReportGroup] = []
        for report, group_type in (
            ("tests", codebuild.ReportGroupType.TEST),
            ("coverage", codebuild.ReportGroupType.CODE_COVERAGE),
        ):
            group = codebuild.ReportGroup(
                self,
                f"{report.capitalize()}Reports",
                report_group_name=f"{project_name}-{report}",
                type=group_type,
                # A fixed name: a first create that rolls back must not leave it behind (ADR 0016).
                removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
            )
            group.grant_write(project)
            self.report_groups.append(group)

    def _grant_packaged_code_to_deployers(self) -> None:
        """CloudFormation (as the bootstrap execution role) reads the Lambda code `sam package` uploaded."""
        for environment in self.config.environments:
            roles = self._roles_for(account=environment.account, region=environment.region)
            self.artifacts.bucket.grant_read(roles.execution)
            self.artifacts.key.grant_decrypt(roles.execution)
