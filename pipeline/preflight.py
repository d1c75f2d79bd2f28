"""Stop early, with one line, when a target that needs AWS has no credentials to use.

Run as `python -m pipeline.preflight`; prints the account it found.
"""

from __future__ import annotations

import sys
from typing import Any

NO_CREDENTIALS = (
    "No usable AWS credentials: sign in (aws configure sso, or export AWS_PROFILE=<profile>) "
    "and run the target again"
)


def caller_identity() -> dict[str, Any] | None:
    """The STS identity of the current credentials, or None when there are none that work."""
    import boto3  # noqa: PLC0415 - imported only by the targets that talk to AWS
    from botocore.config import Config  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        client = boto3.client("sts", config=Config(connect_timeout=5, retries={"max_attempts": 1}))
        identity: dict[str, Any] = dict(client.get_caller_identity())
    except (BotoCoreError, ClientError):
        return None
    return identity


def main() -> int:
    identity = caller_identity()
    if identity is None:
        print(NO_CREDENTIALS, file=sys.stderr)
        return 2
    print(f"Using AWS account {identity['Account']} as {identity['Arn']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
