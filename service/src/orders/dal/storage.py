"""The attachments bucket on S3: presigned POST uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orders.dal import clients

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3AttachmentStorage:
    """AttachmentStorage on S3.

    The signed policy pins the exact key, the Content-Type and a content-length-range, so
    S3 refuses any other upload with this form (moto does not enforce policies; AWS does).
    """

    def __init__(self, *, bucket: str, client: S3Client | None = None) -> None:
        self._bucket = bucket
        self._client = client

    def presign_upload(
        self, *, key: str, content_type: str, max_bytes: int, expires_in: int
    ) -> dict[str, Any]:
        """A presigned POST for one upload of at most `max_bytes` of `content_type` to `key`."""
        client = self._client or clients.s3()
        post = client.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )
        return {"url": post["url"], "fields": dict(post["fields"])}
