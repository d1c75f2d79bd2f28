"""What the post-deploy test builds get: the stack outputs as variables, and the access they need."""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from pipeline.bootstrap_roles import partition_of
from pipeline.config import EnvironmentConfig

# Stack outputs the integration tests read (tests/integration/conftest.py), as build variables.
STACK_OUTPUT_VARIABLES = {
    "ApiUrl": "BASE_URL",
    "OrdersTableName": "ORDERS_TABLE_NAME",
}


def post_deploy_statements(environment: EnvironmentConfig) -> list[iam.PolicyStatement]:
    """SigV4-signed API calls, plus the table the nothing-written check scans.

    No queue access: the poison-message check runs offline only (its redrive takes ~15 minutes on
    AWS; see tests/integration/test_orders_api.py).

    Scoped to the environment's stack by name prefix: the service stack creates the API id,
    queue and table names. In another account these also need resource policies there.
    """
    partition, region, account = partition_of(environment.region), environment.region, environment.account
    prefix = environment.stack_name
    return [
        iam.PolicyStatement(
            sid="InvokeServiceApi",
            actions=["execute-api:Invoke"],
            resources=[f"arn:{partition}:execute-api:{region}:{account}:*"],
        ),
        iam.PolicyStatement(
            sid="CheckNothingWritten",
            actions=["dynamodb:Scan", "dynamodb:GetItem"],
            resources=[f"arn:{partition}:dynamodb:{region}:{account}:table/{prefix}-*"],
        ),
    ]
