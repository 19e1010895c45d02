"""Hostile gRPC requests: the client's mistake answers INVALID_ARGUMENT naming what was wrong, never
INTERNAL."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from audit.v1 import audit_service_pb2, audit_service_pb2_grpc, event_pb2


def violations(err: grpc.RpcError) -> dict[str, str]:
    assert isinstance(err, grpc.Call)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    status = rpc_status.from_call(err)
    assert status is not None
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def event_input(details: dict[str, Any] | None = None) -> event_pb2.EventInput:
    message = event_pb2.EventInput(event_type="user.login", action="login")
    if details is not None:
        struct = struct_pb2.Struct()
        struct.update(details)
        message.details.CopyFrom(struct)
    return message


@pytest.mark.parametrize(
    ("number", "shown"), [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")]
)
def test_non_finite_numbers_in_details_are_refused_by_path(
    stub: audit_service_pb2_grpc.AuditServiceStub, number: float, shown: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateEvent(audit_service_pb2.CreateEventRequest(event=event_input({"a": {"b": number}})))
    assert violations(info.value) == {"event.details.a.b": f"got {shown}, want a finite number"}

    events = [event_input({"n": i}) for i in range(3)] + [event_input({"x": [1, -0.0, number]})]
    with pytest.raises(grpc.RpcError) as info:
        stub.AppendEvents(audit_service_pb2.AppendEventsRequest(events=events))
    assert violations(info.value) == {"events[3].details.x[2]": f"got {shown}, want a finite number"}
    # Nothing was written.
    assert stub.GetStats(audit_service_pb2.GetStatsRequest()).total_events == 0
