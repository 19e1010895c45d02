"""Bench-only no-op RPCs the size of the real ones, registered only by the bench server process.

`/bench.Echo/CreateEvent` parses a CreateEventRequest and answers with a prepared AuditEvent of the
size CreateEvent returns; `/bench.Echo/SearchEvents` parses a SearchEventsRequest and streams that
AuditEvent as many times as the `x-bench-count` metadata asks, in SearchEventsResponse messages of
as many events as SearchEvents puts in one (SEARCH_MESSAGE_EVENTS; the last one holds the rest).
Both are the gRPC framework's own cost (HTTP/2, thread pool, protobuf parsing and serialisation)
with no work behind it. They are not part of the product API.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import event_pb2
from auditlog.api.audit_servicer import SEARCH_MESSAGE_EVENTS
from auditlog.app import Service
from bench.workload import create_request

ECHO_METHOD = "/bench.Echo/CreateEvent"
ECHO_STREAM_METHOD = "/bench.Echo/SearchEvents"
COUNT_METADATA = "x-bench-count"


def sample_response() -> event_pb2.AuditEvent:
    """An AuditEvent with every field filled as CreateEvent fills it."""
    event = create_request(123_456, "echo-0000000000").event
    response = event_pb2.AuditEvent(
        id="0b7c4a56-6a35-4c55-9d5a-7c0f1e9d2b11",
        sequence=123_456,
        event_type=event.event_type,
        user_id=event.user_id,
        action=event.action,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        risk_level=event.risk_level,
        ip_address=event.ip_address,
        user_agent=event.user_agent,
        session_id=event.session_id,
        request_id=event.request_id,
        leaf_hash="ab" * 32,
        prev_hash="cd" * 32,
        chain_hash="ef" * 32,
    )
    response.details.CopyFrom(event.details)
    response.recorded_at.GetCurrentTime()
    return response


def create_event_method(behaviour: Any) -> grpc.RpcMethodHandler:
    """A unary method handler that reads a CreateEventRequest and answers an AuditEvent, as
    CreateEvent does (behaviour: a function, or a coroutine function for an asyncio server)."""
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=pb.CreateEventRequest.FromString,
        response_serializer=event_pb2.AuditEvent.SerializeToString,
    )


def echo_handler() -> grpc.GenericRpcHandler:
    response = sample_response()

    def create_event(request: pb.CreateEventRequest, context: Any) -> event_pb2.AuditEvent:
        return response

    full = pb.SearchEventsResponse(events=[response] * SEARCH_MESSAGE_EVENTS)

    def search_events(request: pb.SearchEventsRequest, context: Any) -> Iterator[pb.SearchEventsResponse]:
        count = int(dict(context.invocation_metadata()).get(COUNT_METADATA, "0"))
        messages, rest = divmod(count, SEARCH_MESSAGE_EVENTS)
        for _ in range(messages):
            yield full
        if rest:
            yield pb.SearchEventsResponse(events=[response] * rest)

    handlers = {
        "CreateEvent": create_event_method(create_event),
        "SearchEvents": grpc.unary_stream_rpc_method_handler(
            search_events,
            request_deserializer=pb.SearchEventsRequest.FromString,
            response_serializer=pb.SearchEventsResponse.SerializeToString,
        ),
    }
    generic: grpc.GenericRpcHandler = grpc.method_handlers_generic_handler("bench.Echo", handlers)
    return generic


def serve_echo(service: Service) -> None:
    """Adds the no-op RPCs to a started service (generic handlers are looked up per call, so one
    added after start serves at once). A module-level function: worker processes get it by name."""
    service.server.add_generic_rpc_handlers((echo_handler(),))
