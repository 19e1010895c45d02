"""AuditClient: the audit.v1 API with keyword arguments, Python values and client exceptions."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.protobuf import struct_pb2

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import (
    audit_service_pb2_grpc,
    event_pb2,
    export_service_pb2,
    export_service_pb2_grpc,
    log_service_pb2,
    log_service_pb2_grpc,
)
from auditlog_client.batch import BatchWriter
from auditlog_client.checkpoints import CheckpointState
from auditlog_client.errors import Unavailable, error_from_rpc
from auditlog_client.verify import SignedCheckpoint, VerificationError, open_checkpoint, parse_verifier_key

# Export job states that will not change any more.
EXPORT_DONE = ("completed", "failed")

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
    root_certificates: PEM of the CA that signed the server's certificate, for a TLS connection;
    verifier_key: the log's key (<name>+<hex>+<base64>), which checkpoint() checks signatures with;
    checkpoint_state: a file keeping the last checkpoint checkpoint() accepted (needs verifier_key)."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 30.0,
        channel: grpc.Channel | None = None,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
        verifier_key: str | None = None,
        checkpoint_state: str | os.PathLike[str] | None = None,
    ) -> None:
        if checkpoint_state is not None and verifier_key is None:
            raise ValueError("checkpoint_state needs verifier_key: the key is what the state is checked with")
        # Parsed now so that a malformed key fails here, not at the first checkpoint().
        self._verifier = None if verifier_key is None else parse_verifier_key(verifier_key)
        self.checkpoint_state = (
            None if checkpoint_state is None else CheckpointState(checkpoint_state, str(verifier_key))
        )
        if channel is None:
            channel = (
                grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates))
                if root_certificates
                else grpc.insecure_channel(target)
            )
        self._raw_channel = channel
        self._channel = grpc.intercept_channel(channel, _Bearer(api_key)) if api_key else channel
        self._stub = audit_service_pb2_grpc.AuditServiceStub(self._channel)
        self._exports = export_service_pb2_grpc.ExportServiceStub(self._channel)
        self._log = log_service_pb2_grpc.LogServiceStub(self._channel)
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

    def head_sequence(self) -> int:
        """The newest event's sequence, -1 for an empty log."""
        page = self.list_events(page_size=1)
        return page.events[0].sequence if page.events else -1

    def tail_events(
        self,
        *,
        from_sequence: int | None = None,
        follow: bool = True,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 5.0,
        filters: Mapping[str, str] | None = None,
    ) -> Iterator[event_pb2.AuditEvent]:
        """The matching events from from_sequence (default: those recorded after this call), in
        sequence order, then each new one as it is recorded. A stream that ends with UNAVAILABLE (a
        server restarting, a network break) is opened again from the sequence after the last event
        yielded, so none is lost or repeated. follow=False: ends at the head as it was at the call.
        filters: those of ListEvents, e.g. {"event_type": "user.login"}."""
        next_sequence = self.head_sequence() + 1 if from_sequence is None else from_sequence
        request = pb.TailEventsRequest()
        for name, value in (filters or {}).items():
            setattr(request, name, value)
        if not follow:
            request.to_sequence = self.head_sequence()
        delay = reconnect_delay
        while True:
            request.from_sequence = next_sequence
            stream = self._stub.TailEvents(request)
            try:
                for message in stream:
                    delay = reconnect_delay
                    for event in message.events:
                        yield event
                        next_sequence = event.sequence + 1
                return  # only a stream with to_sequence ends without an error
            except grpc.RpcError as err:
                error = error_from_rpc(err)
                if not isinstance(error, Unavailable):
                    raise error from None
            finally:
                stream.cancel()
            time.sleep(delay)
            delay = min(max_reconnect_delay, delay * 2)

    def create_export(
        self, *, job_name: str, export_format: str, requested_by: str = "", **filters: str
    ) -> export_service_pb2.ExportJob:
        spec = export_service_pb2.ExportSpec(
            job_name=job_name, export_format=export_format, filters=event_pb2.EventFilter(**filters)
        )
        request = export_service_pb2.CreateExportRequest(export=spec, requested_by=requested_by)
        return _call(
            lambda: self._exports.CreateExport(request, timeout=self.timeout), export_service_pb2.ExportJob
        )

    def get_export(self, job_id: str) -> export_service_pb2.ExportJob:
        request = export_service_pb2.GetExportRequest(id=job_id)
        return _call(
            lambda: self._exports.GetExport(request, timeout=self.timeout), export_service_pb2.ExportJob
        )

    def list_exports(
        self, *, page_size: int = 50, page_token: str = ""
    ) -> export_service_pb2.ListExportsResponse:
        request = export_service_pb2.ListExportsRequest(page_size=page_size, page_token=page_token)
        return _call(
            lambda: self._exports.ListExports(request, timeout=self.timeout),
            export_service_pb2.ListExportsResponse,
        )

    def wait_export(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        interval: float = 0.5,
        on_progress: Callable[[export_service_pb2.ExportJob], None] | None = None,
    ) -> export_service_pb2.ExportJob:
        """The job once completed or failed, polled every interval seconds (on_progress sees each
        poll). TimeoutError when it is still running after timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_export(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.status in EXPORT_DONE:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"export {job_id} is still {job.status} after {timeout} s")
            time.sleep(interval)

    def get_export_download(self, job_id: str) -> export_service_pb2.GetExportDownloadResponse:
        """The completed export's download URL, SHA-256, size and signed manifest."""
        request = export_service_pb2.GetExportDownloadRequest(id=job_id)
        return _call(
            lambda: self._exports.GetExportDownload(request, timeout=self.timeout),
            export_service_pb2.GetExportDownloadResponse,
        )

    def download_export(self, job_id: str) -> Iterator[bytes]:
        """The completed export's file, chunk by chunk."""
        stream = self._exports.DownloadExportContent(
            export_service_pb2.DownloadExportContentRequest(id=job_id)
        )
        try:
            for chunk in stream:
                yield chunk.data
        except grpc.RpcError as err:
            raise error_from_rpc(err) from None
        finally:
            stream.cancel()

    def checkpoint(self) -> SignedCheckpoint:
        """The log's latest checkpoint, its signature checked with verifier_key. With
        checkpoint_state, it is accepted (and stored) only if a consistency proof from the server
        shows it extends the stored one: LogInconsistentError when the server rolled back or forked
        its log, VerificationError for a bad signature; the state file is then left unchanged."""
        if self._verifier is None:
            raise ValueError("checkpoint() needs the client's verifier_key")
        body = _call(
            lambda: self._log.GetCheckpoint(log_service_pb2.GetCheckpointRequest(), timeout=self.timeout),
            httpbody_pb2.HttpBody,
        )
        try:
            note = body.data.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError("the server's checkpoint is not UTF-8 text") from None
        if self.checkpoint_state is None:
            return open_checkpoint(note, self._verifier)
        return self.checkpoint_state.update(note, self._consistency)

    def _consistency(self, first: int, second: int) -> list[bytes]:
        request = log_service_pb2.GetConsistencyProofRequest(first=first, second=second)
        proof = _call(
            lambda: self._log.GetConsistencyProof(request, timeout=self.timeout),
            log_service_pb2.ConsistencyProof,
        )
        return list(proof.hashes)

    def batch_writer(
        self, *, max_events: int = 500, interval: float = 0.2, retry_for: float = 30.0
    ) -> BatchWriter:
        """A BatchWriter over this client's AppendEvents: create() queues, a thread sends."""
        return BatchWriter(self.append_events, max_events=max_events, interval=interval, retry_for=retry_for)
