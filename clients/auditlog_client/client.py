"""AuditClient: the audit.v1 API with keyword arguments, Python values and client exceptions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

import grpc
from google.protobuf import struct_pb2

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2
from auditlog_client.errors import error_from_rpc

T = TypeVar("T")


def _call(fn: Callable[[], Any], expected: type[T]) -> T:
    """Runs one stub call, turning grpc.RpcError into the client's exceptions."""
    try:
        response = fn()
    except grpc.RpcError as err:
        raise error_from_rpc(err) from None
    assert isinstance(response, expected)
    return response


def event_input(
    *,
    event_type: str,
    action: str,
    details: Mapping[str, Any] | None = None,
    **fields: str,
) -> event_pb2.EventInput:
    """An EventInput from keyword arguments (user_id=..., risk_level=..., request_id=...)."""
    message = event_pb2.EventInput(event_type=event_type, action=action)
    for name, value in fields.items():
        setattr(message, name, value)
    if details is not None:
        struct = struct_pb2.Struct()
        struct.update(dict(details))
        message.details.CopyFrom(struct)
    return message


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds `authorization: Bearer <key>` to every call."""

    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    def _with_key(self, details: Any) -> _Details:
        return _Details(
            details.method,
            details.timeout,
            [*(details.metadata or ()), self._header],
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_key(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_key(details), request)


class AuditClient:
    """A connection to an auditlog server. Use as a context manager or call close().

    api_key: sent as `authorization: Bearer <key>` on every call (servers with auth required);
    root_certificates: PEM of the CA that signed the server's certificate, for a TLS connection."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 30.0,
        channel: grpc.Channel | None = None,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
    ) -> None:
        if channel is None:
            channel = (
                grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates))
                if root_certificates
                else grpc.insecure_channel(target)
            )
        self._raw_channel = channel
        self._channel = grpc.intercept_channel(channel, _Bearer(api_key)) if api_key else channel
        self._stub = audit_service_pb2_grpc.AuditServiceStub(self._channel)
        self.timeout = timeout

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._raw_channel.close()

    def create_event(
        self, *, event_type: str, action: str, details: Mapping[str, Any] | None = None, **fields: str
    ) -> event_pb2.AuditEvent:
        request = pb.CreateEventRequest(
            event=event_input(event_type=event_type, action=action, details=details, **fields)
        )
        return _call(lambda: self._stub.CreateEvent(request, timeout=self.timeout), event_pb2.AuditEvent)

    def append_events(self, events: list[event_pb2.EventInput]) -> list[event_pb2.AuditEvent]:
        request = pb.AppendEventsRequest(events=events)
        return list(
            _call(
                lambda: self._stub.AppendEvents(request, timeout=self.timeout), pb.AppendEventsResponse
            ).events
        )

    def get_event(self, event_id: str) -> event_pb2.AuditEvent:
        return _call(
            lambda: self._stub.GetEvent(pb.GetEventRequest(id=event_id), timeout=self.timeout),
            event_pb2.AuditEvent,
        )

    def list_events(self, **kwargs: Any) -> pb.ListEventsResponse:
        """Filters and paging as keyword arguments of ListEventsRequest."""
        request = pb.ListEventsRequest(**kwargs)
        return _call(lambda: self._stub.ListEvents(request, timeout=self.timeout), pb.ListEventsResponse)

    def iter_events(self, **filters: Any) -> Iterator[event_pb2.AuditEvent]:
        """Every match, newest first, following page tokens."""
        token = ""
        while True:
            page = self.list_events(page_token=token, page_size=1000, **filters)
            yield from page.events
            token = page.next_page_token
            if not token:
                return

    def search_events(self, **filters: str) -> Iterator[event_pb2.AuditEvent]:
        """Streams every match in ascending sequence order, one event at a time (the server sends
        them several to a message)."""
        stream = self._stub.SearchEvents(pb.SearchEventsRequest(**filters))
        try:
            for message in stream:
                yield from message.events
        except grpc.RpcError as err:
            raise error_from_rpc(err) from None

    def verify_chain(
        self, *, verify_all: bool = False, start_sequence: int | None = None, end_sequence: int | None = None
    ) -> pb.VerifyChainResponse:
        request = pb.VerifyChainRequest(verify_all=verify_all)
        if start_sequence is not None:
            request.start_sequence = start_sequence
        if end_sequence is not None:
            request.end_sequence = end_sequence
        return _call(lambda: self._stub.VerifyChain(request, timeout=None), pb.VerifyChainResponse)

    def get_stats(self) -> pb.GetStatsResponse:
        return _call(
            lambda: self._stub.GetStats(pb.GetStatsRequest(), timeout=self.timeout), pb.GetStatsResponse
        )
