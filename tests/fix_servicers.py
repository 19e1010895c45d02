"""In-process servicers as the server runs them, for grpc_testing (which runs no interceptors)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc_testing
import pytest

from auditlog.api.status import streamed_answer, unary_answer
from auditlog.domain.event import EventRecord, NewEvent
from auditlog.sequencer import Sequencer
from auditlog.storage.memory import MemoryLog

# A call's (response or responses, code, details, trailing metadata).
Call = tuple[Any, grpc.StatusCode, str, Any]

# The time of the in-memory log's clock.
MEMORY_NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


class Mapped:
    """servicer's methods as the server runs them: behind the error model's wrapping (api.status)."""

    def __init__(self, servicer: Any, service: Any) -> None:
        self._servicer = servicer
        self._service = service

    def __getattr__(self, name: str) -> Any:
        wrap = streamed_answer if self._service.methods_by_name[name].server_streaming else unary_answer
        return wrap(getattr(self._servicer, name), name)


def _server(servicer: Any, service: Any) -> Any:
    return grpc_testing.server_from_dictionary(
        {service: Mapped(servicer, service)}, grpc_testing.strict_real_time()
    )


def invoke_unary(servicer: Any, service: Any, method: str, request: Any) -> Any:
    """The unary call in flight (grpc_testing's UnaryUnaryServerRpc), for its initial metadata."""
    return _server(servicer, service).invoke_unary_unary(service.methods_by_name[method], (), request, None)


def unary(servicer: Any, service: Any, method: str, request: Any) -> Call:
    response, trailing, code, details = invoke_unary(servicer, service, method, request).termination()
    return response, code, details, trailing


def invoke_stream(servicer: Any, service: Any, method: str, request: Any) -> Any:
    """The server-streaming call in flight (grpc_testing's UnaryStreamServerRpc)."""
    return _server(servicer, service).invoke_unary_stream(service.methods_by_name[method], (), request, None)


def stream(servicer: Any, service: Any, method: str, request: Any) -> Call:
    rpc = invoke_stream(servicer, service, method, request)
    responses = []
    while True:
        try:
            responses.append(rpc.take_response())
        except ValueError:
            break
    trailing, code, details = rpc.termination()
    return responses, code, details, trailing


def fields_of(details: str) -> list[str]:
    """The fields named in an INVALID_ARGUMENT message ("invalid request: f: got ...; g: got ...")."""
    assert details.startswith("invalid request: ")
    return [part.split(": ")[0] for part in details.removeprefix("invalid request: ").split("; ")]


@pytest.fixture
def memory_log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def memory_sequencer(memory_log: MemoryLog) -> Iterator[Sequencer]:
    """The sequencer of memory_log, its clock at MEMORY_NOW."""
    sequencer = Sequencer(memory_log, clock=lambda: MEMORY_NOW)
    sequencer.start()
    yield sequencer
    sequencer.stop()


def append(sequencer: Sequencer, count: int, **fields: Any) -> list[EventRecord]:
    """count events (action "0", "1", ...) recorded through sequencer."""
    return sequencer.append([NewEvent(event_type="a.b", action=str(i), **fields) for i in range(count)])
