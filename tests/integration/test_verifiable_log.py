"""The verifiable log end to end over gRPC: the tree in storage, signed checkpoints, proofs that a
client checks with nothing but the verifier key, and the bad requests."""

from __future__ import annotations

import stat
from pathlib import Path

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from audit.v1 import log_service_pb2 as lpb
from audit.v1 import log_service_pb2_grpc
from auditlog.app import Service
from auditlog.domain.merkle import root_from_leaves, verify_consistency, verify_inclusion
from auditlog.domain.notes import Verifier, open_checkpoint, parse_tlog_proof
from tests.fix_server import append_padded
from tests.fix_vlog import sign_now


@pytest.fixture
def log(channel: grpc.Channel) -> log_service_pb2_grpc.LogServiceStub:
    return log_service_pb2_grpc.LogServiceStub(channel)


def all_leaf_hashes(service: Service) -> list[bytes]:
    with service.pool.connection() as conn:
        rows = conn.execute("SELECT leaf_hash FROM audit_events ORDER BY sequence").fetchall()
    return [bytes(row[0]) for row in rows]


def signed(log: log_service_pb2_grpc.LogServiceStub, size: int | None = None) -> tuple[int, bytes, str]:
    """(size, root, note) of a checkpoint fetched from the server, opened with the served key."""
    verifier = Verifier.from_key(log.GetLogInfo(lpb.GetLogInfoRequest()).verifier_key)
    request = lpb.GetCheckpointRequest() if size is None else lpb.GetCheckpointRequest(tree_size=size)
    body = log.GetCheckpoint(request)
    assert body.content_type.startswith("text/plain")
    checkpoint = open_checkpoint(body.data, [verifier])
    return checkpoint.size, checkpoint.root, body.data.decode()


def bad_request(err: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    assert status is not None
    fields = {}
    for detail in status.details:
        info = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            fields.update({v.field: v.description for v in info.field_violations})
    return fields


def test_first_start_signs_the_empty_tree_and_keeps_the_key_private(
    service: Service, log: log_service_pb2_grpc.LogServiceStub, tmp_path: Path
) -> None:
    size, root, _ = signed(log)
    assert (size, root) == (0, root_from_leaves([]))
    for name in ("checkpoint-signer.key", "checkpoints.anchor"):
        assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600


def test_proofs_from_the_server_verify_against_the_signed_checkpoint(
    service: Service, target: str, log: log_service_pb2_grpc.LogServiceStub
) -> None:
    assert service.checkpointer is not None
    append_padded(target, 300, 10)
    assert sign_now(service).tree_size == 300
    append_padded(target, 300, 10)
    assert sign_now(service).tree_size == 600
    size, root, note = signed(log)
    leaves = all_leaf_hashes(service)
    # The tiles' root is the RFC 9162 root of every stored leaf, recomputed naively.
    assert size == 600 and root == root_from_leaves(leaves)
    for sequence in (0, 1, 255, 256, 299, 511, 512, 599):
        proof = log.GetInclusionProof(lpb.GetInclusionProofRequest(sequence=sequence))
        assert (proof.sequence, proof.tree_size, proof.checkpoint) == (sequence, 600, note)
        assert proof.leaf_hash == leaves[sequence]
        verify_inclusion(sequence, size, proof.leaf_hash, list(proof.hashes), root)
        assert parse_tlog_proof(proof.tlog_proof).proof == tuple(proof.hashes)
    # Against an older size, and by id.
    first_size, first_root, _ = signed(log, 300)
    assert first_root == root_from_leaves(leaves[:300])
    event_id = log.GetInclusionProof(lpb.GetInclusionProofRequest(sequence=7)).id
    older = log.GetInclusionProof(lpb.GetInclusionProofRequest(id=event_id, tree_size=300))
    verify_inclusion(7, first_size, older.leaf_hash, list(older.hashes), first_root)
    consistency = log.GetConsistencyProof(lpb.GetConsistencyProofRequest(first=300))
    assert consistency.second == 600 and consistency.checkpoint == note
    verify_consistency(300, 600, list(consistency.hashes), first_root, root)
    # Every size, not only signed ones, is a tree the proofs agree on.
    for first_size in (1, 2, 3, 255, 256, 257, 511):
        hashes = list(log.GetConsistencyProof(lpb.GetConsistencyProofRequest(first=first_size)).hashes)
        verify_consistency(first_size, 600, hashes, root_from_leaves(leaves[:first_size]), root)


def test_tiles_are_write_once_rows_for_full_tiles_only(
    service: Service, target: str, log: log_service_pb2_grpc.LogServiceStub
) -> None:
    assert service.checkpointer is not None
    append_padded(target, 600, 10)
    service.checkpointer.tick()
    with service.pool.connection() as conn:
        rows = conn.execute("SELECT level, index FROM merkle_tiles ORDER BY level, index").fetchall()
    assert [tuple(row) for row in rows] == [(0, 0), (0, 1)]
    leaves = all_leaf_hashes(service)
    assert log.GetTile(lpb.GetTileRequest(path="tile/0/001")).data == b"".join(leaves[256:512])
    assert log.GetTile(lpb.GetTileRequest(path="tile/0/002.p/88")).data == b"".join(leaves[512:600])
    with pytest.raises(grpc.RpcError) as beyond:
        log.GetTile(lpb.GetTileRequest(path="tile/0/002"))
    assert beyond.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (
            lpb.GetInclusionProofRequest(sequence=0, tree_size=99),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tree_size",
        ),
        (
            lpb.GetInclusionProofRequest(sequence=4, tree_size=3),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tree_size",
        ),
        (lpb.GetInclusionProofRequest(id="nope"), grpc.StatusCode.INVALID_ARGUMENT, "id"),
        (lpb.GetInclusionProofRequest(), grpc.StatusCode.INVALID_ARGUMENT, "id"),
        (lpb.GetInclusionProofRequest(sequence=-1), grpc.StatusCode.INVALID_ARGUMENT, "sequence"),
        (
            lpb.GetInclusionProofRequest(id="123e4567-e89b-12d3-a456-426614174000"),
            grpc.StatusCode.NOT_FOUND,
            None,
        ),
        (lpb.GetInclusionProofRequest(sequence=500), grpc.StatusCode.NOT_FOUND, None),
        (lpb.GetConsistencyProofRequest(first=4, second=2), grpc.StatusCode.INVALID_ARGUMENT, "first"),
        (lpb.GetConsistencyProofRequest(first=0, second=2), grpc.StatusCode.INVALID_ARGUMENT, "first"),
        (lpb.GetConsistencyProofRequest(first=1, second=11), grpc.StatusCode.INVALID_ARGUMENT, "second"),
        (lpb.GetCheckpointRequest(tree_size=11), grpc.StatusCode.INVALID_ARGUMENT, "tree_size"),
        (lpb.GetCheckpointRequest(tree_size=3), grpc.StatusCode.NOT_FOUND, None),
        (lpb.GetTileRequest(path="tile/0/1"), grpc.StatusCode.INVALID_ARGUMENT, "path"),
    ],
)
def test_bad_requests_name_the_field(
    service: Service,
    target: str,
    log: log_service_pb2_grpc.LogServiceStub,
    request_: object,
    code: grpc.StatusCode,
    field: str | None,
) -> None:
    assert service.checkpointer is not None
    append_padded(target, 10, 10)
    service.checkpointer.tick()
    method = {
        lpb.GetInclusionProofRequest: log.GetInclusionProof,
        lpb.GetConsistencyProofRequest: log.GetConsistencyProof,
        lpb.GetCheckpointRequest: log.GetCheckpoint,
        lpb.GetTileRequest: log.GetTile,
    }[type(request_)]
    with pytest.raises(grpc.RpcError) as err:
        method(request_)
    assert err.value.code() == code
    if field is not None:
        fields = bad_request(err.value)
        assert list(fields) == [field] and "got " in fields[field] and "want " in fields[field]


