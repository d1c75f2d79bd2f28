"""`make bootstrap`: prepare each account for the pipeline with `cdk bootstrap`.

Every account (pipeline, staging, production) trusts the pipeline account, and CloudFormation
there runs with a scoped execution policy instead of AdministratorAccess (see ADR 0006). One run
bootstraps the accounts the current credentials belong to and says how to reach the others.
"""

from __future__ import annotations

import json

# Runs the pinned CDK CLI with a fixed argument list and no shell.
import subprocess  # nosec B404
import sys
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, PipelineConfig
from pipeline.preflight import NO_CREDENTIALS, caller_identity

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"
# What the service template and the pipeline stack create. IAM is limited to the roles and
# policies of this service's stacks (their names start with the service name).
MANAGED_SERVICES = (
    "apigateway",
    "cloudformation",
    "cloudwatch",
    "codebuild",
    "codedeploy",
    "codepipeline",
    "codestar-notifications",
    "dynamodb",
    "events",
    "kms",
    "lambda",
    "logs",
    "s3",
    "sns",
    "sqs",
    "ssm",
    "xray",
)


def execution_policy(service_name: str) -> dict[str, Any]:
    """The policy CloudFormation runs with in every bootstrapped account."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ManageServiceResources",
                "Effect": "Allow",
                "Action": [f"{service}:*" for service in MANAGED_SERVICES],
                "Resource": "*",
            },
            {
                "Sid": "ManageServiceRoles",
                "Effect": "Allow",
                "Action": ["iam:*Role*", "iam:*RolePolicy*", "iam:PassRole", "iam:GetPolicy*"],
                "Resource": [
                    f"arn:aws:iam::*:role/{service_name}-*",
                    f"arn:aws:iam::*:policy/{service_name}-*",
                ],
            },
            {
                "Sid": "UseConnections",
                "Effect": "Allow",
                "Action": ["codeconnections:PassConnection", "codestar-connections:PassConnection"],
                "Resource": "*",
            },
        ],
    }


def policy_name(service_name: str) -> str:
    return f"{service_name}-cfn-execution"


def bootstrap_command(*, account: str, region: str, config: PipelineConfig, policy_arn: str) -> list[str]:
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
        policy_arn,
        "--qualifier",
        config.bootstrap_qualifier,
    ]


def ensure_policy(service_name: str, account: str) -> str:
    """Create the execution policy, or add a new default version when it exists."""
    import boto3  # noqa: PLC0415

    iam = boto3.client("iam")
    name = policy_name(service_name)
    arn = f"arn:aws:iam::{account}:policy/{name}"
    document = json.dumps(execution_policy(service_name))
    try:
        iam.create_policy(
            PolicyName=name, PolicyDocument=document, Description="cdk bootstrap execution policy"
        )
    except iam.exceptions.EntityAlreadyExistsException:
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        for old in sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])[
            :-3
        ]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=old["VersionId"])
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)
    return arn


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
    environments = {(config.pipeline_account, config.pipeline_region)}
    environments |= {(env.account, env.region) for env in config.environments}
    for account, region in sorted(environments):
        if account != identity["Account"]:
            print(f"account {account}: sign in to it (e.g. AWS_PROFILE=<its profile>) and run make bootstrap")
            continue
        arn = ensure_policy(config.service_name, account)
        command = bootstrap_command(account=account, region=region, config=config, policy_arn=arn)
        subprocess.run(command, check=True)  # nosec B603
    return 0


if __name__ == "__main__":
    sys.exit(main())
