"""Request validation with the standard library: a small interpreter of `models/schema.py`.

Interpreting the same dicts the API Gateway models mirror keeps the gateway and the code
from drifting apart, without pydantic's import cost or a third-party package in the zip.
Only the draft-04 keywords the schemas use are supported.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from orders.models import schema
from orders.models.errors import InvalidRequestError, PayloadTooLargeError
from orders.models.order import AttachmentRequest, OrderItem, OrderRequest

_PRICE_QUANTUM = Decimal(1).scaleb(-schema.PRICE_DECIMAL_PLACES)

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, Decimal),
}


def schema_errors(value: Any, rules: dict[str, Any], *, path: str = "body") -> list[str]:
    """Every way `value` breaks `rules`, as `path: problem` lines for people."""
    expected = rules.get("type")
    if expected and (isinstance(value, bool) or not isinstance(value, _TYPES[expected])):
        return [f"{path}: must be of type {expected}"]
    if isinstance(value, dict):
        return _object_errors(value, rules, path=path)
    if isinstance(value, list):
        errors = _size_errors(len(value), rules, path=path, noun="items")
        for index, item in enumerate(value):
            errors += schema_errors(item, rules.get("items", {}), path=f"{path}[{index}]")
        return errors
    if isinstance(value, str):
        return _string_errors(value, rules, path=path)
    return _number_errors(value, rules, path=path)


def _object_errors(value: dict[str, Any], rules: dict[str, Any], *, path: str) -> list[str]:
    properties: dict[str, Any] = rules.get("properties", {})
    errors = [f"{path}.{name}: is required" for name in rules.get("required", []) if name not in value]
    if rules.get("additionalProperties") is False:
        errors += [f"{path}.{name}: is not allowed" for name in value if name not in properties]
    for name, item in value.items():
        if name in properties:
            errors += schema_errors(item, properties[name], path=f"{path}.{name}")
    return errors


def _size_errors(size: int, rules: dict[str, Any], *, path: str, noun: str) -> list[str]:
    if size < rules.get("minItems", 0):
        return [f"{path}: must have at least {rules['minItems']} {noun}"]
    if "maxItems" in rules and size > rules["maxItems"]:
        return [f"{path}: must have at most {rules['maxItems']} {noun}"]
    return []


def _string_errors(value: str, rules: dict[str, Any], *, path: str) -> list[str]:
    if "enum" in rules and value not in rules["enum"]:
        return [f"{path}: must be one of {', '.join(rules['enum'])}"]
    if "pattern" in rules and not re.fullmatch(rules["pattern"], value):
        return [f"{path}: must match {rules['pattern']}"]
    return []


def _number_errors(value: int | Decimal, rules: dict[str, Any], *, path: str) -> list[str]:
    if isinstance(value, Decimal) and not value.is_finite():
        return [f"{path}: must be a finite number"]
    if "minimum" in rules:
        if rules.get("exclusiveMinimum") and value <= rules["minimum"]:
            return [f"{path}: must be greater than {rules['minimum']}"]
        if value < rules["minimum"]:
            return [f"{path}: must be at least {rules['minimum']}"]
    if "maximum" in rules and value > rules["maximum"]:
        return [f"{path}: must be at most {rules['maximum']}"]
    return []


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_json(raw: str) -> Any:
    """JSON with Decimal numbers; ValueError otherwise (NaN, Infinity and too-deep nesting included)."""
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:
        # A body under the size limit can nest deeper than the parser's recursion limit.
        raise ValueError("nested too deeply") from None


def load_json_body(body: str | None) -> Any:
    """Parse a request body: 413 when oversized, 400 when it is not JSON. Numbers become Decimal."""
    raw = body or ""
    if len(raw.encode()) > schema.MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            "Request body is too large", errors=[f"body: must be at most {schema.MAX_BODY_BYTES} bytes"]
        )
    try:
        return parse_json(raw)
    except ValueError as error:  # JSONDecodeError is a ValueError
        # The decoder's message names a position, never the input: the error body stays small.
        raise InvalidRequestError("Request body is not valid JSON", errors=[f"body: {error}"]) from None


def price_errors(items: list[dict[str, Any]], *, path: str = "body") -> list[str]:
    """Prices with more decimal places than the service stores (see schema.PRICE_DECIMAL_PLACES)."""
    errors = []
    for index, item in enumerate(items):
        price = Decimal(item["unitPrice"])
        # Exact comparison: 1e-200 or a 40-digit price differs from itself rounded to the places kept.
        if price != price.quantize(_PRICE_QUANTUM):
            errors.append(
                f"{path}.items[{index}].unitPrice: must have at most "
                f"{schema.PRICE_DECIMAL_PLACES} decimal places"
            )
    return errors


def canonical_price(value: int | Decimal) -> Decimal:
    """The price without trailing zeros: 9.990 and 9.99 are one price, stored and hashed alike."""
    return Decimal(value).normalize()


def _check(value: Any, rules: dict[str, Any]) -> None:
    errors = schema_errors(value, rules)
    if not errors and rules is schema.ORDER_REQUEST_SCHEMA:
        errors = price_errors(value["items"])
    if errors:
        raise InvalidRequestError("Request body is invalid", errors=errors)


def parse_order_request(body: str | None) -> OrderRequest:
    """A valid `POST /orders` body, or InvalidRequestError / PayloadTooLargeError."""
    data = load_json_body(body)
    _check(data, schema.ORDER_REQUEST_SCHEMA)
    items = tuple(
        OrderItem(sku=item["sku"], quantity=item["quantity"], unit_price=canonical_price(item["unitPrice"]))
        for item in data["items"]
    )
    return OrderRequest(customer_id=data["customerId"], items=items, currency=data["currency"])


def parse_attachment_request(body: str | None) -> AttachmentRequest:
    """A valid attachment body whose file-name extension matches its content type."""
    data = load_json_body(body)
    _check(data, schema.ATTACHMENT_REQUEST_SCHEMA)
    file_name, content_type = data["fileName"], data["contentType"]
    extensions = schema.ATTACHMENT_CONTENT_TYPES[content_type]
    if not file_name.lower().endswith(extensions):
        raise InvalidRequestError(
            "Request body is invalid",
            errors=[f"body.fileName: must end with {' or '.join(extensions)} for {content_type}"],
        )
    return AttachmentRequest(file_name=file_name, content_type=content_type)


def check_order_id(order_id: str) -> str:
    """The id when it is a well-formed order id, else InvalidRequestError (400, not 404)."""
    if not re.fullmatch(schema.ORDER_ID_PATTERN, order_id):
        raise InvalidRequestError("Order id is malformed", errors=["path.orderId: must be a UUID v4"])
    return order_id


def check_idempotency_key(key: str | None) -> str | None:
    """The Idempotency-Key header value when present and well formed."""
    if key is not None and not re.fullmatch(schema.IDEMPOTENCY_KEY_PATTERN, key):
        raise InvalidRequestError(
            "Idempotency-Key header is malformed",
            errors=[f"header.Idempotency-Key: must match {schema.IDEMPOTENCY_KEY_PATTERN}"],
        )
    return key
