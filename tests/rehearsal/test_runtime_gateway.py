"""The local API gateway: proxy events, SigV4, validation, and API Gateway's error answers."""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from rehearsal.alarms.metrics import MetricKey, dimensions
from rehearsal.base.errors import UserError
from rehearsal.runtime.environment import LocalEnvironment
from rehearsal.runtime.gateway import Credentials, Gateway
from rehearsal.runtime.sigv4 import SignatureError, verify_request


def test_a_signed_request_reaches_the_function_as_a_rest_proxy_event(
    fixture_env: LocalEnvironment, signed: Any
) -> None:
    response = signed("GET", f"{fixture_env.base_url}/items/42?verbose=yes&tag=a&tag=b")

    assert response.status_code == 200
    assert response.headers["x-amzn-RequestId"]
    event = response.json()["event"]
    assert event["resource"] == "/items/{itemId}"
    assert event["path"] == "/items/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"itemId": "42"}
    assert event["queryStringParameters"] == {"verbose": "yes", "tag": "b"}
    assert event["multiValueQueryStringParameters"]["tag"] == ["a", "b"]
    context = event["requestContext"]
    assert context["stage"] == "staging"
    assert context["path"] == "/staging/items/42"
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert context["identity"]["accessKey"] == "test"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert event["body"] is None and event["isBase64Encoded"] is False


def test_function_environment_resolves_refs_getatts_subs_and_conditions(
    fixture_env: LocalEnvironment, signed: Any
) -> None:
    env = signed("GET", f"{fixture_env.base_url}/items/1").json()["env"]
    outputs = fixture_env.outputs()
    assert env["QUEUE_URL"] == outputs["WorkQueueUrl"]
    assert env["QUEUE_ARN"].startswith("arn:aws:sqs:us-east-1:123456789012:")
    assert env["ITEMS_TABLE_NAME"] == outputs["ItemsTableName"]
    assert env["GREETING"] == "hello-staging-us-east-1"
    assert env["PROD_ONLY"] == "no"
    assert env["AWS_ENDPOINT_URL"] == fixture_env.cloud.endpoint_url
    assert outputs["ApiUrl"] == fixture_env.base_url


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/nowhere", 403, "Missing Authentication Token"),
        ("DELETE", "/items/1", 403, "Missing Authentication Token"),
        ("GET", "/items/1", 403, "Missing Authentication Token"),
    ],
)
def test_unknown_routes_wrong_methods_and_unsigned_calls_get_api_gateways_403(
    fixture_env: LocalEnvironment, method: str, path: str, status: int, message: str
) -> None:
    response = requests.request(method, f"{fixture_env.base_url}{path}", timeout=5)
    assert response.status_code == status
    assert response.json() == {"message": message}


def test_a_request_signed_with_the_wrong_secret_is_refused(
    fixture_env: LocalEnvironment, signed: Any
) -> None:
    response = signed("GET", f"{fixture_env.base_url}/items/1", secret="wrong")
    assert response.status_code == 403
    assert "signature we calculated does not match" in response.json()["message"]


def test_a_route_without_authorization_needs_no_signature(fixture_env: LocalEnvironment) -> None:
    response = requests.post(f"{fixture_env.base_url}/open", data=b"\xff\xfe", timeout=5)
    assert response.status_code == 200
    event = response.json()["event"]
    assert event["isBase64Encoded"] is True
    assert event["requestContext"]["identity"]["accessKey"] is None


@pytest.mark.parametrize(
    "body", ['{"count": 2}', '{"name": ""}', '{"name": "x", "extra": 1}', "not json", ""]
)
def test_a_body_that_breaks_the_model_is_rejected_before_the_function(
    fixture_env: LocalEnvironment, signed: Any, body: str
) -> None:
    response = signed("POST", f"{fixture_env.base_url}/items", body=body)
    assert response.status_code == 400
    assert response.json() == {"message": "Invalid request body"}


def test_a_body_that_fits_the_model_is_passed_through(fixture_env: LocalEnvironment, signed: Any) -> None:
    response = signed("POST", f"{fixture_env.base_url}/items", body='{"name": "x", "count": 2}')
    assert response.status_code == 200
    assert json.loads(response.json()["event"]["body"]) == {"name": "x", "count": 2}


