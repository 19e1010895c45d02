"""recorded_by: each event records the principal that wrote it, covered by its leaf hash (canonical
form version 2); an export's requested_by is the caller's principal when one is bound."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import psycopg
import pytest

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2, export_service_pb2
from tests.fix_export import download_content, export_stub, wait_for_job
from tests.fix_principal import as_principal


def _event(action: str) -> event_pb2.EventInput:
    return event_pb2.EventInput(event_type="doc.edit", action=action, user_id="u1")


@pytest.fixture
def channel(principal_target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(principal_target) as ch:
        yield ch


def test_each_event_records_its_writer_and_the_chain_verifies(
    channel: grpc.Channel, database_url: str
) -> None:
    stub = audit_service_pb2_grpc.AuditServiceStub(channel)
    one = stub.CreateEvent(
        pb.CreateEventRequest(event=_event("a")), metadata=as_principal("writer", "key:ci")
    )
    many = stub.AppendEvents(
        pb.AppendEventsRequest(events=[_event("b"), _event("c")]),
        metadata=as_principal("admin", "spiffe://x/y"),
    ).events
    anonymous = stub.CreateEvent(pb.CreateEventRequest(event=_event("d")))
    assert [one.recorded_by, *(e.recorded_by for e in many), anonymous.recorded_by] == [
        "key:ci",
        "spiffe://x/y",
        "spiffe://x/y",
        "",
    ]
    assert stub.GetEvent(pb.GetEventRequest(id=one.id)).recorded_by == "key:ci"
    assert stub.VerifyChain(pb.VerifyChainRequest(verify_all=True)).valid
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT recorded_by, canonical_version FROM audit_events ORDER BY sequence"
        ).fetchall()
    assert rows == [("key:ci", 2), ("spiffe://x/y", 2), ("spiffe://x/y", 2), ("", 2)]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET recorded_by = 'key:someone-else' WHERE sequence = 1",
        "UPDATE audit_events SET canonical_version = 1 WHERE sequence = 1",
    ],
    ids=["recorded_by changed", "relabelled 2 to 1"],
)
def test_a_changed_writer_or_version_is_a_leaf_hash_break(
    channel: grpc.Channel, database_url: str, statement: str
) -> None:
    stub = audit_service_pb2_grpc.AuditServiceStub(channel)
    for action in "abc":
        stub.CreateEvent(
            pb.CreateEventRequest(event=_event(action)), metadata=as_principal("writer", "key:w")
        )
    with psycopg.connect(database_url) as conn:
        conn.execute("SET session_replication_role = replica")  # superuser: past the WORM triggers
        conn.execute(statement.encode())
    result = stub.VerifyChain(pb.VerifyChainRequest(verify_all=True))
    assert (result.valid, result.first_bad_sequence, result.break_kind) == (False, 1, pb.BREAK_KIND_LEAF_HASH)


def _create_export(
    channel: grpc.Channel, requested_by: str, principal: str | None
) -> export_service_pb2.ExportJob:
    request = export_service_pb2.CreateExportRequest(
        export=export_service_pb2.ExportSpec(job_name="who", export_format="json"), requested_by=requested_by
    )
    metadata = as_principal("auditor", principal) if principal else None
    job: export_service_pb2.ExportJob = export_stub(channel).CreateExport(
        request, metadata=metadata, timeout=10
    )
    return job


def test_export_requested_by_is_the_callers_principal(channel: grpc.Channel) -> None:
    stub = audit_service_pb2_grpc.AuditServiceStub(channel)
    stub.CreateEvent(pb.CreateEventRequest(event=_event("a")), metadata=as_principal("writer", "key:w"))
    assert _create_export(channel, "", "key:aud").requested_by == "key:aud"
    job = _create_export(channel, "key:aud", "key:aud")
    assert job.requested_by == "key:aud"
    with pytest.raises(grpc.RpcError) as refused:
        _create_export(channel, "someone-else", "key:aud")
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "requested_by: got 'someone-else', want it empty or 'key:aud'" in str(refused.value.details())
    assert _create_export(channel, "tester", None).requested_by == "tester"  # auth off: the request's word
    wait_for_job(channel, job.id)
    data, _, _ = download_content(channel, job.id)
    document = json.loads(data)
    assert document["metadata"]["requested_by"] == "key:aud"
    assert [(e["recorded_by"], e["canonical_version"]) for e in document["events"]] == [("key:w", 2)]
