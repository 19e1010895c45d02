"""One error model: every error class of the service answers the status it declares, through a real
gRPC call to a server whose methods are registered as the product registers them (api.decoding's
guarded registrar, which applies api.status's error model to each method; unary and streaming alike), with the
request id sent back; and the storage boundary turns an unreachable database into UnavailableError."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status

import auditlog
from auditlog.api.decoding import guard_handler, guarded
from auditlog.api.drain import CallGate
from auditlog.errors import AuditLogError, FieldViolation, InvalidArgumentError
from auditlog.storage.postgres.database import DATABASE_UNAVAILABLE, create_pool
from auditlog.storage.postgres.reader import EventStore

# Importing every module defines every error class, wherever it lives.
for _module in pkgutil.walk_packages(auditlog.__path__, "auditlog."):
    importlib.import_module(_module.name)


def every_error_class(root: type[AuditLogError] = AuditLogError) -> Iterator[type[AuditLogError]]:
    for cls in root.__subclasses__():
        yield cls
        yield from every_error_class(cls)


ERRORS = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in every_error_class()}
MESSAGE = "the thing is in a state: got X, want Y"


def make(name: str) -> AuditLogError:
    cls = ERRORS[name]
    if issubclass(cls, InvalidArgumentError):
        return cls([FieldViolation("field", "got X, want Y")])
    return cls(MESSAGE)


def _raise(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise make(request.decode())


def _raise_midstream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"first"
    raise make(request.decode())


def _abort(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.PERMISSION_DENIED, "set by the method itself")
    return b""


SERVICE = grpc.method_handlers_generic_handler(
    "t.T",
    {
        "Unary": grpc.unary_unary_rpc_method_handler(_raise),
        "Stream": grpc.unary_stream_rpc_method_handler(_raise_midstream),
        "Abort": grpc.unary_unary_rpc_method_handler(_abort),
    },
)


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    guarded(server, CallGate()).add_generic_rpc_handlers((SERVICE,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    server.stop(None)


def call(channel: grpc.Channel, method: str, name: str, request_id: str = "rid-1") -> grpc.RpcError:
    stub = channel.unary_stream(method) if method == "/t.T/Stream" else channel.unary_unary(method)
    with pytest.raises(grpc.RpcError) as info:
        answer: Any = stub(name.encode(), metadata=[("x-request-id", request_id)], timeout=10)
        if method == "/t.T/Stream":
            assert next(answer) == b"first"
            next(answer)
    return info.value


def test_the_tree_is_found_whole() -> None:
    # The classes the service raises, wherever they are defined: a broken discovery finds fewer.
    assert {
        "auditlog.errors.ShuttingDownError",
        "auditlog.errors.ConfigError",
        "auditlog.export.storage.StorageError",
        "auditlog.export.storage.ExportFileMissingError",
        "auditlog.gateway.GatewayError",
        "auditlog.workers.WorkerError",
    } <= set(ERRORS)


@pytest.mark.parametrize("method", ["/t.T/Unary", "/t.T/Stream"])
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_every_error_class_answers_its_declared_status(channel: grpc.Channel, method: str, name: str) -> None:
    declared = ERRORS[name].code
    err = call(channel, method, name)
    assert err.code().value[0] == declared, code_pb2.Code.Name(declared)
    assert dict(err.trailing_metadata() or ())["x-request-id"] == "rid-1"
    if declared == code_pb2.INTERNAL:
        assert err.details() == "internal error (request id rid-1)"
        return
    assert err.details() == str(make(name))
    status = rpc_status.from_call(err)
    assert status is not None and status.code == declared
    if issubclass(ERRORS[name], InvalidArgumentError):
        request = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(request)
        assert [(v.field, v.description) for v in request.field_violations] == [("field", "got X, want Y")]


def test_a_class_that_declares_no_status_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match="must declare its gRPC status"):

        class UndeclaredError(AuditLogError):
            pass


def test_a_foreign_error_is_internal_with_a_new_request_id_only(channel: grpc.Channel) -> None:
    stub = channel.unary_unary("/t.T/Unary")
    with pytest.raises(grpc.RpcError) as info:
        stub(b"no.such.Error", timeout=10)  # KeyError, carrying the text it was given
    request_id = dict(info.value.trailing_metadata() or ())["x-request-id"]
    assert len(request_id) == 32
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == f"internal error (request id {request_id})"


def test_a_status_the_method_set_itself_stands(channel: grpc.Channel) -> None:
    err = call(channel, "/t.T/Abort", "")
    assert (err.code(), err.details()) == (grpc.StatusCode.PERMISSION_DENIED, "set by the method itself")


def test_the_decode_guard_refuses_through_the_error_model() -> None:
    def echo(request: Any, context: grpc.ServicerContext) -> Any:
        return request

    handler = guard_handler(
        grpc.unary_unary_rpc_method_handler(echo, request_deserializer=code_pb2.Code.Name),
        "/t.T/Guarded",
        CallGate(),
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", {"Guarded": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch, pytest.raises(grpc.RpcError) as info:
            ch.unary_unary("/t.T/Guarded")(b"\xff", timeout=10)
    finally:
        server.stop(None)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("invalid request: request: got bytes that are not a valid")


def test_an_unreachable_database_is_unavailable_at_the_storage_boundary(database_url: str) -> None:
    pool = create_pool(database_url, max_size=2, timeout=0.5)
    pool.close()
    with pytest.raises(AuditLogError) as info:
        EventStore(pool).head()
    assert type(info.value).code == code_pb2.UNAVAILABLE and str(info.value) == DATABASE_UNAVAILABLE
