"""Evidence that travels with exports, end to end: a server's JSON export carries the signed
checkpoint it was made against and each event's inclusion proof; every export gets a signed
manifest (beside the file and in GetExportDownload); `auditctl verify-export` checks them offline
with only the verifier key: valid -> exit 0 and one line, anything altered -> exit 3 and one line."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from audit.v1 import export_service_pb2, log_service_pb2, log_service_pb2_grpc
from auditlog.app import Service
from auditlog.domain import notes
from tests.fix_cli import auditctl
from tests.fix_export import (
    ServiceFactory,
    append_events,
    create_export,
    download_content,
    export_stub,
    sample_inputs,
    wait_for_job,
)
from tests.fix_s3 import S3Endpoint


def refused(done: subprocess.CompletedProcess[str], said: str) -> None:
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.fixture
def server(start_service: ServiceFactory) -> Service:
    return start_service()


@pytest.fixture
def channel(server: Service) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def key(channel: grpc.Channel) -> str:
    info = log_service_pb2_grpc.LogServiceStub(channel).GetLogInfo(log_service_pb2.GetLogInfoRequest())
    return str(info.verifier_key)


def exported(
    channel: grpc.Channel, folder: Path, export_format: str, **filters: str
) -> tuple[Path, Path, export_service_pb2.GetExportDownloadResponse]:
    """The export's file and manifest saved as a user would: the file downloaded, the manifest
    from GetExportDownload."""
    job = wait_for_job(channel, create_export(channel, export_format, **filters).id)
    assert job.status == "completed", job.error
    data, _, _ = download_content(channel, job.id)
    link = export_stub(channel).GetExportDownload(export_service_pb2.GetExportDownloadRequest(id=job.id))
    path = folder / link.file_name
    path.write_bytes(data)
    manifest = folder / (link.file_name + ".manifest")
    manifest.write_text(link.manifest, encoding="utf-8")
    return path, manifest, link


def test_a_json_export_carries_its_checkpoint_and_proofs_and_verifies_offline(
    channel: grpc.Channel, key: str, tmp_path: Path
) -> None:
    events = append_events(channel, sample_inputs(300))
    path, manifest, link = exported(channel, tmp_path, "json")
    # The manifest is a signed note by the log's key, stored beside the file too.
    stored = tmp_path / "data" / "exports"
    assert [p.read_text() for p in stored.glob("*/*.manifest")] == [link.manifest]
    body = notes.open_note(link.manifest, [notes.Verifier.from_key(key)]).text
    assert f"\nsha256 {link.file_sha256}\nsize {link.file_size}\nrows 300\n" in body
    document = json.loads(path.read_bytes())
    checkpoint = notes.open_checkpoint(document["evidence"]["checkpoint"], [notes.Verifier.from_key(key)])
    assert checkpoint.size >= 300
    assert f"\ncheckpoint {checkpoint.size} {base64.b64encode(checkpoint.root).decode()}\n" in body
    assert [e["id"] for e in document["events"]] == [e.id for e in events]
    assert all(e["inclusion_proof"] for e in document["events"])

    done = auditctl("verify-export", path, "--key", key)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout == (
        f"export valid: {path.name} matches its manifest; 300 events included in"
        f" {checkpoint.origin} at size {checkpoint.size}\n"
    )

    # One event altered: its fields no longer hash to its leaf hash.
    original = path.read_bytes()
    victim = events[123]
    lines = original.split(b"\n")
    at = next(i for i, x in enumerate(lines) if victim.id.encode() in x)
    field = f'"user_id":"{victim.user_id}",'.encode()
    assert field in lines[at]
    path.write_bytes(
        b"\n".join([*lines[:at], lines[at].replace(field, b'"user_id":"mallory",'), *lines[at + 1 :]])
    )
    refused(auditctl("verify-export", path, "--key", key, "--manifest", manifest), "the event was altered")

    # One event's proof moved to another event: not in the checkpoint.
    first = next(i for i, x in enumerate(lines) if x.startswith(b'{"id"'))
    a, b = json.loads(lines[first + 5].rstrip(b",")), json.loads(lines[first + 6].rstrip(b","))
    a["inclusion_proof"] = b["inclusion_proof"]
    lines[first + 5] = json.dumps(a, ensure_ascii=False, separators=(",", ":")).encode() + b","
    path.write_bytes(b"\n".join(lines))
    refused(auditctl("verify-export", path, "--key", key), "is not in the export's checkpoint")

    # The file truncated after its 200th event (kept well-formed): rows and SHA-256 disagree.
    lines = original.split(b"\n")
    cut = [*lines[: first + 199], lines[first + 199].rstrip(b","), b"]}", b""]
    path.write_bytes(b"\n".join(cut))
    refused(auditctl("verify-export", path, "--key", key), "the file is cut")
    path.write_bytes(original[:-1000])
    refused(auditctl("verify-export", path, "--key", key), "the file is cut or altered")

    # The manifest re-signed with another key of the same name.
    path.write_bytes(original)
    impostor = notes.generate_signer(checkpoint.origin)
    manifest.write_text(notes.sign_note(body, [impostor]), encoding="utf-8")
    refused(auditctl("verify-export", path, "--key", key), "manifest: the note is not signed by")
    manifest.write_text(link.manifest, encoding="utf-8")
    assert auditctl("verify-export", path, "--key", key).returncode == 0


def test_a_filtered_json_export_and_a_csv_one_verify_against_their_manifests(
    channel: grpc.Channel, key: str, tmp_path: Path
) -> None:
    append_events(channel, sample_inputs(40))
    path, _, link = exported(channel, tmp_path, "json", event_type="user.login")
    done = auditctl("verify-export", path, "--key", key)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "; 20 events included in " in done.stdout
    assert 'filters {"event_type":"user.login"}' in link.manifest

    csv_path, _, csv_link = exported(channel, tmp_path, "csv")
    assert hashlib.sha256(csv_path.read_bytes()).hexdigest() == csv_link.file_sha256
    done = auditctl("verify-export", csv_path, "--key", key)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.startswith(
        f"export valid: {csv_path.name} matches its manifest (40 rows, checkpoint of "
    )
    csv_path.write_bytes(csv_path.read_bytes().replace(b"user1", b"user9", 1))
    refused(auditctl("verify-export", csv_path, "--key", key), "it was altered or cut")


def test_auditctl_export_download_saves_the_manifest_beside_the_file(
    server: Service, channel: grpc.Channel, key: str, tmp_path: Path
) -> None:
    append_events(channel, sample_inputs(12))
    job = wait_for_job(channel, create_export(channel, "json").id)
    target = f"127.0.0.1:{server.port}"
    path = tmp_path / "q1.json"
    done = auditctl("--target", target, "export", "download", job.id, "-o", path)
    assert done.returncode == 0, done.stderr
    assert f"saved {path}.manifest" in done.stderr
    verified = auditctl("verify-export", path, "--key", key)
    assert (verified.returncode, verified.stderr) == (0, ""), verified.stderr
    assert "; 12 events included in " in verified.stdout


def test_an_s3_export_has_its_manifest_beside_it_in_the_bucket(
    start_service: ServiceFactory, s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path
) -> None:
    svc = start_service(s3_bucket=s3_bucket, s3_endpoint_url=s3_endpoint.url)
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        append_events(channel, sample_inputs(30))
        job = wait_for_job(channel, create_export(channel, "json", job_name="Quarterly").id)
        assert job.status == "completed", job.error
        link = export_stub(channel).GetExportDownload(export_service_pb2.GetExportDownloadRequest(id=job.id))
        key = log_service_pb2_grpc.LogServiceStub(channel).GetLogInfo(log_service_pb2.GetLogInfoRequest())
    stored = s3_endpoint.client.get_object(Bucket=s3_bucket, Key=f"exports/{job.id}/quarterly.json.manifest")
    assert stored["Body"].read().decode() == link.manifest != ""
    with urllib.request.urlopen(link.download_url, timeout=10) as response:
        (tmp_path / "quarterly.json").write_bytes(response.read())
    (tmp_path / "quarterly.json.manifest").write_text(link.manifest, encoding="utf-8")
    done = auditctl("verify-export", tmp_path / "quarterly.json", "--key", key.verifier_key)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "; 30 events included in " in done.stdout
