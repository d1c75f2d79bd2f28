"""CodeDeploy PreTraffic hook (PreTrafficHookFunction): try each new version before traffic moves.

VERSIONS_UNDER_TEST lists `name=<qualified version ARN>` pairs, `name` being the handler
module (submit, status, presign, worker, attach). The hook always reports to CodeDeploy,
even when it cannot run, so a deployment never waits out the hook's timeout.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.logic.canary import check_versions, parse_versions_under_test
from orders.observability import logger
from orders.settings import get_settings


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Invoke every version under test, then report Succeeded or Failed."""
    try:
        versions = parse_versions_under_test(get_settings().versions_under_test)
        problems = check_versions(versions=versions, invoker=deps.function_invoker())
    except Exception as error:  # the hook must report whatever happens
        problems = [f"pre-traffic checks could not run: {error}"]
    for problem in problems:
        logger.error("Pre-traffic check failed", problem=problem)
    succeeded = not problems
    deps.hook_reporter().report(
        deployment_id=event["DeploymentId"],
        execution_id=event["LifecycleEventHookExecutionId"],
        succeeded=succeeded,
    )
    logger.info("Pre-traffic hook reported", succeeded=succeeded, versions=get_settings().versions_under_test)
    return {"status": "Succeeded" if succeeded else "Failed", "problems": problems}
