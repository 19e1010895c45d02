"""Checkpoint keys and anchors: S3 objects under COMPLIANCE Object Lock (moto enforces it), the
append-only file otherwise, the signer from AUDITLOG_SIGNING_KEY, and a restarted log that checks
itself against what it anchored."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from audit.v1 import audit_service_pb2 as pb
from auditlog.app import Service, create_service
from auditlog.config import Config
from auditlog.domain.notes import Verifier, generate_signer, open_checkpoint
from auditlog.errors import ConfigError
from auditlog_client import AuditClient
from tests.fix_db import login_url
from tests.fix_s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Endpoint
from tests.fix_server import server_config, stop_service
from tests.fix_vlog import sign_now


@pytest.fixture
def start(database_url: str, test_login: str, tmp_path: Path) -> Iterator[object]:
    started: list[Service] = []

    def run(**overrides: object) -> Service:
        config = dataclasses.replace(server_config(tmp_path), **overrides)  # type: ignore[arg-type]
        svc = create_service(
            config, database_url=login_url(database_url, test_login), migration_url=database_url
        )
        started.append(svc)
        return svc

    yield run
    for svc in started:
        stop_service(svc, database_url)


def s3_settings(endpoint: S3Endpoint, bucket: str) -> dict[str, object]:
    return {
        "s3_bucket_name": bucket,
        "s3_endpoint_url": endpoint.url,
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "aws_default_region": REGION,
        "anchor_retention_days": 1,
    }


def add(svc: Service, count: int) -> None:
    with AuditClient(f"127.0.0.1:{svc.port}") as client:
        for i in range(count):
            client.create_event(event_type="x.y", action="a", user_id=f"u{i}")


def test_s3_anchor_objects_are_under_compliance_retention(start: object, s3_endpoint: S3Endpoint) -> None:
    bucket = f"anchors-{datetime.now(UTC).strftime('%H%M%S%f')}"
    s3_endpoint.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    svc = start(**s3_settings(s3_endpoint, bucket))  # type: ignore[operator]
    assert svc.checkpointer is not None
    add(svc, 3)
    assert sign_now(svc).tree_size == 3
    keys = [o["Key"] for o in s3_endpoint.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["checkpoints/00000000000000000000", "checkpoints/00000000000000000003"]
    verifier = Verifier.from_key(svc.checkpointer.verifier.key())
    body = s3_endpoint.client.get_object(Bucket=bucket, Key=keys[1])["Body"].read()
    assert open_checkpoint(body, [verifier]).size == 3
    head = s3_endpoint.client.head_object(Bucket=bucket, Key=keys[1])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)
    version = s3_endpoint.client.list_object_versions(Bucket=bucket, Prefix=keys[1])["Versions"][0][
        "VersionId"
    ]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3_endpoint.client.delete_object(Bucket=bucket, Key=keys[1], VersionId=version)
    # The file anchor is not used when S3 is.
    assert svc.checkpointer.anchors.name == "s3"


def test_s3_anchors_without_object_lock_are_plain_objects(
    start: object, s3_endpoint: S3Endpoint, s3_bucket: str
) -> None:
    svc = start(**s3_settings(s3_endpoint, s3_bucket))  # type: ignore[operator]
    assert svc.checkpointer is not None
    add(svc, 2)
    svc.checkpointer.tick()
    keys = [o["Key"] for o in s3_endpoint.client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys[-1] == "checkpoints/00000000000000000002"


def test_verify_chain_reads_the_s3_anchors(
    start: object, s3_endpoint: S3Endpoint, s3_bucket: str, database_url: str
) -> None:
    import psycopg

    svc = start(**s3_settings(s3_endpoint, s3_bucket))  # type: ignore[operator]
    assert svc.checkpointer is not None
    add(svc, 4)
    svc.checkpointer.tick()
    with psycopg.connect(database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("TRUNCATE audit_events")
        conn.execute("UPDATE log_head SET sequence = -1, chain_hash = %s, recorded_at = NULL", (bytes(32),))
    with AuditClient(f"127.0.0.1:{svc.port}") as client:
        result = client.verify_chain(verify_all=True)
    assert (result.valid, result.first_bad_sequence, result.break_kind) == (
        False,
        3,
        pb.BREAK_KIND_CHECKPOINT,
    )


def test_file_anchor_is_one_json_line_a_checkpoint(start: object, tmp_path: Path) -> None:
    svc = start()  # type: ignore[operator]
    assert svc.checkpointer is not None
    add(svc, 2)
    svc.checkpointer.tick()
    lines = (tmp_path / "data" / "checkpoints.anchor").read_text().splitlines()
    assert [json.loads(line)["tree_size"] for line in lines] == [0, 2]


def test_signing_key_from_the_environment_names_the_log(start: object) -> None:
    signer = generate_signer("example.com/audit")
    svc = start(signing_key=signer.signer_key())  # type: ignore[operator]
    assert svc.checkpointer is not None
    assert (svc.checkpointer.origin, svc.checkpointer.verifier.key()) == (
        "example.com/audit",
        signer.verifier_key(),
    )


def test_origin_that_differs_from_the_key_fails_at_start(start: object) -> None:
    signer = generate_signer("example.com/audit")
    with pytest.raises(ConfigError, match="AUDITLOG_LOG_ORIGIN"):
        start(signing_key=signer.signer_key(), log_origin="other.example/log")  # type: ignore[operator]


def test_restart_checks_the_tree_against_the_anchors(
    start: object, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    first = start()  # type: ignore[operator]
    assert first.checkpointer is not None
    add(first, 5)
    first.checkpointer.tick()
    first.stop(grace=2)
    with psycopg.connect(database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("TRUNCATE audit_events, checkpoints, merkle_tiles")
        conn.execute("UPDATE log_head SET sequence = -1, chain_hash = %s, recorded_at = NULL", (bytes(32),))
    with caplog.at_level(logging.ERROR, logger="auditlog.checkpoints"):
        second = start()  # type: ignore[operator]
    assert second.checkpointer is not None
    assert "fewer than the 5 of a signed checkpoint" in (second.checkpointer.refused or "")
    assert "REFUSING TO SIGN" in caplog.text


def test_bad_checkpoint_interval_names_the_variable() -> None:
    from auditlog.config import load_config

    with pytest.raises(ConfigError, match="AUDITLOG_CHECKPOINT_INTERVAL: got 'soon'"):
        load_config({"AUDITLOG_CHECKPOINT_INTERVAL": "soon"})
    assert load_config({"AUDITLOG_CHECKPOINT_INTERVAL": "0.5"}).checkpoint_interval == 0.5
    assert Config(database_url=None, data_dir=Path()).checkpoint_interval == 1.0


def test_processes_starting_together_share_one_generated_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from auditlog.checkpoints import load_signer

    config = Config(database_url=None, data_dir=tmp_path / "fresh")
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_signer(config).signer_key(), range(8)))
    assert len(keys) == 1
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["checkpoint-signer.key"]


def test_anchors_are_read_once_then_only_the_new_ones(tmp_path: Path) -> None:
    from auditlog.anchors import FileAnchors
    from auditlog.checkpoints import AnchoredCheckpoints
    from auditlog.domain.notes import Checkpoint, sign_note

    origin = "anchors.example/log"
    signer, stranger = generate_signer(origin), generate_signer(origin)
    anchors = FileAnchors(tmp_path / "checkpoints.anchor")
    for size in (1, 2):
        anchors.put(size, sign_note(Checkpoint(origin, size, bytes(32)).body(), [signer]))
    reader = AnchoredCheckpoints(anchors, signer.verifier(), origin)
    assert [c.tree_size for c in reader.read()] == [1, 2]
    (position, _), _ = list(anchors.notes())
    assert [note for _, note in anchors.notes(position)] == [list(anchors.notes())[1][1]]
    anchors.put(3, sign_note(Checkpoint(origin, 3, bytes(32)).body(), [stranger]))  # ignored
    anchors.put(4, sign_note(Checkpoint(origin, 4, bytes(32)).body(), [signer]))
    with (tmp_path / "checkpoints.anchor").open("a") as torn:
        torn.write('{"tree_size": 5, "no')  # a write cut short: not yet an anchor
    assert [c.tree_size for c in reader.read()] == [1, 2, 4]
    anchors.put(6, sign_note(Checkpoint(origin, 6, bytes(32)).body(), [signer]))
    assert [c.tree_size for c in reader.read()] == [1, 2, 4, 6]
    assert [c.tree_size for c in AnchoredCheckpoints(anchors, signer.verifier(), origin).read()] == [
        1,
        2,
        4,
        6,
    ]
