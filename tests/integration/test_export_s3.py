"""Exports to S3: moto's server over real HTTP, presigned URLs fetched with a plain HTTP client,
multipart uploads, and the failure paths (unreachable endpoint, missing bucket)."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audit.v1 import export_service_pb2
from auditlog.export.s3_storage import S3Storage, create_s3_client
from auditlog.export.storage import StorageError
from tests.fix_export import (
    ServiceFactory,
    append_events,
    create_export,
    export_stub,
    sample_inputs,
    wait_for_job,
)
from tests.fix_s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Endpoint, free_port


def storage_for(endpoint_url: str, bucket: str, **kwargs: int) -> S3Storage:
    client = create_s3_client(
        endpoint_url=endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        max_attempts=1,
        connect_timeout=2,
    )
    return S3Storage(
        client, bucket, url_expiry=timedelta(minutes=5), clock=lambda: datetime.now(UTC), **kwargs
    )


def test_s3_export_downloads_from_the_presigned_url(
    start_service: ServiceFactory, s3_endpoint: S3Endpoint, s3_bucket: str
) -> None:
    svc = start_service(s3_bucket=s3_bucket, s3_endpoint_url=s3_endpoint.url)
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        append_events(channel, sample_inputs(15))
        job = wait_for_job(channel, create_export(channel, "json", job_name="Quarterly").id)
        assert job.status == "completed", job.error
        before = datetime.now(UTC)
        link = export_stub(channel).GetExportDownload(export_service_pb2.GetExportDownloadRequest(id=job.id))
    assert link.download_url.startswith(f"{s3_endpoint.url}/{s3_bucket}/exports/{job.id}/quarterly.json?")
    assert "X-Amz-Signature=" in link.download_url and "X-Amz-Expires=3600" in link.download_url
    expires = link.expires_at.ToDatetime(tzinfo=UTC)
    assert before + timedelta(minutes=59) < expires <= datetime.now(UTC) + timedelta(hours=1)
    with urllib.request.urlopen(link.download_url, timeout=10) as response:
        body = response.read()
        headers = response.headers
    assert hashlib.sha256(body).hexdigest() == job.file_sha256 == link.file_sha256
    assert len(body) == job.file_size
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Disposition"] == 'attachment; filename="quarterly.json"'
    assert len(json.loads(body)["events"]) == 15


def test_s3_job_is_not_served_through_the_content_path(
    start_service: ServiceFactory, s3_endpoint: S3Endpoint, s3_bucket: str
) -> None:
    svc = start_service(s3_bucket=s3_bucket, s3_endpoint_url=s3_endpoint.url)
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        job = wait_for_job(channel, create_export(channel, "csv").id)
        # The content path serves local files only.
        with pytest.raises(grpc.RpcError) as info:
            list(
                export_stub(channel).DownloadExportContent(
                    export_service_pb2.DownloadExportContentRequest(id=job.id)
                )
            )
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_large_files_go_up_in_parts(s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    source.write_bytes(os.urandom(11 * 1024 * 1024))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    storage = storage_for(s3_endpoint.url, s3_bucket, multipart_threshold=5 * 1024 * 1024)
    stored = storage.store(source, job_id="j1", file_name="big.csv", content_type="text/csv; charset=utf-8")
    assert stored.location == f"s3://{s3_bucket}/exports/j1/big.csv"
    head = s3_endpoint.client.head_object(Bucket=s3_bucket, Key="exports/j1/big.csv")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    link = storage.download_link(stored.location, job_id="j1", file_name="big.csv")
    with urllib.request.urlopen(link.url, timeout=30) as response:
        assert hashlib.sha256(response.read()).hexdigest() == digest


def test_missing_bucket_is_a_clear_storage_error(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    source.write_text("a\r\n")
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(StorageError) as info:
        storage_for(s3_endpoint.url, bucket).store(
            source, job_id="j", file_name="x.csv", content_type="text/csv"
        )
    assert str(info.value) == f"the upload to S3 failed: the S3 bucket '{bucket}' does not exist"


def assert_no_internals(error: str, endpoint: str, tmp_path: Path) -> None:
    """A job's error names what failed, not where the server keeps things."""
    host_port = endpoint.removeprefix("http://")
    for internal in (
        endpoint,
        host_port,
        host_port.partition(":")[2],
        "127.0.0.1",
        str(tmp_path),
        ".spool",
        ".part",
    ):
        assert internal not in error, error


def test_missing_bucket_fails_the_job_in_user_terms(
    s3_endpoint: S3Endpoint, start_service: ServiceFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    svc = start_service(s3_bucket=bucket, s3_endpoint_url=s3_endpoint.url)
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        append_events(channel, sample_inputs(2))
        job = wait_for_job(channel, create_export(channel, "csv").id)
    assert job.status == "failed"
    assert job.error == f"the upload to S3 failed: the S3 bucket '{bucket}' does not exist"
    assert_no_internals(job.error, s3_endpoint.url, tmp_path)
    # The operator still learns the details, under the job's id.
    logged = [r.getMessage() for r in caplog.records if f"job={job.id}" in r.getMessage()]
    assert any("NoSuchBucket" in line for line in logged), logged


def test_unreachable_s3_fails_the_job_and_the_service_stays_healthy(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    svc = start_service(s3_bucket="exports", s3_endpoint_url=dead)
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        append_events(channel, sample_inputs(3))
        job = wait_for_job(channel, create_export(channel, "csv").id)
        assert job.status == "failed"
        assert job.error == "the upload to S3 failed: S3 is unreachable; the server log has the details"
        assert_no_internals(job.error, dead, tmp_path)
        assert job.finished_at.seconds > 0 and job.rows_written == 3
        with pytest.raises(grpc.RpcError) as info:
            export_stub(channel).GetExportDownload(export_service_pb2.GetExportDownloadRequest(id=job.id))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "S3 is unreachable" in str(info.value.details())
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        # The next job still runs (and fails the same way): the workers survived.
        again = wait_for_job(channel, create_export(channel, "json").id)
        assert again.status == "failed"
