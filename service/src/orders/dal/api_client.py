"""The service's API over HTTPS with SigV4 (execute-api), and presigned S3 POST uploads.

Used by the staging traffic function. Signing uses the function's own role credentials, as any
IAM client would; the standard library sends the requests.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from orders.dal import clients
from orders.logic.ports import ApiAnswer

Send = Callable[[urllib.request.Request], tuple[int, bytes]]


# Plain http only to this machine: the offline rehearsal's gateway and local cloud listen on loopback
# (ADR 0040). Nothing listens there inside Lambda, so on AWS every call is https.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _send(request: urllib.request.Request) -> tuple[int, bytes]:
    url = urllib.parse.urlsplit(request.full_url)
    if url.scheme != "https" and not (url.scheme == "http" and url.hostname in _LOOPBACK_HOSTS):
        raise ValueError(f"refusing to send to {request.full_url!r}: only https URLs are called")
    try:
        # The scheme is checked above: https (or http to loopback), never file:// or custom schemes.
        with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


class SignedApiClient:
    """ApiClient on API Gateway: SigV4-signed JSON requests to `base_url` (the stage URL)."""

    def __init__(self, *, base_url: str, region: str, send: Send = _send) -> None:
        self._base_url = base_url.rstrip("/")
        self._region = region
        self._send = send

    def call(self, *, method: str, path: str, body: dict[str, Any] | None = None) -> ApiAnswer:
        """Sign with the process's credentials and send; the JSON answer."""
        from botocore.auth import SigV4Auth  # noqa: PLC0415 - botocore is loaded with boto3 only
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415

        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        signed = AWSRequest(method=method, url=f"{self._base_url}{path}", data=data, headers=headers)
        SigV4Auth(clients.credentials(), "execute-api", self._region).add_auth(signed)
        request = urllib.request.Request(  # the stage URL from the template
            str(signed.url), data=data, headers=dict(signed.headers.items()), method=method
        )
        status, raw = self._send(request)
        try:
            answer: Any = json.loads(raw or b"null")
        except ValueError:
            answer = None
        return ApiAnswer(status=status, body=answer)


class MultipartFormPoster:
    """FormPoster with the standard library: `multipart/form-data`, the file part last (S3 wants it so)."""

    def __init__(self, *, send: Send = _send) -> None:
        self._send = send

    def post(self, *, url: str, fields: dict[str, str], file_name: str, content: bytes) -> int:
        """POST the form; S3 answers 204 to a successful presigned upload."""
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        ]
        disposition = f'form-data; name="file"; filename="{file_name}"'
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content)
        parts.append(f"\r\n--{boundary}--\r\n".encode())
        request = urllib.request.Request(  # the presigned URL S3 returned
            url, data=b"".join(parts), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        return self._send(request)[0]
