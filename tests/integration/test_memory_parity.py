"""The in-memory stores the servicer unit tests use answer as the PostgreSQL ones do: the same
LogService and KeyService requests over both give the same codes, messages and responses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from audit.v1 import key_service_pb2, log_service_pb2
from auditlog.anchors import FileAnchors
from auditlog.api.key_servicer import KeyServicer
from auditlog.api.log_servicer import LogServicer
from auditlog.checkpoints import Checkpointer
from auditlog.domain.event import NewEvent
from auditlog.domain.filters import EventFilter
from auditlog.domain.notes import Signer
from auditlog.sequencer import Sequencer
from auditlog.storage.memory import MemoryKeys, MemoryLog, MemoryTree
from auditlog.storage.postgres.api_keys import KeyTable
from auditlog.storage.postgres.database import ServicePool
from auditlog.storage.postgres.reader import EventStore
from auditlog.storage.postgres.tree import TileCache, TreeStore
from tests.fix_servicers import unary

LOG = log_service_pb2.DESCRIPTOR.services_by_name["LogService"]
KEYS = key_service_pb2.DESCRIPTOR.services_by_name["KeyService"]
SIGNER = Signer.from_seed("parity.example/log", bytes(range(32)))


def same_codes(
    services: tuple[Any, Any], service: Any, requests: list[tuple[str, Any]]
) -> list[tuple[Any, Any]]:
    """Asserts both servicers answer every request with the same code and message; the (database,
    memory) responses of those answered OK."""
    answered = []
    for method, request in requests:
        database, memory = (unary(s, service, method, request)[:3] for s in services)
        assert database[1:] == memory[1:], (method, request)
        if database[1] == grpc.StatusCode.OK:
            answered.append((database[0], memory[0]))
    return answered


def test_tree_stores_answer_alike(pool: ServicePool, tmp_path: Path) -> None:
    sequencer = Sequencer(EventStore(pool).writer())
    sequencer.start()
    checkpointer = Checkpointer(
        pool, SIGNER, FileAnchors(tmp_path / "anchors"), interval=60, clock=lambda: datetime.now(UTC)
    )
    memory_log = MemoryLog()
    tree = MemoryTree(memory_log, SIGNER)
    try:
        for count in (5, 4):
            sequencer.append([NewEvent(event_type="a.b", action=str(i)) for i in range(count)])
            assert checkpointer.tick() is not None
            records = list(EventStore(pool).iter_matching(EventFilter()))
            memory_log.commit(records[len(memory_log.events) :], EventStore(pool).head())
            tree.sign()
        sequencer.append([NewEvent(event_type="a.b", action="unsigned")])
        memory_log.commit(list(EventStore(pool).iter_matching(EventFilter()))[9:], EventStore(pool).head())
    finally:
        sequencer.stop()
    ids = [str(r.id) for r in memory_log.events]
    services = (
        LogServicer(TreeStore(pool, TileCache()), SIGNER.name, SIGNER.verifier_key()),
        LogServicer(tree, SIGNER.name, SIGNER.verifier_key()),
    )
    pb = log_service_pb2
    requests: list[tuple[str, Any]] = [
        ("GetLogInfo", pb.GetLogInfoRequest()),
        *[("GetCheckpoint", pb.GetCheckpointRequest(tree_size=n)) for n in (0, 3, 5, 9, 10)],
        ("GetCheckpoint", pb.GetCheckpointRequest()),
        *[("GetInclusionProof", pb.GetInclusionProofRequest(sequence=s)) for s in (-1, 0, 4, 8, 9, 99)],
        *[
            ("GetInclusionProof", pb.GetInclusionProofRequest(id=i, tree_size=n))
            for i in ids[:5]
            for n in (3, 5)
        ],
        ("GetInclusionProof", pb.GetInclusionProofRequest(id="00000000-0000-0000-0000-000000000007")),
        *[("GetTlogProof", pb.GetTlogProofRequest(id=ids[2], tree_size=n)) for n in (0, 4, 5)],
        *[
            ("GetConsistencyProof", pb.GetConsistencyProofRequest(first=f, second=s))
            for f, s in ((0, 0), (1, 0), (3, 7), (5, 9), (9, 9), (6, 5), (1, 10))
        ],
        *[
            ("GetTile", pb.GetTileRequest(path=p))
            for p in ("tile/0/000.p/9", "tile/0/000.p/3", "tile/0/000.p/10")
        ],
        ("GetTile", pb.GetTileRequest(path="tile/0/000")),
    ]
    answered = same_codes(services, LOG, requests)
    assert len(answered) >= 20
    for database, memory in answered:
        assert database == memory  # the same proofs, tiles and (deterministically) signed notes


def test_key_stores_answer_alike(pool: ServicePool) -> None:
    services = (
        KeyServicer(KeyTable(pool), lambda: None),
        KeyServicer(MemoryKeys(lambda: datetime.now(UTC)), lambda: None),
    )
    pb = key_service_pb2
    requests: list[tuple[str, Any]] = [
        ("CreateKey", pb.CreateKeyRequest(name="parity", role="reader")),
        ("CreateKey", pb.CreateKeyRequest(name="parity", role="admin")),
        ("CreateKey", pb.CreateKeyRequest(name="bad name", role="root")),
        ("RevokeKey", pb.RevokeKeyRequest(name="nobody")),
        ("RevokeKey", pb.RevokeKeyRequest(name="parity")),
        ("RevokeKey", pb.RevokeKeyRequest(name="parity")),
    ]
    answered = same_codes(services, KEYS, requests)
    assert len(answered) == 3
    for database, memory in answered:
        key = getattr(database, "key", database)
        assert (key.name, key.role) == (
            getattr(memory, "key", memory).name,
            getattr(memory, "key", memory).role,
        )
    listed = [unary(s, KEYS, "ListKeys", pb.ListKeysRequest())[0] for s in services]
    assert [[(k.name, k.role, k.HasField("revoked_at")) for k in answer.keys] for answer in listed] == [
        [("parity", "reader", True)]
    ] * 2
