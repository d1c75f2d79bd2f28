"""The roles `cdk bootstrap` creates in each account, imported so deploy actions can assume them.

Pipeline-side grants go into resource policies (bucket, key) because the roles belong to the
bootstrap stack, not to this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from constructs import Construct


@dataclass(frozen=True, kw_only=True)
class BootstrapRoles:
    """The deploy role CodePipeline assumes and the execution role CloudFormation runs as."""

    deploy: iam.IRole
    execution: iam.IRole


def partition_of(region: str) -> str:
    """The partition a region belongs to (a literal, so action configurations need no Fn::Join)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def bootstrap_role_arn(*, kind: str, account: str, region: str, qualifier: str) -> str:
    """ARN of a bootstrap role: kind is `deploy` or `cfn-exec`."""
    return f"arn:{partition_of(region)}:iam::{account}:role/cdk-{qualifier}-{kind}-role-{account}-{region}"


def import_bootstrap_roles(
    scope: Construct, construct_id: str, *, account: str, region: str, qualifier: str
) -> BootstrapRoles:
    """Import one environment's bootstrap roles; call once per account and region."""

    def _import(kind: str, suffix: str) -> iam.IRole:
        return iam.Role.from_role_arn(
            scope,
            f"{construct_id}{suffix}",
            bootstrap_role_arn(kind=kind, account=account, region=region, qualifier=qualifier),
            mutable=False,
            add_grants_to_resources=True,
        )

    return BootstrapRoles(
        deploy=_import("deploy", "DeployRole"), execution=_import("cfn-exec", "ExecutionRole")
    )
