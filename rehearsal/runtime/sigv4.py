"""Verify AWS Signature Version 4 on an incoming request, as API Gateway does for AWS_IAM routes.

The signature is recomputed with botocore's own `SigV4Auth` over exactly the headers the client
says it signed, at the time it says it signed, so any client that signs like the AWS SDKs passes
and a wrong secret, a changed body or a changed header fails.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_MAX_SKEW_SECONDS = 15 * 60
INVALID_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


class SignatureError(Exception):
    """The request is not correctly signed; the message is API Gateway's."""


@dataclass(frozen=True)
class Caller:
    access_key: str


def presented_access_key(headers: Mapping[str, str]) -> str | None:
    """The access key id a SigV4 Authorization header names, if it is one."""
    authorization = {name.lower(): value for name, value in headers.items()}.get("authorization", "")
    match = _AUTHORIZATION.match(authorization.strip())
    return match["key"] if match else None


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "execute-api",
    now: datetime | None = None,
) -> Caller:
    """Return the caller if `headers['Authorization']` is a valid SigV4 signature; else `SignatureError`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    authorization = lowered.get("authorization")
    if not authorization:
        raise SignatureError("Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization.strip())
    if match is None:
        raise SignatureError("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.")
    if match["key"] != access_key:
        raise SignatureError("The security token included in the request is invalid.")
    if match["region"] != region or match["service"] != service:
        raise SignatureError(f"Credential should be scoped to a valid region and to service '{service}'.")
    timestamp = lowered.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as error:
        raise SignatureError(
            "Authorization header requires existence of either a 'X-Amz-Date' header."
        ) from error
    if abs(((now or datetime.now(UTC)) - signed_at).total_seconds()) > _MAX_SKEW_SECONDS:
        raise SignatureError("Signature expired: the request was signed more than 15 minutes ago or ahead.")
    signed_names = match["signed"].split(";")
    missing = [name for name in signed_names if name not in lowered]
    if missing:
        raise SignatureError(INVALID_SIGNATURE)
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: lowered[name] for name in signed_names}
    )
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(Credentials(access_key, secret_key), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureError(INVALID_SIGNATURE)
    return Caller(access_key=access_key)
