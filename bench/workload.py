"""The events the benchmark writes: deterministic, varied where the read side filters on them."""

from __future__ import annotations

from google.protobuf import struct_pb2

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import event_pb2

EVENT_TYPES = tuple(
    f"{area}.{verb}"
    for area, verb in (
        ("user", "login"),
        ("user", "logout"),
        ("document", "read"),
        ("document", "update"),
        ("payment", "create"),
        ("payment", "refund"),
        ("role", "grant"),
        ("role", "revoke"),
        ("api_key", "create"),
        ("api_key", "rotate"),
    )
)
RISK_LEVELS = ("low", "medium", "high", "critical")
USERS = 1_000
BATCH = 1_000


def event_input(index: int, request_id: str) -> event_pb2.EventInput:
    """The index-th benchmark event: ten event types, 1,000 users, every risk level."""
    details = struct_pb2.Struct()
    details.update(
        {"path": f"/api/v1/resources/{index % 997}", "status": 200, "bytes": 1_024 + index % 4_096}
    )
    return event_pb2.EventInput(
        event_type=EVENT_TYPES[index % len(EVENT_TYPES)],
        user_id=f"user-{index % USERS:04d}",
        action="performed",
        resource_type="resource",
        resource_id=f"res-{index % 10_007}",
        details=details,
        risk_level=RISK_LEVELS[(index // 7) % len(RISK_LEVELS)],
        ip_address=f"10.0.{index % 256}.{(index // 256) % 256}",
        user_agent="bench-client/1.0 (grpc-python)",
        session_id=f"sess-{index % 50_000:05d}",
        request_id=request_id,
    )


def create_request(index: int, request_id: str) -> pb.CreateEventRequest:
    return pb.CreateEventRequest(event=event_input(index, request_id))


def append_template() -> pb.AppendEventsRequest:
    """A batch of BATCH events; the loader only changes request_id between batches."""
    return pb.AppendEventsRequest(events=[event_input(j, "") for j in range(BATCH)])
