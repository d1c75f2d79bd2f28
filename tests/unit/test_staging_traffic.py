"""The staging traffic source: every released function gets real calls; answers are checked;
requests are SigV4-signed with the function's credentials; uploads are multipart forms."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from orders.dal.api_client import MultipartFormPoster, SignedApiClient
from orders.handlers import deps, traffic
from orders.logic.ports import ApiAnswer
from orders.logic.traffic import run_traffic

ORDER_ID = "11111111-1111-4111-8111-111111111111"


class FakeApi:
    """The API as the contract says it answers; `broken` paths answer 500."""

    def __init__(self, broken: str = "") -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.broken = broken

    def call(self, *, method: str, path: str, body: dict[str, Any] | None = None) -> ApiAnswer:
        self.calls.append((method, path, body))
        if self.broken and path.endswith(self.broken):
            return ApiAnswer(status=500, body={"message": "Internal server error"})
        if path == "/orders":
            return ApiAnswer(status=202, body={"orderId": ORDER_ID, "status": "PENDING"})
        if path.endswith("/attachments"):
            return ApiAnswer(
                status=201, body={"url": "https://bucket.s3.eu-west-1.amazonaws.com/", "fields": {}}
            )
        return ApiAnswer(status=200, body={"orderId": ORDER_ID})


class FakeForms:
    def __init__(self) -> None:
        self.uploads: list[str] = []

    def post(self, *, url: str, fields: dict[str, str], file_name: str, content: bytes) -> int:
        self.uploads.append(url)
        return 204


def test_each_round_calls_submit_status_presign_and_uploads() -> None:
    api, forms = FakeApi(), FakeForms()
    report = run_traffic(api=api, forms=forms, rounds=4, pause=lambda: None)
    assert [(method, path.replace(ORDER_ID, "{id}")) for method, path, _ in api.calls[:3]] == [
        ("POST", "/orders"),
        ("GET", "/orders/{id}"),
        ("POST", "/orders/{id}/attachments"),
    ]
    assert (report.calls, report.unexpected, len(forms.uploads)) == (16, [], 4)
    skus = {body["items"][0]["sku"] for method, path, body in api.calls if path == "/orders"}
    assert skus == {"SKU-1", "SYNTHETIC"}  # the worker accepts some and rejects others


def test_an_answer_against_the_contract_is_reported() -> None:
    report = run_traffic(api=FakeApi(broken="/attachments"), forms=FakeForms(), rounds=2, pause=lambda: None)
    assert report.unexpected == ["POST /orders/{orderId}/attachments: expected 201, got 500"] * 2


def test_the_handler_raises_when_the_service_broke_its_contract(
    monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    monkeypatch.setattr(deps, "api_client", lambda: FakeApi(broken="/orders"))
    monkeypatch.setattr(deps, "form_poster", FakeForms)
    monkeypatch.setattr(traffic, "_pause", lambda: None)
    with pytest.raises(traffic.UnexpectedAnswersError, match="expected 202, got 500"):
        traffic.handler({}, lambda_context)


def test_api_calls_are_sigv4_signed_for_execute_api() -> None:
    sent: list[urllib.request.Request] = []

    def send(request: urllib.request.Request) -> tuple[int, bytes]:
        sent.append(request)
        return 202, b'{"orderId": "x"}'

    client = SignedApiClient(
        base_url="https://abc.execute-api.eu-west-1.amazonaws.com/v1/", region="eu-west-1", send=send
    )
    answer = client.call(method="POST", path="/orders", body={"a": 1})
    assert (answer.status, answer.body) == (202, {"orderId": "x"})
    (request,) = sent
    assert request.full_url == "https://abc.execute-api.eu-west-1.amazonaws.com/v1/orders"
    authorization = request.get_header("Authorization")
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert request.get_header("X-amz-security-token") == "testing"


def test_uploads_are_multipart_forms_with_the_file_last() -> None:
    sent: list[urllib.request.Request] = []

    def send(request: urllib.request.Request) -> tuple[int, bytes]:
        sent.append(request)
        return 204, b""

    status = MultipartFormPoster(send=send).post(
        url="https://bucket.s3.eu-west-1.amazonaws.com/",
        fields={"key": "k", "policy": "p"},
        file_name="a.pdf",
        content=b"%PDF",
    )
    (request,) = sent
    body = request.data
    assert status == 204 and isinstance(body, bytes)
    assert body.index(b'name="key"') < body.index(b'name="policy"') < body.index(b'name="file"')
    assert request.get_header("Content-type").startswith("multipart/form-data; boundary=")


def test_only_https_urls_are_ever_opened() -> None:
    from orders.dal.api_client import _send  # noqa: PLC0415 - the default sender itself

    with pytest.raises(ValueError, match="only https"):
        _send(urllib.request.Request("file:///etc/passwd"))


def test_plain_http_is_refused_anywhere_but_this_machine() -> None:
    from orders.dal.api_client import _send  # noqa: PLC0415 - the default sender itself

    with pytest.raises(ValueError, match="only https"):
        _send(urllib.request.Request("http://abc.execute-api.eu-west-1.amazonaws.com/v1/orders"))


def test_plain_http_to_loopback_is_sent_as_the_offline_rehearsal_serves_it() -> None:
    from orders.dal.api_client import _send  # noqa: PLC0415 - the default sender itself

    # Nothing listens on this port: the request is attempted (refused by the OS), not refused by the check.
    with pytest.raises(OSError):
        _send(urllib.request.Request("http://127.0.0.1:9/orders"))


@pytest.mark.parametrize(("minute", "pause"), [(None, 2.0), ("60", 2.0), ("0.5", 2.0 / 120)])
def test_rounds_are_paced_in_pipeline_time(
    monkeypatch: pytest.MonkeyPatch, minute: str | None, pause: float
) -> None:
    if minute is None:
        monkeypatch.delenv("PIPELINE_MINUTE_SECONDS", raising=False)
    else:
        monkeypatch.setenv("PIPELINE_MINUTE_SECONDS", minute)
    traffic.pause_seconds.cache_clear()
    try:
        assert traffic.pause_seconds() == pytest.approx(pause)
    finally:
        traffic.pause_seconds.cache_clear()


@pytest.mark.parametrize("minute", ["0", "-1", "soon", "nan"])
def test_a_pipeline_minute_that_is_not_a_positive_number_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, minute: str
) -> None:
    from orders.models.errors import ConfigurationError  # noqa: PLC0415

    monkeypatch.setenv("PIPELINE_MINUTE_SECONDS", minute)
    traffic.pause_seconds.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="PIPELINE_MINUTE_SECONDS"):
            traffic.pause_seconds()
    finally:
        traffic.pause_seconds.cache_clear()
