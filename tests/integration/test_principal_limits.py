"""Per-principal bounds (auth on): open streams, export jobs in flight and calls a second, each
answered RESOURCE_EXHAUSTED before any work; a noisy principal reaches its own bound while another
keeps being served."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2, export_service_pb2, export_service_pb2_grpc
from auditlog.app import Service
from auditlog.export.runner import RunnerSettings
from tests.fix_principal import as_principal
from tests.fix_server import append_padded

NOISY = as_principal("auditor", "key:noisy")
QUIET = as_principal("auditor", "key:quiet")


def _refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    return refused.value


def test_a_principal_beyond_its_streams_is_refused_while_another_still_searches(
    principal_service_factory: Callable[..., Service],
) -> None:
    service = principal_service_factory(principal_max_streams=2, max_streams=6)
    target = f"127.0.0.1:{service.port}"
    append_padded(target, 3_000, pad=6_000)  # 18 MB: an unread search stays open (as in test_bounds)
    held: list[object] = []
    for _ in range(2):
        channel = grpc.insecure_channel(target)
        call = audit_service_pb2_grpc.AuditServiceStub(channel).SearchEvents(
            pb.SearchEventsRequest(), metadata=NOISY, timeout=60
        )
        assert len(next(call).events) > 0
        held += [channel, call]
    with grpc.insecure_channel(target) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        refused = _refused(
            lambda: next(stub.SearchEvents(pb.SearchEventsRequest(), metadata=NOISY, timeout=10))
        )
        assert refused.details() == (
            "too many open streams for key:noisy: got 2 open, want at most 2 per caller; retry later"
        )
        # The global bound (6) is far: another principal's search runs to its end.
        events = sum(
            len(m.events) for m in stub.SearchEvents(pb.SearchEventsRequest(), metadata=QUIET, timeout=60)
        )
        assert events == 3_000
    for item in held:
        if isinstance(item, grpc.Channel):
            item.close()


def test_a_principal_beyond_its_export_jobs_is_refused_while_another_still_exports(
    principal_service_factory: Callable[..., Service],
) -> None:
    # No export workers: jobs stay pending, so they stay in flight.
    service = principal_service_factory(
        principal_max_exports=2, max_export_jobs=10, export_settings=RunnerSettings(workers=0)
    )
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        exports = export_service_pb2_grpc.ExportServiceStub(channel)
        request = export_service_pb2.CreateExportRequest(
            export=export_service_pb2.ExportSpec(job_name="all", export_format="csv")
        )
        for _ in range(2):
            assert exports.CreateExport(request, metadata=NOISY, timeout=5).requested_by == "key:noisy"
        refused = _refused(lambda: exports.CreateExport(request, metadata=NOISY, timeout=5))
        assert refused.details() == (
            "too many export jobs for key:noisy: got 2 pending or running, want fewer; retry when one has finished"
        )
        assert exports.CreateExport(request, metadata=QUIET, timeout=5).status == "pending"
        listed = exports.ListExports(export_service_pb2.ListExportsRequest(), timeout=5)
    assert sorted(job.requested_by for job in listed.exports) == ["key:noisy", "key:noisy", "key:quiet"]


def test_a_principal_beyond_its_rate_is_refused_before_any_work_while_another_writes(
    principal_service_factory: Callable[..., Service],
) -> None:
    service = principal_service_factory(principal_rate=5)
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        request = pb.CreateEventRequest(event=event_pb2.EventInput(event_type="noise", action="a"))
        writer = as_principal("writer", "key:noisy")
        answered = refused = 0
        for _ in range(20):  # well within a second on any machine: the burst is 5
            try:
                stub.CreateEvent(request, metadata=writer, timeout=5)
                answered += 1
            except grpc.RpcError as err:
                assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                assert (
                    err.details()
                    == "too many calls from key:noisy: got more than 5 a second, want at most 5; retry later"
                )
                refused += 1
        assert 5 <= answered < 20 and refused > 0
        # Another writer is not held back by the noisy one's bucket.
        other = as_principal("writer", "key:quiet")
        for _ in range(5):
            stub.CreateEvent(request, metadata=other, timeout=5)
        # Refused calls did no work: only the answered ones were recorded.
        total = stub.GetStats(pb.GetStatsRequest(), timeout=5).total_events
        assert total == answered + 5
        time.sleep(1.0)  # the bucket refills
        stub.CreateEvent(request, metadata=writer, timeout=5)
