"""Exports uploaded to an S3 bucket (AWS, or MinIO and others through S3_ENDPOINT_URL).

Uploads go through boto3's transfer manager, which switches to a multipart upload past
`MULTIPART_THRESHOLD` and streams the file from disk part by part (bounded memory). Downloads are
presigned GET URLs that expire; the object carries the file's content type and name, so a browser
saves it under the right name.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)

from auditlog.export.storage import DownloadLink, StorageError, StoredFile

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

    from auditlog.config import Config

_log = logging.getLogger(__name__)
MULTIPART_THRESHOLD = 16 * 1024 * 1024
# S3 refuses parts below 5 MiB (but the last).
MIN_PART = 5 * 1024 * 1024
KEY_PREFIX = "exports"


def s3_client_for(config: Config) -> S3Client:
    """The S3 client of the configured endpoint, region and credentials (exports and anchors)."""
    return create_s3_client(
        endpoint_url=config.s3_endpoint_url,
        region=config.aws_default_region,
        access_key_id=config.aws_access_key_id,
        secret_access_key=config.aws_secret_access_key,
    )


def create_s3_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    max_attempts: int = 3,
) -> S3Client:
    session = boto3.session.Session(
        aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
    )
    config = BotoConfig(
        signature_version="s3v4",
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        # Other S3 implementations (MinIO, moto) expect bucket names in the path, not the host.
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)
    return client


# S3 error codes that mean the credentials may not use the bucket.
_DENIED = frozenset(
    {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
)


def _cause(err: BaseException) -> BaseException:
    """The ClientError or connection error behind err (boto3's S3UploadFailedError wraps one)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(
            seen, (ClientError, EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError)
        ):
            return seen
        seen = seen.__cause__ or seen.__context__
    return err


def _in_user_terms(err: BaseException, bucket: str, doing: str) -> str:
    """What failed, for the job's `error`: no endpoint, path, key or exception text."""
    cause = _cause(err)
    if isinstance(cause, (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError)):
        return f"{doing} failed: S3 is unreachable; the server log has the details"
    if isinstance(cause, ClientError):
        error: Any = cause.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("NoSuchBucket", "404"):
            return f"{doing} failed: the S3 bucket {bucket!r} does not exist"
        if code in _DENIED:
            return f"{doing} failed: access to the S3 bucket {bucket!r} was denied"
        if code:
            return f"{doing} failed: S3 answered {code}; the server log has the details"
    if isinstance(cause, NoCredentialsError):
        return f"{doing} failed: the server has no S3 credentials"
    return f"{doing} failed; the server log has the details"


class S3Storage:
    name = "s3"

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        url_expiry: timedelta,
        clock: Callable[[], datetime],
        multipart_threshold: int = MULTIPART_THRESHOLD,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self._expiry = url_expiry
        self._clock = clock
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(multipart_threshold, MIN_PART),
            max_concurrency=4,
        )

    def store(self, source: Path, *, job_id: str, file_name: str, content_type: str) -> StoredFile:
        key = f"{KEY_PREFIX}/{job_id}/{file_name}"
        try:
            self._client.upload_file(
                str(source),
                self.bucket,
                key,
                ExtraArgs={
                    "ContentType": content_type,
                    "ContentDisposition": f'attachment; filename="{file_name}"',
                },
                Config=self._transfer,
            )
        except (BotoCoreError, ClientError, S3UploadFailedError, OSError) as err:
            _log.warning("export job=%s upload of s3://%s/%s failed: %s", job_id, self.bucket, key, err)
            raise StorageError(_in_user_terms(err, self.bucket, "the upload to S3")) from err
        return StoredFile(self.name, f"s3://{self.bucket}/{key}")

    def download_link(self, location: str, *, job_id: str, file_name: str) -> DownloadLink:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        expires_at = self._clock() + self._expiry
        try:
            url = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": key},
                ExpiresIn=int(self._expiry.total_seconds()),
            )
        except (BotoCoreError, ClientError) as err:
            _log.warning("export job=%s presigning s3://%s/%s failed: %s", job_id, bucket, key, err)
            raise StorageError(_in_user_terms(err, bucket, "making the S3 download URL")) from err
        return DownloadLink(url, expires_at)
