"""Hostile requests through the local gateway: every one is answered 4xx with a JSON body, none 5xx,
and nothing is written (no order, no message).

Hypothesis generates the requests: prices DynamoDB cannot store, NaN and Infinity, JSON nested
deeper than the parser's recursion limit, bodies in content types without a model (which API
Gateway passes to the function unvalidated), bytes that are not UTF-8, malformed ids and
Idempotency-Keys, unknown fields, oversized bodies. Each strategy breaks a valid request in at
least one way, so a 2xx is a bug, not luck.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.conftest import Service

REQUESTS = 1_000
VALID_ID = "11111111-1111-4111-8111-111111111111"


def _order(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "customerId": "c-1",
        "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": "PRICE"}],
    }
    order.update(overrides)
    return order


def _with_price(price: str) -> str:
    # The price goes in as raw JSON text, so that exponents and digits reach the parser as written.
    return json.dumps(_order()).replace('"PRICE"', price)


_bad_prices = st.one_of(
    st.integers(min_value=7, max_value=400).map(lambda places: f"1e-{places}"),
    st.integers(min_value=7, max_value=60).map(lambda digits: "1." + "0" * (digits - 1) + "1"),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "0", "-1", "100001", "1e400", "-0.0"]),
    st.decimals(min_value=100_001, allow_nan=False, allow_infinity=False).map(str),
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_non_object_json = st.one_of(
    st.lists(_json_values, max_size=5), st.text(max_size=40), st.integers(), st.none()
).map(json.dumps)
_deep = st.integers(min_value=1_000, max_value=8_000).map(lambda depth: "[" * depth + "]" * depth)
_unknown_field = (
    st.text(min_size=1, max_size=12)
    .filter(lambda name: name not in {"customerId", "currency", "items"})
    .map(lambda name: json.dumps({**json.loads(_with_price("5")), name: 1}))
)
_bad_customer = (
    st.text(max_size=80)
    .filter(lambda text: not text.isascii() or not text.isalnum())
    .map(
        lambda text: json.dumps(
            _order(customerId=text + "\u00e9", items=[{"sku": "SKU-1", "quantity": 1, "unitPrice": 5}])
        )
    )
)
_order_bodies = st.one_of(
    _bad_prices.map(_with_price), _non_object_json, _deep, _unknown_field, _bad_customer
)
_not_utf8 = st.binary(min_size=1, max_size=200).map(lambda raw: b"\xff" + raw)
_oversized = st.integers(min_value=16_400, max_value=40_000).map(
    lambda size: json.dumps(
        _order(customerId="c" * size, items=[{"sku": "SKU-1", "quantity": 1, "unitPrice": 5}])
    )
)
_other_content_types = st.sampled_from(
    ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data", "text/json"]
)
_bad_keys = st.one_of(
    st.text(min_size=129, max_size=140, alphabet="ab"), st.sampled_from(["a b", "é", "k/1", "k?"])
)
_bad_ids = st.text(min_size=1, max_size=40, alphabet="0123456789abcdefxyz-%./ ").map(
    lambda text: text.replace("/", "%2F").replace(" ", "%20")
)


_JSON = {"Content-Type": "application/json"}
_VALID_ORDER = _with_price("5")
_VALID_ATTACHMENT = '{"fileName": "a.pdf", "contentType": "application/pdf"}'
Request = tuple[str, str, bytes, dict[str, str]]

# One strategy per way a request can be wrong: (method, path, body, headers).
hostile_requests: st.SearchStrategy[Request] = st.one_of(
    _order_bodies.map(lambda body: ("POST", "/orders", body.encode(), _JSON)),
    st.tuples(st.one_of(_order_bodies, st.just(_VALID_ORDER)), _other_content_types).map(
        lambda pair: ("POST", "/orders", pair[0].encode(), {"Content-Type": pair[1]})
    ),
    _not_utf8.map(lambda body: ("POST", "/orders", body, _JSON)),
    _bad_keys.map(lambda key: ("POST", "/orders", _VALID_ORDER.encode(), {**_JSON, "Idempotency-Key": key})),
    _oversized.map(lambda body: ("POST", "/orders", body.encode(), _JSON)),
    _bad_ids.map(lambda order_id: ("GET", f"/orders/{order_id}", b"", {})),
    st.tuples(
        st.one_of(_non_object_json, _deep, st.just(_VALID_ATTACHMENT)), st.one_of(_bad_ids, st.just(VALID_ID))
    ).map(lambda pair: ("POST", f"/orders/{pair[1]}/attachments", pair[0].encode(), _JSON)),
)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_a_thousand_hostile_requests_get_4xx_json_and_write_nothing(service: Service) -> None:
    answers: Counter[int] = Counter()
    not_json: list[str] = []

    @settings(
        max_examples=REQUESTS,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=hostile_requests)
    def send(request: Request) -> None:
        method, path, body, headers = request
        response = service.request(method, path, body=body, headers=headers)
        answers[response.status_code] += 1
        if not _is_json(response.text):
            not_json.append(response.text[:200])
        assert 400 <= response.status_code < 500, (method, path, body[:200], headers, response.text[:300])

    send()
    print(f"hostile requests: {sum(answers.values())}, answers: {dict(sorted(answers.items()))}")
    assert sum(answers.values()) >= REQUESTS
    assert not not_json
    assert service.order_count() == 0
    queue_url = service.environment.outputs()["OrdersQueueUrl"]
    attributes = service.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_a_body_in_a_content_type_without_a_model_reaches_the_function_which_answers_415(
    service: Service,
) -> None:
    """As on AWS: API Gateway validates only bodies whose content type has a model."""
    response = service.request("POST", "/orders", body="{not json", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["errors"] == ["header.Content-Type: must be application/json"]
