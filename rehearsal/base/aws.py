"""The AWS the rehearsal stands in for: accounts and regions, its environments, its defaults.

Every part reads these from here; nothing re-types an account id, a region or a fake credential.
A release runs each action in the account and region the synthesized pipeline names (ADR 0049);
`ACCOUNT_ID` and `REGION` are only the defaults: `make local`, and a pipeline synthesized without
an environment (`aws://unknown-account/unknown-region`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# moto's default account: ARNs it builds carry this id, so ours do too.
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# The local cloud's administrator: an IAM user each local cloud creates before it serves, with an
# allow-everything policy (ADR 0043). The rehearsal's own clients (provisioning, deployer, alarms,
# builds) sign with this key; functions never do: they sign with their execution role's session.
ACCESS_KEY_ID = "test"
SECRET_ACCESS_KEY = "test"  # nosec B105 # the documented fake credential of the local cloud
ADMINISTRATOR_USER_NAME = "rehearsal-administrator"
# The principal a role's trust policy names for Lambda, which offline is the rehearsal's runtime.
LAMBDA_SERVICE_PRINCIPAL = "lambda.amazonaws.com"

# Environments: `local` is `make local`; the release deploys to staging and production; the
# pipeline's own account (the artifact bucket) is `pipeline`.
LOCAL = "local"
STAGING = "staging"
PRODUCTION = "production"
PIPELINE = "pipeline"
RELEASE_ENVIRONMENTS = (STAGING, PRODUCTION)
SERVICE_ENVIRONMENTS = (LOCAL, *RELEASE_ENVIRONMENTS)
ALL_ENVIRONMENTS = (*SERVICE_ENVIRONMENTS, PIPELINE)


@dataclass(frozen=True, kw_only=True, order=True)
class AccountRegion:
    """Where something lives on AWS: one account in one region. Offline, each gets its own local cloud."""

    account_id: str
    region: str

    def __str__(self) -> str:
        return f"{self.account_id}/{self.region}"


DEFAULT_PLACE = AccountRegion(account_id=ACCOUNT_ID, region=REGION)
# "arn:partition:service:region:account-id:..." (IAM, "IAM identifiers": ARNs); IAM's region is empty.
_ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
# CDK's environment of a stack in the cloud assembly manifest: aws://<account>/<region>.
_CDK_ENVIRONMENT = re.compile(r"^aws://([^/]*)/([^/]*)$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")


def account_of_arn(arn: str) -> str | None:
    """The 12-digit account an ARN names, or None (not an ARN, or an unresolved reference)."""
    match = _ARN_ACCOUNT.match(arn)
    return match.group(1) if match else None


def place_of_cdk_environment(environment: str, default: AccountRegion = DEFAULT_PLACE) -> AccountRegion:
    """A manifest's `aws://account/region`; what an environment-agnostic stack leaves unknown
    (`unknown-account`, `unknown-region`) comes from `default`."""
    match = _CDK_ENVIRONMENT.match(environment)
    account, region = match.groups() if match else ("", "")
    return AccountRegion(
        account_id=account if _ACCOUNT.match(account) else default.account_id,
        region=region if _REGION.match(region) else default.region,
    )


# Service defaults a template may leave out, as AWS documents them:
# "The default value for this setting is 3 seconds" (Lambda, "Configure Lambda function timeout").
LAMBDA_DEFAULT_TIMEOUT_SECONDS = 3.0
# 128 MB: the Lambda API's MemorySize default (unverified here against an AWS page; moved unchanged).
LAMBDA_DEFAULT_MEMORY_MB = 128
# "If the function returns an error, by default Lambda attempts to run it two more times"
# (Lambda, "How Lambda handles errors and retries with asynchronous invocation").
LAMBDA_ASYNC_ATTEMPTS = 3
# BatchSize default 10 (Lambda, "Lambda parameters for Amazon SQS event source mappings").
SQS_DEFAULT_BATCH_SIZE = 10

# What Lambda's python runtime includes, installed into the local runtime's library folder. AWS
# publishes no fixed list: "The version of the AWS SDK included in the Python runtime depends on the
# runtime version and your AWS Region" (Lambda, "Building Lambda functions with Python"). These are
# the project's own pins (requirements.txt; tests/rehearsal/test_runtime_sandbox.py keeps them equal).
LAMBDA_PYTHON_RUNTIME_LIBRARIES = (
    "boto3==1.43.108",
    "botocore==1.43.127",
    "s3transfer==0.19.3",
    "jmespath==1.1.0",
    "python-dateutil==2.9.0.post0",
    "six==1.17.0",
    "urllib3==2.8.0",
)
# Installed beside aws-lambda-powertools in its layer folder: its dependency and the Tracer's
# (aws-xray-sdk, wrapt). Unverified: the exact extras AWS builds the public layer with.
POWERTOOLS_LAYER_EXTRA_LIBRARIES = (
    "jmespath==1.1.0",
    "typing_extensions==4.16.0",
    "aws-xray-sdk==2.15.0",
    "wrapt==2.5.2",
)
