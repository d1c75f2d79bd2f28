"""A CodeBuild action whose buildspec is exactly a file in buildspecs/ (read at synth time)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsii
import yaml
from aws_cdk import Duration, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

BUILDSPEC_DIR = Path(__file__).resolve().parent.parent / "buildspecs"
# Pinned image: Python 3.13 and Node 22 runtimes (see ADR 0004).
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0


def load_buildspec(name: str) -> dict[str, Any]:
    """The buildspec file as data; the pipeline embeds exactly this."""
    loaded = yaml.safe_load((BUILDSPEC_DIR / name).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"buildspecs/{name} is not a YAML mapping")
    return loaded


@jsii.implements(pipelines.ICodePipelineActionFactory)
class BuildspecStep(pipelines.Step):
    """Runs `buildspecs/<file>` in its own CodeBuild project.

    Unlike CDK Pipelines' ShellStep, nothing is merged into the buildspec, so the file in the
    repository is the whole truth (and the offline rehearsal reads the same text).
    """

    def __init__(
        self,
        step_id: str,
        *,
        buildspec_file: str,
        project_name: str,
        encryption_key: kms.IKey,
        inputs: Sequence[pipelines.FileSet],
        output_ids: Sequence[str] = (),
        environment_variables: Mapping[str, str] | None = None,
        policy_statements: Sequence[iam.PolicyStatement] = (),
        timeout_minutes: int = 30,
        cache: codebuild.Cache | None = None,
    ) -> None:
        super().__init__(step_id)
        self.buildspec_file = buildspec_file
        self._project_name = project_name
        self._encryption_key = encryption_key
        self._inputs = list(inputs)
        self._environment_variables = dict(environment_variables or {})
        self._policy_statements = list(policy_statements)
        self._timeout_minutes = timeout_minutes
        self._cache = cache
        self.project: codebuild.PipelineProject | None = None
        self.outputs = {output_id: pipelines.FileSet(output_id, self) for output_id in output_ids}
        for file_set in self._inputs:
            self._add_dependency_file_set(file_set)
        if output_ids:
            self._configure_primary_output(self.outputs[output_ids[0]])

    @property
    def project_name(self) -> str:
        return self._project_name

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
        project = codebuild.PipelineProject(
            scope,
            self.id,
            project_name=self._project_name,
            description=f"Runs buildspecs/{self.buildspec_file}",
            build_spec=codebuild.BuildSpec.from_object(load_buildspec(self.buildspec_file)),
            environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.MEDIUM
            ),
            encryption_key=self._encryption_key,
            timeout=Duration.minutes(self._timeout_minutes),
            cache=self._cache,
        )
        for statement in self._policy_statements:
            project.add_to_role_policy(statement)
        self.project = project
        inputs = [artifacts.to_code_pipeline(file_set) for file_set in self._inputs]
        stage.add_action(
            actions.CodeBuildAction(
                action_name=action_name,
                run_order=run_order,
                project=project,
                input=inputs[0],
                extra_inputs=inputs[1:] or None,
                outputs=[artifacts.to_code_pipeline(file_set) for file_set in self.outputs.values()] or None,
                environment_variables={
                    name: codebuild.BuildEnvironmentVariable(value=value)
                    for name, value in self._environment_variables.items()
                }
                or None,
            )
        )
        return pipelines.CodePipelineActionFactoryResult(run_orders_consumed=1)
