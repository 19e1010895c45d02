"""AUDITLOG_LOG_FORMAT=json: `auditlog serve` (and each worker) logs one JSON object a line, and a
line logged while serving a call carries that call's request id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from tests.fix_serve import Serve, serve_env, start_serve, wait_until


@pytest.fixture
def started(database_url: str, tmp_path: Path) -> Iterator[Serve]:
    env = serve_env(database_url, tmp_path, AUDITLOG_WORKERS="2", AUDITLOG_LOG_FORMAT="json")
    serve = start_serve(env, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        yield serve
    finally:
        serve.process.terminate()
        serve.process.wait(30)


def json_lines(serve: Serve) -> list[dict[str, Any]]:
    # Envoy's own log and the operator lines (`auditlog: ...`) share the stream; ours start with {.
    return [json.loads(line) for line in serve.output().splitlines() if line.startswith("{")]


def test_log_lines_are_json_with_the_request_id(started: Serve) -> None:
    missing = str(uuid.uuid4())
    with grpc.insecure_channel(f"127.0.0.1:{started.grpc_port}") as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        with pytest.raises(grpc.RpcError) as given:
            stub.GetEvent(
                audit_service_pb2.GetEventRequest(id=missing), metadata=[("x-request-id", "trace-me-42")]
            )
        assert given.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as made:
            stub.GetEvent(audit_service_pb2.GetEventRequest(id=missing))
        answered = dict(made.value.trailing_metadata() or ())["x-request-id"]

    def logged(request_id: str) -> list[dict[str, Any]]:
        return [entry for entry in json_lines(started) if entry.get("request_id") == request_id]

    wait_until(lambda: logged("trace-me-42") and logged(answered), timeout=10)
    for request_id in ("trace-me-42", answered):
        (entry,) = logged(request_id)
        assert entry["level"] == "info"
        assert entry["logger"] == "auditlog.rpc"
        assert "code=NOT_FOUND" in entry["message"]
        assert entry["process"] in {"worker-1", "worker-2"}
        assert entry["time"].endswith("+00:00")
    # Start-up lines of the parent and of both workers are JSON too (the parent's have no process).
    entries = json_lines(started)
    assert {e.get("process") for e in entries} >= {None, "worker-1", "worker-2"}
    assert all(set(e) >= {"time", "level", "logger", "message"} for e in entries)
