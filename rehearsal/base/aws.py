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
