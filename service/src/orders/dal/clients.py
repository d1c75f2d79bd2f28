"""boto3 clients, created on first use and reused by later invocations of the same process.

boto3 is imported here, inside the functions, because importing it costs ~100 ms of cold
start that a handler answering from validation alone (a 400) never needs to pay.
AWS_ENDPOINT_URL (the local cloud) and the region come from the environment, as boto3 reads them.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from orders.observability import patch_botocore

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@functools.cache
def _session() -> boto3.session.Session:
    import boto3  # noqa: PLC0415 - deferred on purpose, see the module docstring

    patch_botocore()
    return boto3.session.Session()


def credentials() -> Any:
    """The process's current AWS credentials (the function's role on Lambda), for SigV4 signing."""
    return _session().get_credentials()


@functools.cache
def dynamodb() -> DynamoDBClient:
    """The DynamoDB client."""
    return _session().client("dynamodb")


@functools.cache
def sqs() -> SQSClient:
    """The SQS client."""
    return _session().client("sqs")


@functools.cache
def s3() -> S3Client:
    """The S3 client: SigV4 (V4-signed POST policies) on the bucket's regional endpoint.

    botocore presigns POSTs for the global endpoint (`<bucket>.s3.amazonaws.com`) whatever the
    region; a bucket elsewhere answers that with a redirect, or, in Regions launched after
    March 2019, an error. The functions run in the bucket's Region, so theirs is the bucket's.
    An endpoint set in the environment (the local cloud) wins, as botocore's own settings do.
    """
    from botocore.config import Config  # noqa: PLC0415 - botocore is loaded with boto3 only

    session = _session()
    config = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
    return session.client("s3", config=config, endpoint_url=regional_s3_endpoint(session.region_name))


def regional_s3_endpoint(region: str | None) -> str | None:
    """`https://s3.<region>.amazonaws.com` (`.com.cn` in China), or None when the environment sets one."""
    if not region or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
        return None
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://s3.{region}.{suffix}"


@functools.cache
def lambda_() -> LambdaClient:
    """The Lambda client (used by the PreTraffic hook)."""
    return _session().client("lambda")


@functools.cache
def codedeploy() -> CodeDeployClient:
    """The CodeDeploy client (used by the PreTraffic hook)."""
    return _session().client("codedeploy")
