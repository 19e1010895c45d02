"""Hostile gRPC requests: the client's mistake answers INVALID_ARGUMENT naming what was wrong, never
INTERNAL."""

from __future__ import annotations

import base64
import math
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status

from audit.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    event_pb2,
    export_service_pb2,
    export_service_pb2_grpc,
    health_service_pb2,
    log_service_pb2,
)
from auditlog.export.runner import RunnerSettings
from tests.fix_export import ServiceFactory


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


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand so that it can be wrong."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_details(levels: int) -> bytes:
    """A details Struct of `levels` objects, each the only value of the one above (key "a")."""
    body = b""
    for _ in range(levels - 1):
        body = _field(1, _field(1, b"a") + _field(2, _field(5, body)))  # fields{"a": struct_value}
    return body


def create_event_bytes(details: bytes = b"", event_type: bytes = b"user.login") -> bytes:
    return _field(1, _field(1, event_type) + _field(3, b"login") + _field(6, details))


BAD_VARINT = b"\x08" + b"\xff" * 11
UNDECODABLE = {
    "invalid UTF-8": create_event_bytes(event_type=b"user.\xff\xfe"),
    "truncated": create_event_bytes()[:-3],
    "bad varint": BAD_VARINT,
    "nested past the protobuf limit": create_event_bytes(nested_details(40)),
}


def raw_unary(channel: grpc.Channel, method: str, data: bytes) -> None:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    call(data, timeout=10)


