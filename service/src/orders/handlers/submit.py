"""`POST /orders` (SubmitOrderFunction): validate, store PENDING, enqueue, answer 202."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.handlers.http import build_resolver, json_response, request_body
from orders.logic.submit import submit_order
from orders.models.order import OrderStatus
from orders.models.validation import check_idempotency_key, parse_order_request
from orders.observability import logger, metrics, traced

app = build_resolver()


def caller_identity(event: dict[str, Any]) -> str:
    """The IAM principal API Gateway authenticated (`requestContext.identity.userArn`), or ""."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    return str(identity.get("userArn") or identity.get("caller") or "")


@app.post("/orders")
def submit() -> Any:
    """202 with the order id; a replayed Idempotency-Key gets the first answer again."""
    request = parse_order_request(request_body(app.current_event))
    key = check_idempotency_key(app.current_event.headers.get("Idempotency-Key"))
    result = submit_order(
        request=request,
        idempotency_key=key,
        caller=caller_identity(app.current_event.raw_event),
        repository=deps.order_repository(),
        queue=deps.order_queue(),
        new_order_id=deps.new_id,
        now=deps.now,
    )
    if result.created:
        metrics.add_metric(name="OrdersSubmitted", unit=MetricUnit.Count, value=1)
    logger.info("Order submitted", order_id=result.order.order_id, replayed=not result.created)
    body = {"orderId": result.order.order_id, "status": OrderStatus.PENDING.value}
    return json_response(202, body, headers={"Idempotent-Replayed": str(not result.created).lower()})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point."""
    return app.resolve(event, context)
