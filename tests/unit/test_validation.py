"""Request validation: generated valid orders pass; every schema-breaking mutation is a 400."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.models import schema
from orders.models.errors import InvalidRequestError, PayloadTooLargeError
from orders.models.validation import (
    check_idempotency_key,
    check_order_id,
    parse_attachment_request,
    parse_order_request,
)

_ALNUM = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_SKU_TAIL = st.text(alphabet="ABCxyz019_-", max_size=20)

items = st.fixed_dictionaries(
    {
        "sku": st.builds(lambda head, tail: head + tail, _ALNUM, _SKU_TAIL),
        "quantity": st.integers(min_value=1, max_value=schema.MAX_QUANTITY),
        "unitPrice": st.decimals(min_value=Decimal("0.01"), max_value=schema.MAX_UNIT_PRICE, places=2).map(
            str
        ),
    }
)
valid_orders = st.fixed_dictionaries(
    {
        "customerId": st.text(alphabet="abcXYZ0189_-", min_size=1, max_size=64),
        "items": st.lists(items, min_size=1, max_size=schema.MAX_ITEMS),
        "currency": st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
    }
)


def _to_json(order: dict[str, Any]) -> str:
    """JSON with prices as numbers (the strategy keeps them as strings to stay exact)."""
    text = json.dumps(order)
    for item in order["items"]:
        text = text.replace(f'"unitPrice": "{item["unitPrice"]}"', f'"unitPrice": {item["unitPrice"]}', 1)
    return text


def _mutations(order: dict[str, Any]) -> list[dict[str, Any]]:
    """Ways to break the schema, each one alone."""
    first = order["items"][0]
    return [
        {k: v for k, v in order.items() if k != "customerId"},
        {**order, "extra": True},
        {**order, "currency": "eur"},
        {**order, "items": []},
        {**order, "items": [first] * (schema.MAX_ITEMS + 1)},
        {**order, "items": [{**first, "quantity": 0}]},
        {**order, "items": [{**first, "quantity": -1}]},
        {**order, "items": [{**first, "quantity": "1"}]},
        {**order, "items": [{**first, "quantity": True}]},
        {**order, "items": [{**first, "unitPrice": "0"}]},
        {**order, "items": [{**first, "sku": ""}]},
        {**order, "items": [{**first, "colour": "red"}]},
        {**order, "customerId": 42},
        {**order, "items": "SKU-1"},
    ]


@given(valid_orders)
def test_generated_valid_orders_are_accepted(order: dict[str, Any]) -> None:
    request = parse_order_request(_to_json(order))
    assert request.customer_id == order["customerId"]
    assert [item.unit_price for item in request.items] == [Decimal(i["unitPrice"]) for i in order["items"]]


@given(valid_orders, st.data())
def test_any_schema_breaking_mutation_is_refused_with_errors(
    order: dict[str, Any], data: st.DataObject
) -> None:
    mutated = data.draw(st.sampled_from(_mutations(order)))
    with pytest.raises(InvalidRequestError) as refused:
        parse_order_request(
            _to_json(mutated) if isinstance(mutated.get("items"), list) else json.dumps(mutated)
        )
    assert refused.value.errors


@pytest.mark.parametrize("body", ["{", "", "null x", '{"customerId": NaN}', None])
def test_malformed_json_is_refused(body: str | None) -> None:
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        parse_order_request(body)


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        parse_order_request("[]")
    assert refused.value.errors == ["body: must be of type object"]


def test_an_oversized_body_is_refused_as_too_large() -> None:
    with pytest.raises(PayloadTooLargeError):
        parse_order_request(" " * (schema.MAX_BODY_BYTES + 1))


def test_a_fractional_quantity_is_refused() -> None:
    body = '{"customerId": "c", "currency": "EUR", "items": [{"sku": "S", "quantity": 1.5, "unitPrice": 1}]}'
    with pytest.raises(InvalidRequestError) as refused:
        parse_order_request(body)
    assert refused.value.errors == ["body.items[0].quantity: must be of type integer"]


def test_a_price_over_the_maximum_is_refused() -> None:
    body = json.dumps(
        {"customerId": "c", "currency": "EUR", "items": [{"sku": "S", "quantity": 1, "unitPrice": 1e9}]}
    )
    with pytest.raises(InvalidRequestError, match="invalid"):
        parse_order_request(body)


def test_an_attachment_with_an_allowed_type_and_matching_name_is_accepted() -> None:
    request = parse_attachment_request('{"fileName": "scan.JPEG", "contentType": "image/jpeg"}')
    assert (request.file_name, request.content_type) == ("scan.JPEG", "image/jpeg")


@pytest.mark.parametrize(
    "body",
    [
        {"fileName": "../etc/passwd.pdf", "contentType": "application/pdf"},
        {"fileName": "invoice.pdf", "contentType": "text/html"},
        {"fileName": "invoice.png", "contentType": "application/pdf"},
        {"fileName": "invoice.pdf"},
    ],
)
def test_an_unsafe_or_mismatched_attachment_is_refused(body: dict[str, str]) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        parse_attachment_request(json.dumps(body))
    assert refused.value.errors


def test_a_malformed_order_id_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="malformed"):
        check_order_id("not-a-uuid")


def test_a_malformed_idempotency_key_is_refused_and_a_missing_one_is_fine() -> None:
    assert check_idempotency_key(None) is None
    with pytest.raises(InvalidRequestError, match="Idempotency-Key"):
        check_idempotency_key("has spaces")


def test_too_many_items_are_refused() -> None:
    item = {"sku": "SKU-1", "quantity": 1, "unitPrice": 1}
    body = json.dumps({"customerId": "c", "currency": "EUR", "items": [item] * (schema.MAX_ITEMS + 1)})
    with pytest.raises(InvalidRequestError) as refused:
        parse_order_request(body)
    assert refused.value.errors == [f"body.items: must have at most {schema.MAX_ITEMS} items"]


@pytest.mark.parametrize(("quantity", "error"), [(0, "must be at least 1"), (1001, "must be at most 1000")])
def test_a_quantity_outside_its_range_is_refused(quantity: int, error: str) -> None:
    item = {"sku": "SKU-1", "quantity": quantity, "unitPrice": 1}
    with pytest.raises(InvalidRequestError) as refused:
        parse_order_request(json.dumps({"customerId": "c", "currency": "EUR", "items": [item]}))
    assert refused.value.errors == [f"body.items[0].quantity: {error}"]
