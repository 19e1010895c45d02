"""A server whose calls run as a principal the caller names (metadata x-test-principal:
"<role> <name>"): a stand-in for the authentication interceptor, so that recorded_by, audited
reads and per-principal limits are tested without it (plugin: tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from auditlog.api.principal import Principal, Role, bind_principal, reset_principal
from auditlog.app import Service, create_service
from auditlog.export.runner import RunnerSettings
from auditlog.gateway import Gateway, GatewaySettings, start_gateway
from tests.fix_db import login_url
from tests.fix_gateway import RestStack
from tests.fix_server import server_config, stop_service

HEADER = "x-test-principal"


def as_principal(role: str, name: str) -> tuple[tuple[str, str]]:
    """Call metadata that makes the call run as name with role."""
    return ((HEADER, f"{role} {name}"),)


def _principal(details: grpc.HandlerCallDetails) -> Principal | None:
    for key, value in details.invocation_metadata or ():
        if key == HEADER:
            role, _, name = str(value).partition(" ")
            return Principal(name, Role(role))
    return None


class PrincipalInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Binds the principal the metadata names around the method, on the thread that runs it."""

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        principal = _principal(details)
        if handler is None or principal is None:
            return handler
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            @functools.wraps(inner)  # keeps experimental_thread_pool (api.limits.CallPool)
            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                token = bind_principal(principal)
                try:
                    return inner(request, context)
                finally:
                    reset_principal(token)

            return handler._replace(unary_unary=unary)
        if handler.unary_stream is not None:
            streamed = handler.unary_stream

            @functools.wraps(streamed)
            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                token = bind_principal(principal)
                try:
                    yield from streamed(request, context)
                finally:
                    reset_principal(token)

            return handler._replace(unary_stream=stream)
        return handler


@pytest.fixture
def principal_service_factory(
    database_url: str, test_login: str, tmp_path: Path
) -> Iterator[Callable[..., Service]]:
    """Starts a service with the principal interceptor; keyword arguments override Config fields
    (export_settings: the export runner's)."""
    started: list[Service] = []

    def start(*, export_settings: RunnerSettings | None = None, **overrides: Any) -> Service:
        config = dataclasses.replace(server_config(tmp_path), **overrides)
        service = create_service(
            config,
            database_url=login_url(database_url, test_login),
            migration_url=database_url,
            health_interval=0.2,
            export_settings=export_settings,
            interceptors=[PrincipalInterceptor()],
        )
        started.append(service)
        return service

    yield start
    for service in started:
        stop_service(service, database_url)


@pytest.fixture
def principal_target(principal_service_factory: Callable[..., Service]) -> str:
    return f"127.0.0.1:{principal_service_factory().port}"


@pytest.fixture
def principal_rest(
    principal_service_factory: Callable[..., Service], database_url: str, tmp_path: Path
) -> Iterator[Callable[..., RestStack]]:
    """Starts Envoy in front of a principal_service_factory service (same keyword arguments); the
    x-test-principal header reaches the server as metadata, as Authorization will."""
    gateways: list[Gateway] = []

    def start(**overrides: Any) -> RestStack:
        service = principal_service_factory(http_port=0, **overrides)
        settings = dataclasses.replace(
            GatewaySettings.for_service(
                dataclasses.replace(server_config(tmp_path), http_port=0), service.port
            ),
            concurrency=1,
        )
        with (tmp_path / "envoy.log").open("ab") as envoy_log:
            gateways.append(start_gateway(settings, stderr=envoy_log))
        return RestStack(service, gateways[-1], database_url)

    yield start
    for gateway in gateways:
        gateway.stop()
