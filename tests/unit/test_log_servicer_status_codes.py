"""Every status-code path of LogService, in process (grpc_testing) over the in-memory log and tree
(storage.memory.MemoryTree): no database. Proofs are checked with domain.merkle's verifiers."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest

from audit.v1 import log_service_pb2 as pb
from auditlog.api.log_servicer import CHECKPOINT_TYPE, TILE_TYPE, LogServicer
from auditlog.domain.merkle import root_from_leaves, verify_consistency, verify_inclusion
from auditlog.domain.notes import Signer, open_checkpoint, parse_tlog_proof
from auditlog.sequencer import Sequencer
from auditlog.storage.memory import MemoryLog, MemoryTree
from tests.fix_servicers import append, fields_of, invoke_unary, unary

LOG = pb.DESCRIPTOR.services_by_name["LogService"]
SIGNER = Signer.from_seed("example.com/auditlog/test", bytes(range(32)))


@pytest.fixture
def tree(memory_log: MemoryLog) -> MemoryTree:
    return MemoryTree(memory_log, SIGNER)


@pytest.fixture
def service(tree: MemoryTree) -> LogServicer:
    return LogServicer(tree, SIGNER.name, SIGNER.verifier_key())


@pytest.fixture
def signed(memory_sequencer: Sequencer, tree: MemoryTree) -> MemoryTree:
    """Seven events, with checkpoints signed at tree sizes 3 and 7."""
    append(memory_sequencer, 3)
    tree.sign()
    append(memory_sequencer, 4)
    tree.sign()
    return tree


def leaves(log: MemoryLog) -> list[bytes]:
    return [r.leaf_hash for r in log.events]


def root_of(note: str) -> bytes:
    return open_checkpoint(note, [SIGNER.verifier()]).root


def test_log_info_before_and_after_the_first_checkpoint(
    service: LogServicer, memory_sequencer: Sequencer, tree: MemoryTree
) -> None:
    info, code, _, _ = unary(service, LOG, "GetLogInfo", pb.GetLogInfoRequest())
    assert code == grpc.StatusCode.OK and info.tree_size == 0
    assert info.origin == SIGNER.name and info.verifier_key == SIGNER.verifier_key()
    append(memory_sequencer, 2)
    tree.sign()
    append(memory_sequencer, 1)  # not signed yet: the log info says the signed size
    info, code, _, _ = unary(service, LOG, "GetLogInfo", pb.GetLogInfoRequest())
    assert code == grpc.StatusCode.OK and info.tree_size == 2


def test_checkpoints_latest_and_at_a_signed_size(service: LogServicer, signed: MemoryTree) -> None:
    for request, size in (
        (pb.GetCheckpointRequest(), 7),
        (pb.GetCheckpointRequest(tree_size=7), 7),
        (pb.GetCheckpointRequest(tree_size=3), 3),
    ):
        body, code, _, _ = unary(service, LOG, "GetCheckpoint", request)
        assert code == grpc.StatusCode.OK and body.content_type == CHECKPOINT_TYPE
        checkpoint = open_checkpoint(body.data.decode(), [SIGNER.verifier()])
        assert (checkpoint.origin, checkpoint.size) == (SIGNER.name, size)
        assert checkpoint.root == signed.checkpoints[size].root


def test_inclusion_proofs_verify_against_the_signed_root(
    service: LogServicer, signed: MemoryTree, memory_log: MemoryLog
) -> None:
    root = root_of(signed.checkpoints[7].note)
    for record in memory_log.events:
        for request in (
            pb.GetInclusionProofRequest(sequence=record.sequence),
            pb.GetInclusionProofRequest(id=str(record.id), tree_size=7),
        ):
            proof, code, _, _ = unary(service, LOG, "GetInclusionProof", request)
            assert code == grpc.StatusCode.OK
            assert (proof.id, proof.sequence, proof.tree_size) == (str(record.id), record.sequence, 7)
            assert proof.leaf_hash == record.leaf_hash and proof.checkpoint == signed.checkpoints[7].note
            verify_inclusion(record.sequence, 7, proof.leaf_hash, list(proof.hashes), root)
            tlog = parse_tlog_proof(proof.tlog_proof)
            assert (tlog.index, list(tlog.proof), tlog.checkpoint) == (
                record.sequence,
                list(proof.hashes),
                proof.checkpoint,
            )


def test_inclusion_proof_at_a_size_without_checkpoint_has_no_note(
    service: LogServicer, signed: MemoryTree, memory_log: MemoryLog
) -> None:
    proof, code, _, _ = unary(
        service, LOG, "GetInclusionProof", pb.GetInclusionProofRequest(sequence=1, tree_size=5)
    )
    assert code == grpc.StatusCode.OK and proof.tree_size == 5
    assert proof.checkpoint == "" and proof.tlog_proof == ""
    verify_inclusion(1, 5, proof.leaf_hash, list(proof.hashes), root_from_leaves(leaves(memory_log)[:5]))


def test_tlog_proof_is_a_download_of_a_signed_size(
    service: LogServicer, signed: MemoryTree, memory_log: MemoryLog
) -> None:
    record = memory_log.events[2]
    rpc = invoke_unary(service, LOG, "GetTlogProof", pb.GetTlogProofRequest(id=str(record.id), tree_size=3))
    body, _, code, _ = rpc.termination()
    assert code == grpc.StatusCode.OK and body.content_type == CHECKPOINT_TYPE
    assert ("content-disposition", f'attachment; filename="{record.id}.tlog-proof"') in rpc.initial_metadata()
    tlog = parse_tlog_proof(body.data)
    assert tlog.index == 2 and tlog.checkpoint == signed.checkpoints[3].note
    verify_inclusion(2, 3, record.leaf_hash, tlog.proof, root_of(tlog.checkpoint))
    _, code, details, _ = unary(
        service, LOG, "GetTlogProof", pb.GetTlogProofRequest(id=str(record.id), tree_size=5)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details == "no checkpoint was signed at tree size 5; ask for a signed size"


def test_consistency_proofs_verify(service: LogServicer, signed: MemoryTree, memory_log: MemoryLog) -> None:
    proof, code, _, _ = unary(service, LOG, "GetConsistencyProof", pb.GetConsistencyProofRequest(first=3))
    assert code == grpc.StatusCode.OK and (proof.first, proof.second) == (3, 7)
    assert proof.checkpoint == signed.checkpoints[7].note
    verify_consistency(3, 7, list(proof.hashes), signed.checkpoints[3].root, root_of(proof.checkpoint))
    proof, code, _, _ = unary(
        service, LOG, "GetConsistencyProof", pb.GetConsistencyProofRequest(first=2, second=5)
    )
    assert code == grpc.StatusCode.OK and proof.checkpoint == ""
    hashes = leaves(memory_log)
    verify_consistency(2, 5, list(proof.hashes), root_from_leaves(hashes[:2]), root_from_leaves(hashes[:5]))


def test_tiles_hold_the_leaf_hashes_and_subtree_roots(
    service: LogServicer, memory_sequencer: Sequencer, tree: MemoryTree, memory_log: MemoryLog
) -> None:
    append(memory_sequencer, 300)
    tree.sign()
    hashes = leaves(memory_log)
    for path, want in (
        ("tile/0/000", hashes[:256]),
        ("tile/0/000.p/3", hashes[:3]),
        ("tile/0/001.p/44", hashes[256:]),
        ("tile/1/000.p/1", [root_from_leaves(hashes[:256])]),
    ):
        body, code, _, _ = unary(service, LOG, "GetTile", pb.GetTileRequest(path=path))
        assert code == grpc.StatusCode.OK and body.content_type == TILE_TYPE
        assert body.data == b"".join(want), path


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("GetCheckpoint", pb.GetCheckpointRequest()),
        ("GetInclusionProof", pb.GetInclusionProofRequest(sequence=0)),
        ("GetTlogProof", pb.GetTlogProofRequest(id="")),
        ("GetConsistencyProof", pb.GetConsistencyProofRequest(first=1)),
        ("GetTile", pb.GetTileRequest(path="tile/0/000.p/1")),
    ],
)
def test_failed_precondition_before_the_first_checkpoint(
    service: LogServicer,
    memory_sequencer: Sequencer,
    memory_log: MemoryLog,
    method: str,
    request_message: Any,
) -> None:
    append(memory_sequencer, 2)
    if method == "GetTlogProof":
        request_message.id = str(memory_log.events[0].id)
    _, code, details, _ = unary(service, LOG, method, request_message)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details == "no checkpoint has been signed yet; retry in a second"


def test_failed_precondition_for_an_event_not_yet_signed(
    service: LogServicer, signed: MemoryTree, memory_sequencer: Sequencer
) -> None:
    append(memory_sequencer, 1)
    _, code, details, _ = unary(service, LOG, "GetInclusionProof", pb.GetInclusionProofRequest(sequence=7))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith("event 7 is not in a signed checkpoint yet (latest tree size 7)")


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("GetCheckpoint", pb.GetCheckpointRequest(tree_size=8), "tree_size"),
        ("GetCheckpoint", pb.GetCheckpointRequest(tree_size=-1), "tree_size"),
        ("GetInclusionProof", pb.GetInclusionProofRequest(), "id"),
        ("GetInclusionProof", pb.GetInclusionProofRequest(id="42"), "id"),
        ("GetInclusionProof", pb.GetInclusionProofRequest(sequence=-1), "sequence"),
        ("GetInclusionProof", pb.GetInclusionProofRequest(sequence=5, tree_size=5), "tree_size"),
        ("GetInclusionProof", pb.GetInclusionProofRequest(sequence=0, tree_size=8), "tree_size"),
        ("GetTlogProof", pb.GetTlogProofRequest(), "id"),
        ("GetTlogProof", pb.GetTlogProofRequest(id="not-a-uuid"), "id"),
        ("GetConsistencyProof", pb.GetConsistencyProofRequest(), "first"),
        ("GetConsistencyProof", pb.GetConsistencyProofRequest(first=1, second=8), "second"),
        ("GetConsistencyProof", pb.GetConsistencyProofRequest(first=5, second=3), "first"),
        ("GetTile", pb.GetTileRequest(path=""), "path"),
        ("GetTile", pb.GetTileRequest(path="tile/0/1"), "path"),
        ("GetTile", pb.GetTileRequest(path="tile/0/000.p/256"), "path"),
        ("GetTile", pb.GetTileRequest(path="tile/0/x000/001"), "path"),
        ("GetTile", pb.GetTileRequest(path="../../etc/passwd"), "path"),
    ],
)
def test_invalid_argument_names_the_field(
    service: LogServicer, signed: MemoryTree, method: str, request_message: Any, field: str
) -> None:
    _, code, details, _ = unary(service, LOG, method, request_message)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(details) == [field] and details.startswith(f"invalid request: {field}: got ")


@pytest.mark.parametrize(
    ("method", "request_message", "details"),
    [
        ("GetCheckpoint", pb.GetCheckpointRequest(tree_size=5), "no checkpoint was signed at tree size 5"),
        ("GetCheckpoint", pb.GetCheckpointRequest(tree_size=0), "no checkpoint was signed at tree size 0"),
        (
            "GetInclusionProof",
            pb.GetInclusionProofRequest(id=str(uuid.UUID(int=7))),
            "no audit event has id 00000000-0000-0000-0000-000000000007",
        ),
        ("GetInclusionProof", pb.GetInclusionProofRequest(sequence=99), "no audit event has sequence 99"),
        (
            "GetTlogProof",
            pb.GetTlogProofRequest(id=str(uuid.UUID(int=7))),
            "no audit event has id 00000000-0000-0000-0000-000000000007",
        ),
        (
            "GetTile",
            pb.GetTileRequest(path="tile/0/000.p/8"),
            "tile tile/0/000.p/8 is beyond the latest checkpoint",
        ),
        ("GetTile", pb.GetTileRequest(path="tile/0/000"), "tile tile/0/000 is beyond the latest checkpoint"),
        (
            "GetTile",
            pb.GetTileRequest(path="tile/1/000.p/1"),
            "tile tile/1/000.p/1 is beyond the latest checkpoint",
        ),
    ],
)
def test_not_found(
    service: LogServicer, signed: MemoryTree, method: str, request_message: Any, details: str
) -> None:
    _, code, got, _ = unary(service, LOG, method, request_message)
    assert (code, got) == (grpc.StatusCode.NOT_FOUND, details)


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("GetLogInfo", pb.GetLogInfoRequest()),
        ("GetCheckpoint", pb.GetCheckpointRequest()),
        ("GetInclusionProof", pb.GetInclusionProofRequest(sequence=0)),
        ("GetTlogProof", pb.GetTlogProofRequest(id=str(uuid.UUID(int=7)))),
        ("GetConsistencyProof", pb.GetConsistencyProofRequest(first=1)),
        ("GetTile", pb.GetTileRequest(path="tile/0/000.p/1")),
    ],
)
def test_unavailable_when_the_storage_is_unreachable(
    service: LogServicer, signed: MemoryTree, memory_log: MemoryLog, method: str, request_message: Any
) -> None:
    memory_log.unavailable = True
    _, code, details, _ = unary(service, LOG, method, request_message)
    assert code == grpc.StatusCode.UNAVAILABLE and details == "the database is unavailable; retry later"


def test_a_tree_with_events_missing_is_internal_with_only_a_request_id(
    service: LogServicer, signed: MemoryTree, memory_log: MemoryLog
) -> None:
    del memory_log.events[1]  # a row removed below the signed head
    _, code, details, _ = unary(service, LOG, "GetInclusionProof", pb.GetInclusionProofRequest(sequence=0))
    assert code == grpc.StatusCode.INTERNAL and details.startswith("internal error (request id ")
    assert "events" not in details
