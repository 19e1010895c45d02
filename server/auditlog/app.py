"""Assembles the service: database, migrations, sequencer, servicers, health and reflection."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from psycopg_pool import ConnectionPool

from audit.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    export_service_pb2,
    export_service_pb2_grpc,
    health_service_pb2,
    health_service_pb2_grpc,
    key_service_pb2,
    key_service_pb2_grpc,
    log_service_pb2,
    log_service_pb2_grpc,
)
from auditlog import metrics, tracing
from auditlog.access import AccessConfig, bootstrap_keys, server_credentials
from auditlog.api.audit_servicer import AuditServicer
from auditlog.api.auth import Authenticator, AuthInterceptor, KeyCache
from auditlog.api.decoding import guarded
from auditlog.api.download_urls import DownloadSigner
from auditlog.api.drain import CallGate
from auditlog.api.export_servicer import ExportServicer
from auditlog.api.health import DatabaseMonitor, HealthServicer
from auditlog.api.key_servicer import KeyServicer
from auditlog.api.limits import ByteBudget, CallPool, StreamLimiter
from auditlog.api.log_servicer import LogServicer
from auditlog.api.principal_limits import PrincipalLimitInterceptor, PrincipalLimits
from auditlog.api.read_audit import ReadAuditor
from auditlog.api.reflection import enable_reflection
from auditlog.api.tail import TailHub
from auditlog.checkpoints import Checkpointer, create_anchors, load_signer
from auditlog.config import Config
from auditlog.domain.page_token import PageTokenCodec
from auditlog.export.evidence import ExportEvidence
from auditlog.export.runner import RunnerSettings
from auditlog.export.setup import create_exports
from auditlog.memory import return_large_blocks
from auditlog.sequencer import Sequencer, utc_now
from auditlog.storage.postgres.api_keys import KeyTable
from auditlog.storage.postgres.database import Pinger, create_pool
from auditlog.storage.postgres.head_listener import HeadListener
from auditlog.storage.postgres.keys import read_page_token_key
from auditlog.storage.postgres.logins import prepare_database
from auditlog.storage.postgres.reader import EventStore
from auditlog.storage.postgres.tree import TreeStore
from auditlog.storage.postgres.verification_records import VerificationRecords, load_or_create_key

_log = logging.getLogger(__name__)
# How long no new call may arrive before a draining server stops (auditlog.api.drain).
_DRAIN_QUIET_SECONDS = 0.2
SERVICE_NAMES = (
    audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    health_service_pb2.DESCRIPTOR.services_by_name["HealthService"].full_name,
    export_service_pb2.DESCRIPTOR.services_by_name["ExportService"].full_name,
    key_service_pb2.DESCRIPTOR.services_by_name["KeyService"].full_name,
    log_service_pb2.DESCRIPTOR.services_by_name["LogService"].full_name,
)


@dataclass
class Service:
    """A running service; `stop()` shuts it down gracefully."""

    server: grpc.Server
    port: int
    pool: ConnectionPool
    store: EventStore
    sequencer: Sequencer
    health: health.HealthServicer
    monitor: DatabaseMonitor
    shutting_down: threading.Event
    streams: StreamLimiter
    gate: CallGate
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # Where Envoy reaches the server: a loopback port without TLS when the gRPC port has TLS.
    gateway_port: int = 0
    # Run as draining starts, before in-flight calls are waited for (live tails end at once).
    on_drain: list[Callable[[], None]] = field(default_factory=list)
    reads: ReadAuditor | None = None
    checkpointer: Checkpointer | None = None

    def stop(self, grace: float = 10.0) -> None:
        """NOT_SERVING, new calls answer UNAVAILABLE, in-flight calls finish (up to grace seconds in
        all), the server stops, the sequencer drains, then the pool closes."""
        if self.shutting_down.is_set():
            return
        self.shutting_down.set()
        _log.info("shutting down")
        deadline = time.monotonic() + grace
        self.monitor.stop()
        self.health.enter_graceful_shutdown()
        for callback in self.on_drain:
            callback()
        self.gate.close()
        self.gate.wait_quiet(_DRAIN_QUIET_SECONDS, grace)
        stopped = self.server.stop(max(0.0, deadline - time.monotonic()))
        # After the core stopped taking calls: the held ones now answer UNAVAILABLE, not CANCELLED.
        self.gate.release()
        stopped.wait()
        self.streams.stop()
        if self.reads is not None:
            self.reads.stop()  # no call runs now: every audited read is appended before the sequencer stops
        self.sequencer.stop()
        for callback in self.on_stop:
            callback()
        self.pool.close()
        _log.info("stopped")


def _interceptors(
    config: Config,
    access: AccessConfig,
    authenticator: Authenticator,
    extra: Sequence[grpc.ServerInterceptor],
) -> list[grpc.ServerInterceptor] | None:
    """What runs around every call: nothing with auth and tracing off (an interceptor costs every
    call)."""
    chain = [AuthInterceptor(authenticator)] if access.required else []
    chain += extra
    if chain:
        chain.append(
            PrincipalLimitInterceptor(PrincipalLimits(config.principal_max_streams, config.principal_rate))
        )
    chain = [*tracing.server_interceptors(), *chain]
    return chain or None


def create_service(
    config: Config,
    *,
    database_url: str | None = None,
    migration_url: str | None = None,
    migrate: bool = True,
    clock: Callable[[], datetime] = utc_now,
    max_workers: int = 32,
    health_interval: float = 1.0,
    export_settings: RunnerSettings | None = None,
    pool_timeout: float = 5.0,
    so_reuseport: bool = False,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    metrics_dir: Path | None = None,
) -> Service:
    """Builds and starts the gRPC server on config.grpc_port (0: a free port).

    database_url: the runtime login every connection uses (default: from config, see
    auditlog.storage.postgres.logins); migration_url: the owner's, for migrations (default: database_url).
    migrate=False: the caller prepared the database already and database_url is the runtime login.
    so_reuseport: share the port with other processes that set it too (the worker processes of
    `auditlog.workers`); off, binding a port in use fails. interceptors: run after authentication,
    e.g. one binding the call's principal (api.principal) in tests.
    metrics_dir: where this process writes its metrics when config.metrics is on (auditlog.metrics;
    `auditlog serve` prepares it); None: no metrics."""
    if migrate or database_url is None:
        url = prepare_database(config, runtime_url=database_url, owner_url=migration_url)
        # Here, not in worker processes (migrate=False): their supervisor does it once.
        bootstrap_keys(url, config.access, config.data_dir)
    else:
        url = database_url
    verification_key = load_or_create_key(config.data_dir)
    if config.metrics and metrics_dir is not None:
        metrics.enable(metrics_dir)
    stop_tracing = tracing.configure(config.otlp_endpoint)
    signer = load_signer(config)
    # Requests of up to 16 MiB are received, parsed and freed: their memory must not stay resident.
    return_large_blocks()
    access = config.access
    authenticator = Authenticator(dict(access.tls_roles))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.so_reuseport", int(so_reuseport)),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            # Off, a stream's window stays at 64 KiB until its call receives: calls waiting for a
            # thread do not buffer their whole request in the transport.
            ("grpc.http2.bdp_probe", 0),
            # Above the gateway's header bound, so Envoy answers oversized headers (431), not gRPC.
            ("grpc.max_metadata_size", 96 * 1024),
            ("grpc.absolute_max_metadata_size", 128 * 1024),
        ],
        # The trace span outermost (when tracing), then credentials and role (with auth on), then
        # per-principal bounds, which read the principal authentication bound. Errors are mapped per
        # method at registration (api.decoding), inside all of them.
        interceptors=_interceptors(config, access, authenticator, interceptors),
    )
    # Bound before anything starts, so a port in use leaves no pool or threads behind.
    address = f"{config.grpc_host}:{config.grpc_port}"
    try:
        if access.grpc_tls:
            port = server.add_secure_port(address, server_credentials(access))
            gateway_port = server.add_insecure_port("127.0.0.1:0")
        else:
            port = gateway_port = server.add_insecure_port(address)
    except RuntimeError as err:  # grpcio's answer when no address could be bound
        raise OSError(f"cannot listen on {address}: in use or not available") from err
    # pool_timeout bounds how long a call waits for a connection while PostgreSQL is down.
    # Streams hold a connection each for their whole life: the pool has max_streams more than
    # unary calls and export workers need, so open streams never starve them.
    pool_size = max(8, max_workers // 2 - 6) + config.max_streams
    pool = create_pool(url, max_size=pool_size, timeout=pool_timeout)
    store = EventStore(pool)
    with pool.connection() as conn:
        page_token_key = read_page_token_key(conn)
    tokens = PageTokenCodec(page_token_key)
    keys = KeyCache(pool) if access.required else None
    authenticator.keys = keys
    sequencer = Sequencer(store.writer(), clock=clock)
    stopped = sequencer.check_tail()
    if stopped is not None:
        _log.error("not serving: %s", stopped)
    sequencer.start()
    reads = ReadAuditor(sequencer, enabled=config.audit_reads)
    reads.start()
    if metrics.enabled():
        metrics.head_known(store.head().sequence)
    sampler = metrics.Sampler(pool)
    sampler.start()
    shutting_down = threading.Event()
    streams = StreamLimiter(config.max_streams, config.stream_idle_seconds)
    streams.start()
    append_bytes = ByteBudget(config.max_append_bytes, "AppendEvents request")
    # Readiness and the health monitor ping on a connection of their own, never a pooled one.
    pinger = Pinger(pool)

    verifications = VerificationRecords(pool, verification_key)
    # Live tails: one LISTEN connection for the process, its own bound on open tails.
    tails = TailHub()
    head_listener = HeadListener(pool, tails)
    head_listener.start()
    tail_streams = StreamLimiter(config.max_tails, config.stream_idle_seconds)
    tail_streams.start()
    if metrics.enabled():
        # The newest whole-log result of an earlier run, until this one verifies.
        whole = verifications.latest().whole
        if whole is not None:
            metrics.verification_recorded(whole.valid, True, whole.verified_at.timestamp())
    # AppendEvents on threads of its own: each holds a request of up to 16 MiB, so their number
    # bounds memory, and other calls never wait behind big appends.
    append_pool = CallPool(config.append_threads, config.append_waiting, "AppendEvents", append_bytes)
    # Every service through the stand-in: a request that does not decode is INVALID_ARGUMENT, and
    # every error becomes the status its class declares (api.decoding, api.status).
    gate = CallGate()
    services = guarded(server, gate, {f"/{SERVICE_NAMES[0]}/AppendEvents": append_pool})
    checkpointer = Checkpointer(
        pool, signer, create_anchors(config), interval=config.checkpoint_interval, clock=clock
    )
    audit_service_pb2_grpc.add_AuditServiceServicer_to_server(
        AuditServicer(
            store,
            sequencer,
            clock,
            verifications,
            tokens,
            streams=streams,
            append_bytes=append_bytes,
            tails=tails,
            tail_streams=tail_streams,
            reads=reads,
            anchored=checkpointer.anchored,
        ),
        services,
    )
    exports = create_exports(
        config,
        store,
        clock=clock,
        settings=export_settings,
        evidence=ExportEvidence(pool, signer, wait=10 + 2 * config.checkpoint_interval),
    )
    export_service_pb2_grpc.add_ExportServiceServicer_to_server(
        ExportServicer(
            exports,
            store,
            clock,
            tokens,
            streams=streams,
            max_jobs=config.max_export_jobs,
            max_jobs_per_principal=config.principal_max_exports,
            signer=DownloadSigner(page_token_key, timedelta(seconds=config.export_url_expiry), clock),
            reads=reads,
        ),
        services,
    )
    health_service_pb2_grpc.add_HealthServiceServicer_to_server(
        HealthServicer(pinger.ping, shutting_down, sequencer.appends_stopped), services
    )
    key_service_pb2_grpc.add_KeyServiceServicer_to_server(
        KeyServicer(KeyTable(pool), keys.refresh if keys is not None else None), services
    )
    log_service_pb2_grpc.add_LogServiceServicer_to_server(
        LogServicer(TreeStore(pool, checkpointer.cache), checkpointer.origin, signer.verifier_key()),
        services,
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, services)
    enable_reflection([*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], services)
    monitor = DatabaseMonitor(
        pinger.ping,
        health_servicer,
        SERVICE_NAMES,
        interval=health_interval,
        problem=sequencer.appends_stopped,
        # Back from an outage: broken pooled connections are replaced now, not at the next back-off step.
        on_recovered=pool.check,
    )
    monitor.start()

    _log.info("log origin %s, checkpoint verifier key %s", checkpointer.origin, signer.verifier_key())
    checkpointer.start()
    server.start()
    _log.info(
        "gRPC listening on %s:%d (%s); auth %s",
        config.grpc_host,
        port,
        "mutual TLS" if access.mutual_tls else "TLS" if access.grpc_tls else "no TLS",
        access.auth,
    )
    if keys is not None:
        keys.start()
    exports.runner.start()
    service = Service(
        server,
        port,
        pool,
        store,
        sequencer,
        health_servicer,
        monitor,
        shutting_down,
        streams,
        gate,
        reads=reads,
    )
    service.gateway_port = gateway_port
    service.checkpointer = checkpointer
    service.on_stop.append(checkpointer.stop)
    # Running export jobs stop between rows and return to pending before the pool closes.
    service.on_stop.append(exports.runner.stop)
    service.on_stop.append(pinger.close)
    service.on_stop.append(append_pool.shutdown)
    if keys is not None:
        service.on_stop.append(keys.stop)
    service.on_drain.append(tails.drain)
    service.on_stop.append(tail_streams.stop)
    service.on_stop.append(head_listener.stop)
    service.on_stop.insert(0, sampler.stop)
    if stop_tracing is not None:
        service.on_stop.append(stop_tracing)
    return service
