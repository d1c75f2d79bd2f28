"""The AWS the rehearsal stands in for: one fake account and region, its environments, its defaults.

Every part reads these from here; nothing re-types an account id, a region or a fake credential.
"""

from __future__ import annotations

# moto's default account: ARNs it builds carry this id, so ours do too.
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
ACCESS_KEY_ID = "test"
SECRET_ACCESS_KEY = "test"  # nosec B105 # the documented fake credential of the local cloud

# Environments: `local` is `make local`; the release deploys to staging and production; the
# pipeline's own account (the artifact bucket) is `pipeline`.
LOCAL = "local"
STAGING = "staging"
PRODUCTION = "production"
PIPELINE = "pipeline"
RELEASE_ENVIRONMENTS = (STAGING, PRODUCTION)
SERVICE_ENVIRONMENTS = (LOCAL, *RELEASE_ENVIRONMENTS)
ALL_ENVIRONMENTS = (*SERVICE_ENVIRONMENTS, PIPELINE)

# Service defaults the template may leave out (CloudFormation's documented property defaults).
LAMBDA_DEFAULT_TIMEOUT_SECONDS = 3.0
LAMBDA_DEFAULT_MEMORY_MB = 128
LAMBDA_ASYNC_ATTEMPTS = 3  # an asynchronous invocation: the first try and two retries
SQS_DEFAULT_BATCH_SIZE = 10
