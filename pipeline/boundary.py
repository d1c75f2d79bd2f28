"""The permissions boundary every role of the pipeline and service stacks carries (ADR 0015).

`make bootstrap` creates the managed policy in each account and lets CloudFormation create roles only
with it attached, so no role these stacks create can grant more than the boundary allows.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam


def boundary_policy_name(service_name: str) -> str:
    """The boundary's managed policy name, the same in every account."""
    return f"{service_name}-permissions-boundary"


def boundary_policy_arn(*, partition: str, account: str, service_name: str) -> str:
    return f"arn:{partition}:iam::{account}:policy/{boundary_policy_name(service_name)}"


def apply_permissions_boundary(stack: Stack, *, service_name: str) -> None:
    """Every role in `stack` (CDK's generated ones included) gets the boundary of its own account."""
    boundary = iam.ManagedPolicy.from_managed_policy_name(
        stack, "PermissionsBoundary", boundary_policy_name(service_name)
    )
    iam.PermissionsBoundary.of(stack).apply(boundary)