def test_a_failing_function_is_a_502_and_a_timeout_a_504(fixture_env: LocalEnvironment, signed: Any) -> None:
    failing = signed("GET", f"{fixture_env.base_url}/boom")
    slow = signed("GET", f"{fixture_env.base_url}/slow?seconds=3")
    assert (failing.status_code, failing.json()) == (502, {"message": "Internal server error"})
    assert (slow.status_code, slow.json()) == (504, {"message": "Endpoint request timed out"})


def test_api_metrics_are_recorded_with_api_name_and_stage(fixture_env: LocalEnvironment, signed: Any) -> None:
    signed("GET", f"{fixture_env.base_url}/boom")
    api = fixture_env.stack.rest_apis[0]
    key = MetricKey("AWS/ApiGateway", "5XXError", dimensions({"ApiName": api.name, "Stage": "staging"}))
    assert 1 in fixture_env.metrics.values(key, 0, 2e10)
    latency = MetricKey("AWS/ApiGateway", "Latency", dimensions({"ApiName": api.name, "Stage": "staging"}))
    assert fixture_env.metrics.values(latency, 0, 2e10)


def test_gateway_overhead_per_warm_request_is_small(fixture_env: LocalEnvironment) -> None:
    session = requests.Session()
    url = f"{fixture_env.base_url}/open"
    session.get(url, timeout=5)
    totals = []
    for _ in range(50):
        started = time.perf_counter()
        session.get(url, timeout=5)
        totals.append((time.perf_counter() - started) * 1000)
    # Includes the client's own time; the 5 ms target is the gateway's share (see the report in docs).
    assert statistics.median(totals) < 20


def test_a_port_in_use_is_a_user_error(fixture_env: LocalEnvironment) -> None:
    gateway = Gateway(
        apis=[],
        invoke=fixture_env.functions.invoke,
        credentials=Credentials("test", "test", "us-east-1"),
        metrics=fixture_env.metrics,
        port=fixture_env.gateway.port,
    )
    with pytest.raises(UserError, match="in use"):
        gateway.start()


def _headers(**extra: str) -> dict[str, str]:
    return {"Host": "h", "X-Amz-Date": "20260101T000000Z", **extra}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (_headers(), "Missing Authentication Token"),
        (_headers(Authorization="Basic abc"), "requires 'Credential'"),
        (
            _headers(
                Authorization="AWS4-HMAC-SHA256 Credential=other/20260101/us-east-1/execute-api/aws4_request,"
                " "
                "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
            ),
            "security token included in the request is invalid",
        ),
        (
            _headers(
                Authorization="AWS4-HMAC-SHA256 Credential=test/20260101/eu-west-1/execute-api/aws4_request, "
                "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
            ),
            "scoped to a valid region",
        ),
        (
            _headers(
                Authorization="AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/execute-api/aws4_request, "
                "SignedHeaders=host;x-amz-date;x-missing, Signature=" + "0" * 64
            ),
            "does not match",
        ),
    ],
)
def test_malformed_signatures_are_refused_with_api_gateways_messages(
    headers: dict[str, str], message: str
) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_request(
            method="GET",
            url="http://h/x",
            headers=headers,
            body=b"",
            access_key="test",
            secret_key="test",
            region="us-east-1",
            now=datetime(2026, 1, 1, tzinfo=UTC),
        )


def test_an_old_signature_has_expired() -> None:
    headers = _headers(
        Authorization="AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/execute-api/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    with pytest.raises(SignatureError, match="expired"):
        verify_request(
            method="GET",
            url="http://h/x",
            headers=headers,
            body=b"",
            access_key="test",
            secret_key="test",
            region="us-east-1",
            now=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1),
        )
    with pytest.raises(SignatureError, match="X-Amz-Date"):
        verify_request(
            method="GET",
            url="http://h/x",
            headers={**headers, "X-Amz-Date": "yesterday"},
            body=b"",
            access_key="test",
            secret_key="test",
            region="us-east-1",
        )
