"""Scheduled (SweepUnsentOrdersFunction): send the orders whose message was never sent (the outbox).

Runs every minute. Returns `{"resent": n, "failed": m}`; it raises when a send failed, so that
the function's Errors (an operations alarm) say the queue is unreachable while orders wait.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.logic.outbox import UNSENT_GRACE_SECONDS, resend_unsent_orders
from orders.observability import logger, metrics, traced


class UnsentOrdersError(RuntimeError):
    """Some unsent orders could not be sent this time; the next sweep tries again."""


@logger.inject_lambda_context
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """Lambda entry point."""
    cutoff = datetime.now(UTC) - timedelta(seconds=UNSENT_GRACE_SECONDS)
    result = resend_unsent_orders(
        repository=deps.order_repository(),
        queue=deps.order_queue(),
        created_before=cutoff.isoformat(timespec="milliseconds"),
    )
    if result.resent:
        metrics.add_metric(name="OrdersResent", unit=MetricUnit.Count, value=result.resent)
    logger.info("Outbox swept", resent=result.resent, failed=result.failed)
    if result.failed:
        raise UnsentOrdersError(f"{result.failed} unsent orders could not be sent; the next sweep retries")
    return {"resent": result.resent, "failed": result.failed}
