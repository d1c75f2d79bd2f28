"""boto3 clients, created on first use and reused by later invocations of the same process.

boto3 is imported here, inside the functions, because importing it costs ~100 ms of cold
start that a handler answering from validation alone (a 400) never needs to pay.
AWS_ENDPOINT_URL (the local cloud) and the region come from the environment, as boto3 reads them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

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
    """The S3 client, with SigV4 so that presigned POST policies are V4-signed."""
    from botocore.config import Config  # noqa: PLC0415 - botocore is loaded with boto3 only

    return _session().client("s3", config=Config(signature_version="s3v4"))


@functools.cache
def lambda_() -> LambdaClient:
    """The Lambda client (used by the PreTraffic hook)."""
    return _session().client("lambda")


@functools.cache
def codedeploy() -> CodeDeployClient:
    """The CodeDeploy client (used by the PreTraffic hook)."""
    return _session().client("codedeploy")