def test_an_event_newer_than_the_latest_checkpoint_is_a_precondition(
    service: Service, target: str, log: log_service_pb2_grpc.LogServiceStub
) -> None:
    assert service.checkpointer is not None
    service.checkpointer.stop()  # no timer: the checkpoint stays at size 0
    append_padded(target, 3, 10)
    with pytest.raises(grpc.RpcError) as err:
        log.GetInclusionProof(lpb.GetInclusionProofRequest(sequence=2))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "checkpoint" in (err.value.details() or "")


@pytest.mark.parametrize("table", ["merkle_tiles", "checkpoints"])
@pytest.mark.parametrize("operation", ["UPDATE {} SET root = root", "DELETE FROM {}", "TRUNCATE {}"])
def test_tree_and_checkpoints_are_write_once_for_owner_and_service(
    service: Service, target: str, database_url: str, table: str, operation: str
) -> None:
    assert service.checkpointer is not None
    append_padded(target, 256, 10)
    service.checkpointer.tick()
    statement = operation.format(table).encode()
    with (
        psycopg.connect(database_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="WORM"),
    ):
        conn.execute(statement)
    with psycopg.connect(database_url) as conn:
        conn.execute("SET ROLE auditlog_service")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(statement)
    with service.pool.connection() as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
    assert row is not None and row[0] >= 1


def test_proofs_across_a_full_level_one_tile(
    service: Service, target: str, log: log_service_pb2_grpc.LogServiceStub
) -> None:
    assert service.checkpointer is not None
    append_padded(target, 65_000, 1)
    service.checkpointer.tick()
    append_padded(target, 1_000, 1)
    service.checkpointer.tick()
    with service.pool.connection() as conn:
        levels = conn.execute(
            "SELECT level, count(*) FROM merkle_tiles GROUP BY level ORDER BY level"
        ).fetchall()
    assert [tuple(row) for row in levels] == [(0, 257), (1, 1)]
    size, root, _ = signed(log)
    leaves = all_leaf_hashes(service)
    assert size == 66_000 and root == root_from_leaves(leaves)
    for sequence in (0, 65_535, 65_536, 65_999):
        proof = log.GetInclusionProof(lpb.GetInclusionProofRequest(sequence=sequence))
        verify_inclusion(sequence, size, proof.leaf_hash, list(proof.hashes), root)
    first_size, first_root, _ = signed(log, 65_000)
    hashes = list(log.GetConsistencyProof(lpb.GetConsistencyProofRequest(first=first_size)).hashes)
    verify_consistency(first_size, size, hashes, first_root, root)
    assert log.GetTile(lpb.GetTileRequest(path="tile/1/000")).data[:32] == root_from_leaves(leaves[:256])
    assert len(log.GetTile(lpb.GetTileRequest(path="tile/1/001.p/1")).data) == 32
