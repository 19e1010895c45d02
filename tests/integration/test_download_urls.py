"""Local export downloads need the auditor role or a signed URL from GetExportDownload; an
expired or altered URL is refused: 403 through Envoy, PERMISSION_DENIED over gRPC."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC
from urllib.parse import parse_qs, urlsplit

import grpc
import psycopg
import pytest

from audit.v1 import export_service_pb2
from tests.fix_export import (
    append_events,
    create_export,
    download_content,
    export_stub,
    sample_inputs,
    wait_for_job,
)
from tests.fix_gateway import RestStack
from tests.fix_principal import as_principal


def _signed(channel: grpc.Channel, job_id: str) -> tuple[str, int, str]:
    """The path, expires and signature of the job's download URL."""
    link = export_stub(channel).GetExportDownload(export_service_pb2.GetExportDownloadRequest(id=job_id))
    parts = urlsplit(link.download_url)
    query = parse_qs(parts.query)
    expires = int(query["expires"][0])
    assert expires == int(link.expires_at.ToDatetime(tzinfo=UTC).timestamp())
    return parts.path, expires, query["signature"][0]


def _signature_by_the_documented_rule(database_url: str, job_id: str, expires: int) -> str:
    """As the module docstring of auditlog.api.download_urls defines it, from the database's key."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT secret FROM page_token_key WHERE id = 1").fetchone()
    assert row is not None
    key = hmac.new(bytes(row[0]), b"auditlog export download URL", hashlib.sha256).digest()
    mac = hmac.new(key, f"{job_id}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def test_signed_urls_download_and_expired_or_altered_ones_get_403(rest_fresh: RestStack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{rest_fresh.service.port}") as channel:
        append_events(channel, sample_inputs(3))
        job = wait_for_job(channel, create_export(channel, "csv").id)
        path, expires, signature = _signed(channel, job.id)
    assert 3590 < expires - time.time() <= 3600
    assert signature == _signature_by_the_documented_rule(rest_fresh.database_url, job.id, expires)
    good = rest_fresh.get(f"{path}?expires={expires}&signature={signature}")
    assert good.status == 200 and hashlib.sha256(good.body).hexdigest() == job.file_sha256
    altered = "A" + signature[1:] if signature[0] != "A" else "B" + signature[1:]
    past = int(time.time()) - 1
    refusals = {
        f"{path}?expires={expires}&signature={altered}": "its signature does not match",
        f"{path}?expires={expires + 3600}&signature={signature}": "its signature does not match",
        f"{path}?expires={expires}": "its signature does not match",
        # Correctly signed, but past its time.
        f"{path}?expires={past}&signature={_signature_by_the_documented_rule(rest_fresh.database_url, job.id, past)}": (
            "it has expired"
        ),
    }
    for url, reason in refusals.items():
        reply = rest_fresh.get(url)
        assert reply.status == 403, (url, reply.body)
        assert (
            reply.json()["message"] == f"download URL refused: {reason}; ask GetExportDownload for a new URL"
        )
    # The signature is for one job: another job's URL does not open this one's file.
    other_path = path.replace(job.id, "00000000-0000-4000-8000-000000000000")
    assert rest_fresh.get(f"{other_path}?expires={expires}&signature={signature}").status == 403


@pytest.fixture
def channel(principal_target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(principal_target) as ch:
        yield ch


def test_without_a_signed_url_a_download_needs_the_auditor_role(channel: grpc.Channel) -> None:
    append_events(channel, sample_inputs(2))
    job = wait_for_job(channel, create_export(channel, "json").id)
    stub = export_stub(channel)
    with pytest.raises(grpc.RpcError) as refused:
        list(
            stub.DownloadExportContent(
                export_service_pb2.DownloadExportContentRequest(id=job.id),
                metadata=as_principal("reader", "key:r"),
                timeout=10,
            )
        )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == (
        "downloading an export needs the auditor role or a signed URL from GetExportDownload;"
        " key:r has the reader role"
    )
    for role in ("auditor", "admin"):
        chunks = stub.DownloadExportContent(
            export_service_pb2.DownloadExportContentRequest(id=job.id),
            metadata=as_principal(role, "k"),
            timeout=10,
        )
        assert hashlib.sha256(b"".join(c.data for c in chunks)).hexdigest() == job.file_sha256
    _, expires, signature = _signed(channel, job.id)
    signed = export_service_pb2.DownloadExportContentRequest(id=job.id, expires=expires, signature=signature)
    chunks = stub.DownloadExportContent(signed, metadata=as_principal("reader", "key:r"), timeout=10)
    assert hashlib.sha256(b"".join(c.data for c in chunks)).hexdigest() == job.file_sha256
    data, _, _ = download_content(channel, job.id)  # no principal (auth off): as before
    assert hashlib.sha256(data).hexdigest() == job.file_sha256
