"""`POST /orders` (SubmitOrderFunction): validate, store PENDING, enqueue, answer 202."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.handlers.http import Request, Route, json_response, serve
from orders.logic.submit import submit_order
from orders.models.order import OrderStatus
from orders.models.validation import check_idempotency_key, parse_order_request
from orders.observability import logger, metrics, traced

ROUTE = Route(method="POST", resource="/orders")


def submit(request: Request) -> dict[str, Any]:
    """202 with the order id; a replayed Idempotency-Key gets the first answer again."""
    order_request = parse_order_request(request.json_body())
    key = check_idempotency_key(request.header("Idempotency-Key"))
    result = submit_order(
        request=order_request,
        idempotency_key=key,
        caller=request.caller,
        repository=deps.order_repository(),
        queue=deps.order_queue(),
        new_order_id=deps.new_id,
        now=deps.now,
    )
    if result.created:
        metrics.add_metric(name="OrdersSubmitted", unit=MetricUnit.Count, value=1)
    if not result.sent:
        # The order is stored and marked unsent: the outbox sweeper sends it (0023).
        metrics.add_metric(name="OrderSendsDeferred", unit=MetricUnit.Count, value=1)
    logger.info(
        "Order submitted", order_id=result.order.order_id, replayed=not result.created, sent=result.sent
    )
    body = {"orderId": result.order.order_id, "status": OrderStatus.PENDING.value}
    return json_response(202, body, headers={"Idempotent-Replayed": str(not result.created).lower()})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point."""
    return serve(event, ROUTE, submit)
