"""Requests a client can send that once reached a 5xx: each is now a 4xx with a JSON error body.

The real adapters run on moto, so a price DynamoDB cannot store fails here as it does on AWS.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest

from orders.handlers import presign, submit
from tests.unit.conftest import FakeLambdaContext, api_event, order_body

FORTY_DIGITS = "1.000000000000000000000000000000000000001"


def _submit(body: str, *, headers: dict[str, str] | None = None, encoded: bool = False) -> dict[str, Any]:
    event = api_event(method="POST", path="/orders", resource="/orders", body=body, headers=headers)
    event["isBase64Encoded"] = encoded
    return dict(submit.handler(event, FakeLambdaContext()))


def _orders_written() -> int:
    return int(boto3.client("dynamodb").scan(TableName="orders", Select="COUNT")["Count"])


@pytest.mark.parametrize("price", ["1e-200", "1e-131", "0.0000001", FORTY_DIGITS])
def test_a_price_dynamodb_cannot_store_is_refused_with_400_and_nothing_written(aws: None, price: str) -> None:
    body = json.dumps(order_body()).replace("9.99", price)
    response = _submit(body, headers={"Content-Type": "application/json"})
    assert response["statusCode"] == 400, response
    assert json.loads(response["body"])["errors"] == [
        "body.items[0].unitPrice: must have at most 6 decimal places"
    ]
    assert _orders_written() == 0


def test_trailing_zeros_in_a_price_are_not_digits_dynamodb_must_store(aws: None) -> None:
    body = json.dumps(order_body()).replace("9.99", "9.99" + "0" * 40)
    response = _submit(body, headers={"Content-Type": "application/json"})
    assert response["statusCode"] == 202, response
    assert _orders_written() == 1


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_in_a_content_type_the_api_does_not_take_gets_415(aws: None, content_type: str) -> None:
    response = _submit(json.dumps(order_body()), headers={"Content-Type": content_type})
    assert response["statusCode"] == 415
    assert json.loads(response["body"])["errors"] == ["header.Content-Type: must be application/json"]
    assert _orders_written() == 0


def test_json_with_a_charset_is_still_json(aws: None) -> None:
    response = _submit(json.dumps(order_body()), headers={"Content-Type": "application/json; charset=utf-8"})
    assert response["statusCode"] == 202


def test_json_nested_deeper_than_the_parser_recursion_limit_gets_400(aws: None) -> None:
    deep = "[" * 8000 + "]" * 8000  # 16,000 bytes: under the 16 KiB limit
    response = _submit(deep, headers={"Content-Type": "application/json"})
    assert response["statusCode"] == 400
    # Python 3.11's parser refuses this depth; 3.13's (the functions' runtime, and the Build's since
    # builds select the buildspec's runtime-versions) parses it and validation refuses the list.
    refusals = {"Request body is not valid JSON", "Request body is invalid"}
    assert json.loads(response["body"])["message"] in refusals


@pytest.mark.parametrize("body", ["not base64 at all!", base64.b64encode(b"\xff\xfe{}").decode()])
def test_a_base64_body_that_is_not_utf8_json_gets_400(aws: None, body: str) -> None:
    response = _submit(body, headers={"Content-Type": "application/json"}, encoded=True)
    assert response["statusCode"] == 400


def test_a_base64_body_that_is_json_is_read(aws: None) -> None:
    body = base64.b64encode(json.dumps(order_body()).encode()).decode()
    response = _submit(body, headers={"Content-Type": "application/json"}, encoded=True)
    assert response["statusCode"] == 202


def test_an_error_body_stays_json_whatever_the_input_echoes(aws: None) -> None:
    hostile = order_body(customerId='"}\\\ud800</script>\u2028')
    response = _submit(json.dumps(hostile), headers={"Content-Type": "application/json"})
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["errors"]


def test_presign_takes_json_only(aws: None) -> None:
    event = api_event(
        method="POST",
        path="/orders/11111111-1111-4111-8111-111111111111/attachments",
        resource="/orders/{orderId}/attachments",
        body="fileName=a.pdf",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        path_parameters={"orderId": "11111111-1111-4111-8111-111111111111"},
    )
    assert presign.handler(event, FakeLambdaContext())["statusCode"] == 415
