"""`POST /orders/{orderId}/attachments` (PresignAttachmentFunction): a presigned S3 POST."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from orders.handlers import deps
from orders.handlers.http import Request, Route, json_response, serve
from orders.logic.attachments import presign_attachment
from orders.models.validation import check_order_id, parse_attachment_request
from orders.observability import logger, traced

ROUTE = Route(method="POST", resource="/orders/{orderId}/attachments")


def presign(request: Request) -> dict[str, Any]:
    """201 with `url`, `fields`, `key` and `expiresIn`; 404 for an unknown order."""
    order_id = check_order_id(request.path_parameters.get("orderId", ""))
    attachment = parse_attachment_request(request.json_body())
    body = presign_attachment(
        order_id=order_id,
        request=attachment,
        repository=deps.order_repository(),
        storage=deps.attachment_storage(),
        new_attachment_id=deps.new_id,
    )
    return json_response(201, body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point."""
    return serve(event, ROUTE, presign)
