"""`make bootstrap`: prepare each account for the pipeline with `cdk bootstrap`.

Every account (pipeline, staging, production) trusts the pipeline account. CloudFormation there
runs with execution policies derived from the templates' resource types (ADR 0015) instead of
AdministratorAccess, and every role it creates must carry this service's permissions boundary.
API Gateway's account-level CloudWatch Logs role is set once per account and region, unless the
account already has one (ADR 0016). One run bootstraps the accounts the current credentials belong
to and says how to reach the others.
"""

from __future__ import annotations

import json

# Runs the pinned CDK CLI with a fixed argument list and no shell.
import subprocess  # nosec B404
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.bootstrap_roles import partition_of
from pipeline.boundary import boundary_policy_name
from pipeline.config import ConfigError, PipelineConfig
from pipeline.execution_policy import (
    PolicyScope,
    boundary_document,
    execution_statements,
    policy_documents,
)
from pipeline.preflight import NO_CREDENTIALS, caller_identity

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"
# IAM keeps at most five versions of a managed policy; keep room for the new one.
_KEEP_OLD_VERSIONS = 3
API_GATEWAY_LOGS_ROLE = "apigateway-cloudwatch-logs"
API_GATEWAY_LOGS_POLICY = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
# A new role takes a few seconds to be usable by API Gateway (IAM is eventually consistent).
_ROLE_PROPAGATION_SECONDS = 60.0


def policy_name(service_name: str, part: int) -> str:
    return f"{service_name}-cfn-execution-{part}"


def scope_for(config: PipelineConfig, *, account: str, region: str) -> PolicyScope:
    return PolicyScope(
        service_name=config.service_name,
        account=account,
        region=region,
        partition=partition_of(region),
        qualifier=config.bootstrap_qualifier,
        connection_arn=config.connection_arn,
    )


def execution_policies(scope: PolicyScope) -> dict[str, dict[str, Any]]:
    """Policy name -> document: the execution policy, split to fit IAM's size limit."""
    documents = policy_documents(execution_statements(scope))
    return {policy_name(scope.service_name, index): doc for index, doc in enumerate(documents, start=1)}


def bootstrap_command(
    *, account: str, region: str, config: PipelineConfig, policy_arns: list[str]
) -> list[str]:
    """The `cdk bootstrap` call for one environment."""
    return [
        "cdk",
        "bootstrap",
        f"aws://{account}/{region}",
        "--trust",
        config.pipeline_account,
        "--trust-for-lookup",
        config.pipeline_account,
        "--cloudformation-execution-policies",
        ",".join(policy_arns),
        "--qualifier",
        config.bootstrap_qualifier,
    ]


def ensure_policy(iam: Any, *, arn: str, name: str, document: dict[str, Any]) -> str:
    """Create the managed policy, or make `document` its default version when it exists."""
    body = json.dumps(document)
    try:
        iam.create_policy(PolicyName=name, PolicyDocument=body, Description="make bootstrap (pipeline/)")
    except iam.exceptions.EntityAlreadyExistsException:
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        for version in old[: max(0, len(old) - _KEEP_OLD_VERSIONS)]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=body, SetAsDefault=True)
    return arn


def ensure_api_gateway_logs_role(*, iam: Any, apigateway: Any, partition: str, deadline: float) -> str:
    """Give API Gateway a CloudWatch Logs role in this region unless the account already has one."""
    current = apigateway.get_account().get("cloudwatchRoleArn")
    if current:
        return str(current)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        arn = iam.create_role(
            RoleName=API_GATEWAY_LOGS_ROLE,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description="API Gateway writes access and execution logs (account setting; make bootstrap)",
        )["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        arn = iam.get_role(RoleName=API_GATEWAY_LOGS_ROLE)["Role"]["Arn"]
    iam.attach_role_policy(
        RoleName=API_GATEWAY_LOGS_ROLE, PolicyArn=f"arn:{partition}:iam::aws:policy/{API_GATEWAY_LOGS_POLICY}"
    )
    patch = [{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}]
    while True:
        try:
            apigateway.update_account(patchOperations=patch)
            return str(arn)
        except apigateway.exceptions.BadRequestException:
            # "The role ARN does not have required permissions": the new role has not propagated yet.
            if time.monotonic() >= deadline:
                raise
            time.sleep(2)


def prepare_account(config: PipelineConfig, *, account: str, region: str, session: Any) -> list[str]:
    """Boundary, execution policies and the API Gateway logs role; returns the policy ARNs."""
    scope = scope_for(config, account=account, region=region)
    iam = session.client("iam")
    ensure_policy(
        iam,
        arn=scope.boundary_arn,
        name=boundary_policy_name(config.service_name),
        document=boundary_document(scope),
    )
    arns = [
        ensure_policy(
            iam, arn=f"arn:{scope.partition}:iam::{account}:policy/{name}", name=name, document=document
        )
        for name, document in execution_policies(scope).items()
    ]
    role = ensure_api_gateway_logs_role(
        iam=iam,
        apigateway=session.client("apigateway", region_name=region),
        partition=scope.partition,
        deadline=time.monotonic() + _ROLE_PROPAGATION_SECONDS,
    )
    print(f"aws://{account}/{region}: API Gateway logs to CloudWatch as {role}")
    return arns


def load_config() -> PipelineConfig:
    context = json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"]
    return PipelineConfig.from_context(context)


def main() -> int:
    try:
        config = load_config()
        config.check_deployable()
    except ConfigError as error:
        print(f"cdk.json: {error}", file=sys.stderr)
        return 2
    identity = caller_identity()
    if identity is None:
        print(NO_CREDENTIALS, file=sys.stderr)
        return 2
    import boto3  # noqa: PLC0415 - only when it talks to AWS

    environments = {(config.pipeline_account, config.pipeline_region)}
    environments |= {(env.account, env.region) for env in config.environments}
    for account, region in sorted(environments):
        if account != identity["Account"]:
            print(f"account {account}: sign in to it (e.g. AWS_PROFILE=<its profile>) and run make bootstrap")
            continue
        arns = prepare_account(config, account=account, region=region, session=boto3.session.Session())
        command = bootstrap_command(account=account, region=region, config=config, policy_arns=arns)
        subprocess.run(command, check=True)  # nosec B603
    return 0


if __name__ == "__main__":
    sys.exit(main())
