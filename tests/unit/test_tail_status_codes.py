"""Every status-code path of AuditService.TailEvents, in process (grpc_testing) over the in-memory
log: no database."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest

from audit.v1 import audit_service_pb2 as pb
from auditlog.api.audit_servicer import AuditServicer
from auditlog.api.limits import StreamLimiter
from auditlog.api.tail import TailHub
from auditlog.domain.page_token import PageTokenCodec
from auditlog.sequencer import Sequencer
from auditlog.storage.memory import MemoryLog
from tests.fix_servicers import MEMORY_NOW, append, fields_of, invoke_stream, stream

AUDIT = pb.DESCRIPTOR.services_by_name["AuditService"]


@pytest.fixture
def hub() -> TailHub:
    return TailHub()


@pytest.fixture
def limiter() -> StreamLimiter:
    return StreamLimiter(1, 30)


@pytest.fixture
def service(memory_log: MemoryLog, memory_sequencer: Sequencer, hub: TailHub, limiter: StreamLimiter) -> Any:
    return AuditServicer(
        memory_log,
        memory_sequencer,
        lambda: MEMORY_NOW,
        memory_log,
        PageTokenCodec(bytes(32)),
        tails=hub,
        tail_streams=limiter,
    )


def tail(service: AuditServicer, **fields: Any) -> tuple[list[int], grpc.StatusCode, str]:
    messages, code, details, _ = stream(service, AUDIT, "TailEvents", pb.TailEventsRequest(**fields))
    return [e.sequence for m in messages for e in m.events], code, details


def test_replay_of_stored_events_ends_at_to_sequence(
    service: AuditServicer, memory_sequencer: Sequencer
) -> None:
    append(memory_sequencer, 5)
    assert tail(service, from_sequence=1, to_sequence=3) == ([1, 2, 3], grpc.StatusCode.OK, "")
    assert tail(service, action="2", from_sequence=0, to_sequence=4) == ([2], grpc.StatusCode.OK, "")
    assert tail(service, from_sequence=4, to_sequence=4) == ([4], grpc.StatusCode.OK, "")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"from_sequence": -1}, "from_sequence"),
        ({"risk_level": "extreme"}, "risk_level"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"start_date": "2024-05-02T00:00:00Z", "end_date": "2024-05-01T00:00:00Z"}, "end_date"),
    ],
)
def test_invalid_argument_names_the_field(service: AuditServicer, fields: dict[str, Any], field: str) -> None:
    sequences, code, details = tail(service, **fields)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fields_of(details) == [field] and sequences == []


def test_unavailable_when_the_storage_is_unreachable(service: AuditServicer, memory_log: MemoryLog) -> None:
    memory_log.unavailable = True
    sequences, code, details = tail(service, from_sequence=0)
    assert (sequences, code, details) == (
        [],
        grpc.StatusCode.UNAVAILABLE,
        "the database is unavailable; retry later",
    )


def test_unavailable_when_the_server_drains(
    service: AuditServicer, memory_sequencer: Sequencer, hub: TailHub
) -> None:
    append(memory_sequencer, 2)
    hub.drain()
    sequences, code, details = tail(service, from_sequence=0)
    assert (sequences, code) == ([], grpc.StatusCode.UNAVAILABLE)
    assert details == "the server is shutting down; resume the tail from sequence 0"


def test_resource_exhausted_beyond_the_open_tails_limit(
    service: AuditServicer, limiter: StreamLimiter
) -> None:
    following = invoke_stream(service, AUDIT, "TailEvents", pb.TailEventsRequest())
    deadline = time.monotonic() + 10
    while limiter.open_streams < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert limiter.open_streams == 1
    sequences, code, details = tail(service, from_sequence=0)
    assert (sequences, code) == ([], grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert details == "too many open streams: got 1 open, want fewer; retry later"
    following.cancel()
    deadline = time.monotonic() + 10
    while limiter.open_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert limiter.open_streams == 0  # the cancelled tail gave its place back
