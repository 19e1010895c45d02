"""Real Envoy in front of a real gRPC server over a real database, and a small HTTP client for it.

`rest` is module-scoped (one server and one Envoy per test module, over one database that the
module's tests share: they must not assume an empty log). `rest_fresh` is per test, for tests that
break something (the database, the stream).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from auditlog.app import Service, create_service
from auditlog.config import Config
from auditlog.gateway import Gateway, GatewaySettings, start_gateway
from tests.fix_db import create_database, drop_database
from tests.fix_server import append_padded, stop_service

CORS_ORIGIN = "http://localhost:3000"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)


@dataclass(frozen=True)
class RestStack:
    service: Service
    gateway: Gateway
    database_url: str

    @property
    def port(self) -> int:
        return self.gateway.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str:
        """gRPC through Envoy (not the server's own port)."""
        return f"127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = body.encode() if isinstance(body, str) else body
            conn.request(method, path, body=payload, headers=dict(headers or {}))
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def post_json(self, path: str, value: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request(
            "POST", path, json.dumps(value), {"Content-Type": "application/json", **(headers or {})}
        )


@contextmanager
def running_stack(database_url: str, tmp: Path, unary_timeout_seconds: int = 300) -> Iterator[RestStack]:
    config = Config(
        database_url=None,
        data_dir=tmp / "data",
        grpc_host="127.0.0.1",
        grpc_port=0,
        http_port=0,
        cors_origins=(CORS_ORIGIN,),
    )
    service = create_service(config, database_url=database_url, health_interval=0.2)
    try:
        settings = dataclasses.replace(
            GatewaySettings.for_service(config, service.port),
            concurrency=1,
            unary_timeout_seconds=unary_timeout_seconds,
        )
        with (tmp / "envoy.log").open("wb") as envoy_log:
            gateway = start_gateway(settings, stderr=envoy_log)
        try:
            yield RestStack(service, gateway, database_url)
        finally:
            gateway.stop()
    finally:
        stop_service(service, database_url)


@pytest.fixture(scope="module")
def rest(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestStack]:
    url = create_database(admin_url)
    try:
        with running_stack(url, tmp_path_factory.mktemp("rest")) as stack:
            yield stack
    finally:
        drop_database(admin_url, url)


@pytest.fixture
def rest_fresh(database_url: str, tmp_path: Path) -> Iterator[RestStack]:
    with running_stack(database_url, tmp_path) as stack:
        yield stack


class ChunkedStream:
    """A raw HTTP/1.1 GET whose chunked body is read piece by piece, trailers included
    (http.client discards trailers, and a mid-stream gRPC error travels only in them)."""

    def __init__(self, port: int, path: str, receive_buffer: int = 8192) -> None:
        self.sock = socket.socket()
        # A small receive window, so the server feels backpressure while the test reads slowly.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTE: trailers\r\n\r\n".encode())
        self._reader = self.sock.makefile("rb")
        self.status_line = self._reader.readline().strip()
        self.headers = _read_fields(self._reader)
        self.trailers: dict[str, str] = {}
        self.complete = False  # the terminating zero-length chunk arrived

    def chunks(self) -> Iterator[bytes]:
        while True:
            line = self._reader.readline()
            if not line:
                return  # closed without the last chunk: a failure the caller sees too
            size = int(line.strip().split(b";")[0], 16)
            if size == 0:
                self.trailers = _read_fields(self._reader)
                self.complete = True
                return
            data = self._reader.read(size)
            self._reader.readline()
            yield data

    def close(self) -> None:
        self._reader.close()
        self.sock.close()


def _read_fields(reader: Any) -> dict[str, str]:
    fields: dict[str, str] = {}
    while True:
        line = reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return fields
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()


def fill(rest: RestStack, count: int, pad: int) -> None:
    """Large events straight over gRPC (setup, not under test)."""
    append_padded(f"127.0.0.1:{rest.service.port}", count, pad, event_type="bulk.stream")
