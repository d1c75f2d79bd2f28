"""The SQS message between the submit function and the worker.

Prices travel as decimal strings so that no float ever touches money. Decoding validates
against the same schema as the API, so a message that is not an order is poison.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from orders.models import schema
from orders.models.errors import PoisonMessageError
from orders.models.order import OrderItem, OrderRequest
from orders.models.validation import canonical_price, parse_json, price_errors, schema_errors


def encode_order_message(*, order_id: str, request: OrderRequest) -> str:
    """The message body the worker receives for a new order."""
    body = request.to_dict()
    body["items"] = [{**item, "unitPrice": str(item["unitPrice"])} for item in body["items"]]
    return json.dumps({"orderId": order_id, **body}, sort_keys=True)


def parse_message_body(body: str) -> dict[str, Any]:
    """The message as a dict with an order id; PoisonMessageError when it is not one."""
    try:
        data = parse_json(body)
    except ValueError:  # NaN, Infinity and too-deep nesting included: all poison
        raise PoisonMessageError("Message body is not JSON") from None
    if not isinstance(data, dict) or not re.fullmatch(schema.ORDER_ID_PATTERN, str(data.get("orderId"))):
        raise PoisonMessageError("Message has no valid orderId")
    return data


def decode_order_message(data: dict[str, Any]) -> tuple[str, OrderRequest]:
    """The order id and request carried by a parsed message, or PoisonMessageError."""
    order = {key: value for key, value in data.items() if key != "orderId"}
    try:
        order["items"] = [{**item, "unitPrice": Decimal(item["unitPrice"])} for item in order["items"]]
    except (KeyError, TypeError, InvalidOperation):
        raise PoisonMessageError("Message items are malformed") from None
    errors = schema_errors(order, schema.ORDER_REQUEST_SCHEMA, path="message")
    if not errors:
        errors = price_errors(order["items"], path="message")
    if errors:
        raise PoisonMessageError("Message is not a valid order", errors=errors)
    items = tuple(
        OrderItem(sku=item["sku"], quantity=item["quantity"], unit_price=canonical_price(item["unitPrice"]))
        for item in order["items"]
    )
    return data["orderId"], OrderRequest(
        customer_id=order["customerId"], items=items, currency=order["currency"]
    )
