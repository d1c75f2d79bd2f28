"""How the pipeline account's test builds reach an environment that may live in another account.

Each service stack creates a `TestRole` that only the environment's own test build role may assume
(the stack gets that role's ARN as the `TestRunnerRoleArn` parameter) and that may touch only that
stack's API, queues, table and bake alarm. The build gets the role's ARN as `TEST_ROLE_ARN` and its
only permission is to assume it, so the same path works in one account and in three (ADR 0017).
"""

from __future__ import annotations

from collections.abc import Callable

import jsii
from aws_cdk import IStableStringProducer, Lazy
from aws_cdk import aws_iam as iam

from pipeline.bootstrap_roles import partition_of
from pipeline.boundary import boundary_policy_arn
from pipeline.buildspec_step import BuildspecStep
from pipeline.config import EnvironmentConfig

TEST_ROLE_OUTPUT = "TestRoleArn"
TEST_ROLE_VARIABLE = "TEST_ROLE_ARN"
# The logical id of the role in service/template.yaml: CloudFormation names it `<stack>-TestRole-<id>`.
TEST_ROLE_LOGICAL_ID = "TestRole"


def assume_test_role_statement(environment: EnvironmentConfig) -> iam.PolicyStatement:
    """The test build's one permission: assume its environment's TestRole."""
    partition = partition_of(environment.region)
    return iam.PolicyStatement(
        sid="AssumeTheEnvironmentsTestRole",
        actions=["sts:AssumeRole"],
        resources=[
            f"arn:{partition}:iam::{environment.account}:role/{environment.stack_name}-{TEST_ROLE_LOGICAL_ID}-*"
        ],
    )


@jsii.implements(IStableStringProducer)
class _TestBuildRoleArn:
    """The test build's role ARN, known only once CDK Pipelines has created the build's project."""

    def __init__(self, step: Callable[[], BuildspecStep]) -> None:
        self._step = step

    def produce(self) -> str:
        project = self._step().project
        if project is None or project.role is None:
            raise RuntimeError("the test build's project is created by build_pipeline() before synthesis")
        return project.role.role_arn


def access_parameters(
    environment: EnvironmentConfig, *, service_name: str, test_step: Callable[[], BuildspecStep]
) -> dict[str, str]:
    """Parameter overrides of the service stack: the boundary of its account, the one test build role."""
    return {
        "PermissionsBoundaryArn": boundary_policy_arn(
            partition=partition_of(environment.region), account=environment.account, service_name=service_name
        ),
        "TestRunnerRoleArn": Lazy.string(_TestBuildRoleArn(test_step)),
    }
