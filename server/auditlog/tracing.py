"""OpenTelemetry traces, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (Config.otlp_endpoint).

Each gRPC call gets a server span (opentelemetry-instrumentation-grpc's interceptor); an append's
sequencer batch gets a span linked to the span of every call it serves (one batch commits many
calls), and the batch's database transaction a child span of it. The OTLP exporter reads the
standard `OTEL_EXPORTER_OTLP_*` and `OTEL_SERVICE_NAME` variables itself. Unset, nothing of
OpenTelemetry is imported and every hook here is a check of one global.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanContext, Tracer

_provider: TracerProvider | None = None
_tracer: Tracer | None = None


def configure(otlp_endpoint: str | None) -> Callable[[], None] | None:
    """Installs an OTLP-exporting tracer provider in this process when otlp_endpoint is set and
    none is installed yet; returns what flushes and stops it (None when nothing was installed)."""
    if otlp_endpoint is None or _provider is not None:
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "auditlog"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)

    def stop() -> None:
        install(None)
        provider.shutdown()

    return stop


def install(provider: TracerProvider | None) -> None:
    """Traces to provider from now on (None: no tracing). Services created afterwards trace their calls."""
    global _provider, _tracer
    _provider = provider
    _tracer = None if provider is None else provider.get_tracer("auditlog")


def active() -> bool:
    return _tracer is not None


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """The gRPC server span interceptor while tracing, else nothing. It runs outside the error
    mapping (applied to each method at registration), so a failed call's span carries its status."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import server_interceptor

    return [_KeepThreadPool(server_interceptor(tracer_provider=_provider))]  # type: ignore[no-untyped-call]


class _KeepThreadPool(grpc.ServerInterceptor):  # type: ignore[misc]
    """inner, with each method still run on the thread pool its behaviour names (api.limits.CallPool),
    which the instrumentation's wrapping would drop."""

    def __init__(self, inner: grpc.ServerInterceptor) -> None:
        self._inner = inner

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        original: list[grpc.RpcMethodHandler | None] = []

        def remembered(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            handler = continuation(details)
            original.append(handler)
            return handler

        wrapped = self._inner.intercept_service(remembered, handler_call_details)
        if wrapped is None or not original or original[0] is None:
            return wrapped
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            pool = getattr(getattr(original[0], kind), "experimental_thread_pool", None)
            behaviour = getattr(wrapped, kind)
            if pool is not None and behaviour is not None:
                setattr(behaviour, "experimental_thread_pool", pool)  # noqa: B010 - an attribute grpcio reads
        return wrapped


def caller() -> SpanContext | None:
    """The current span's context, to link a batch to (None while not tracing)."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return context if context.is_valid else None


@contextlib.contextmanager
def span(
    name: str, attributes: dict[str, Any] | None = None, links: Sequence[SpanContext | None] = ()
) -> Iterator[None]:
    """A span (current inside the block) linked to links, or nothing while not tracing."""
    tracer = _tracer
    if tracer is None:
        yield
        return
    from opentelemetry.trace import Link

    with tracer.start_as_current_span(
        name, attributes=attributes, links=[Link(c) for c in links if c is not None]
    ):
        yield
