"""`GET /orders/{orderId}` (GetOrderFunction): the order and its status, for polling."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.handlers.http import Request, Route, json_response, serve
from orders.logic.orders import get_order
from orders.models.validation import check_order_id
from orders.observability import logger, traced

ROUTE = Route(method="GET", resource="/orders/{orderId}")


def status(request: Request) -> dict[str, Any]:
    """200 with the order; 400 for a malformed id, 404 for an unknown one."""
    order_id = check_order_id(request.path_parameters.get("orderId", ""))
    order = get_order(order_id=order_id, repository=deps.order_repository())
    return json_response(200, order.to_response())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point."""
    return serve(event, ROUTE, status)