@pytest.mark.parametrize("case", UNDECODABLE)
def test_undecodable_create_event_is_invalid_argument(channel: grpc.Channel, case: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        raw_unary(channel, "/audit.v1.AuditService/CreateEvent", UNDECODABLE[case])
    assert violations(info.value) == {
        "request": "got bytes that are not a valid audit.v1.CreateEventRequest (truncated or malformed "
        "data, invalid UTF-8 text, or nesting too deep), want a well-formed message"
    }


def test_the_bytes_differ_from_a_valid_request_only_where_broken(channel: grpc.Channel) -> None:
    # The hand-made encoding is right: the same bytes, unbroken, record an event.
    data = channel.unary_unary("/audit.v1.AuditService/CreateEvent")(
        create_event_bytes(nested_details(3)), timeout=10
    )
    event = event_pb2.AuditEvent.FromString(data)
    assert event.event_type == "user.login" and dict(event.details) == {"a": {"a": {}}}


def test_details_nested_deeper_than_the_limit_are_a_field_error(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        raw_unary(channel, "/audit.v1.AuditService/CreateEvent", create_event_bytes(nested_details(21)))
    assert violations(info.value) == {
        "event.details": "got objects and lists nested 21 levels deep, want at most 20"
    }
    assert (
        event_pb2.AuditEvent.FromString(
            channel.unary_unary("/audit.v1.AuditService/CreateEvent")(
                create_event_bytes(nested_details(20)), timeout=10
            )
        ).event_type
        == "user.login"
    )
    # A list level counts as one too.
    deep: dict[str, Any] = {}
    cursor: Any = deep
    for _ in range(10):
        cursor["l"] = [{}]
        cursor = cursor["l"][0]
    with pytest.raises(grpc.RpcError) as info:
        audit_service_pb2_grpc.AuditServiceStub(channel).CreateEvent(
            audit_service_pb2.CreateEventRequest(event=event_input(deep))
        )
    assert violations(info.value) == {
        "event.details": "got objects and lists nested 21 levels deep, want at most 20"
    }


SERVICES = [
    audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"],
    export_service_pb2.DESCRIPTOR.services_by_name["ExportService"],
    health_service_pb2.DESCRIPTOR.services_by_name["HealthService"],
    log_service_pb2.DESCRIPTOR.services_by_name["LogService"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
]


@pytest.mark.parametrize("method", [m for s in SERVICES for m in s.methods], ids=lambda m: m.full_name)
def test_every_method_of_every_service_refuses_undecodable_bytes(channel: grpc.Channel, method: Any) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    with pytest.raises(grpc.RpcError) as info:
        if method.client_streaming:
            responses = channel.stream_stream(path)(iter([BAD_VARINT]), timeout=10)
            list(responses)
        elif method.server_streaming:
            list(channel.unary_stream(path)(BAD_VARINT, timeout=10))
        else:
            raw_unary(channel, path, BAD_VARINT)
    assert list(violations(info.value)) == ["request"]
    assert f"not a valid {method.input_type.full_name} " in violations(info.value)["request"]


NOT_ISSUED = "got a token this server did not issue, want a next_page_token from a previous response"


def unsigned(raw: bytes) -> str:
    """A token as they were before they were signed: base64url of JSON."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def seeded(channel: grpc.Channel, events: int, exports: int) -> None:
    audit = audit_service_pb2_grpc.AuditServiceStub(channel)
    audit.AppendEvents(audit_service_pb2.AppendEventsRequest(events=[event_input() for _ in range(events)]))
    export = export_service_pb2_grpc.ExportServiceStub(channel)
    for i in range(exports):
        export.CreateExport(
            export_service_pb2.CreateExportRequest(
                export=export_service_pb2.ExportSpec(job_name=f"job {i}", export_format="csv")
            )
        )


def test_crafted_page_tokens_are_refused_before_they_are_parsed(start_service: ServiceFactory) -> None:
    svc = start_service(settings=RunnerSettings(workers=0))
    with grpc.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        seeded(channel, events=3, exports=3)
        audit = audit_service_pb2_grpc.AuditServiceStub(channel)
        export = export_service_pb2_grpc.ExportServiceStub(channel)
        genuine = audit.ListEvents(audit_service_pb2.ListEventsRequest(page_size=1)).next_page_token
        genuine_export = export.ListExports(
            export_service_pb2.ListExportsRequest(page_size=1)
        ).next_page_token
        assert genuine and genuine_export
        # One character of a genuine token changed (to another of the base64url alphabet).
        middle = len(genuine) // 2
        altered = genuine[:middle] + ("A" if genuine[middle] != "A" else "B") + genuine[middle + 1 :]
        crafted = [
            unsigned(b'{"s":Infinity,"d":true,"f":"x"}'),
            unsigned(b'{"s":1e999,"d":true,"f":"x"}'),
            unsigned(b"[" * 600),
            unsigned(b"[" * 100_000),
            unsigned(b'{"s":1,"d":true,"f":"' + b"0" * 16 + b'"}'),
            altered,
            genuine_export,  # a token of the other list
            "@@@",
        ]
        for token in crafted:
            with pytest.raises(grpc.RpcError) as info:
                audit.ListEvents(audit_service_pb2.ListEventsRequest(page_size=1, page_token=token))
            assert violations(info.value) == {"page_token": NOT_ISSUED}, token[:40]
        for token in [unsigned(b'{"i":123}'), unsigned(b'{"c":"2024-01-01T00:00:00","i":"x"}'), genuine]:
            with pytest.raises(grpc.RpcError) as info:
                export.ListExports(export_service_pb2.ListExportsRequest(page_size=1, page_token=token))
            assert violations(info.value) == {"page_token": NOT_ISSUED}, token[:40]


def test_a_page_token_works_on_every_server_sharing_the_database(start_service: ServiceFactory) -> None:
    first, second = (start_service(settings=RunnerSettings(workers=0)) for _ in range(2))
    with (
        grpc.insecure_channel(f"127.0.0.1:{first.port}") as one,
        grpc.insecure_channel(f"127.0.0.1:{second.port}") as other,
    ):
        seeded(one, events=5, exports=3)
        page = audit_service_pb2_grpc.AuditServiceStub(one).ListEvents(
            audit_service_pb2.ListEventsRequest(page_size=2)
        )
        following = audit_service_pb2_grpc.AuditServiceStub(other).ListEvents(
            audit_service_pb2.ListEventsRequest(page_size=2, page_token=page.next_page_token)
        )
        assert [e.sequence for e in page.events] == [4, 3]
        assert [e.sequence for e in following.events] == [2, 1]
        jobs = export_service_pb2_grpc.ExportServiceStub(one).ListExports(
            export_service_pb2.ListExportsRequest(page_size=2)
        )
        rest = export_service_pb2_grpc.ExportServiceStub(other).ListExports(
            export_service_pb2.ListExportsRequest(page_size=2, page_token=jobs.next_page_token)
        )
        assert [j.job_name for j in [*jobs.exports, *rest.exports]] == ["job 2", "job 1", "job 0"]
