"""Assembles the service: database, migrations, sequencer, servicers, health and reflection."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from psycopg_pool import ConnectionPool

from audit.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    export_service_pb2,
    export_service_pb2_grpc,
    health_service_pb2,
    health_service_pb2_grpc,
    log_service_pb2,
    log_service_pb2_grpc,
)
from auditlog.api.audit_servicer import AuditServicer
from auditlog.api.decoding import guarded
from auditlog.api.drain import CallGate
from auditlog.api.export_servicer import ExportServicer
from auditlog.api.health import DatabaseMonitor, HealthServicer
from auditlog.api.limits import ByteBudget, CallPool, StreamLimiter
from auditlog.api.log_servicer import LogServicer
from auditlog.api.status import ErrorInterceptor
from auditlog.checkpoints import Checkpointer, create_anchors, load_signer
from auditlog.config import Config
from auditlog.domain.page_token import PageTokenCodec
from auditlog.export.runner import RunnerSettings
from auditlog.export.setup import create_exports
from auditlog.memory import return_large_blocks
from auditlog.sequencer import Sequencer, utc_now
from auditlog.storage.database import Pinger, create_pool
from auditlog.storage.events import EventStore
from auditlog.storage.keys import read_page_token_key
from auditlog.storage.logins import prepare_database
from auditlog.storage.tree import TreeStore
from auditlog.storage.verification_records import VerificationRecords, load_or_create_key

_log = logging.getLogger(__name__)
# How long no new call may arrive before a draining server stops (auditlog.api.drain).
_DRAIN_QUIET_SECONDS = 0.2
SERVICE_NAMES = (
    audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    health_service_pb2.DESCRIPTOR.services_by_name["HealthService"].full_name,
    export_service_pb2.DESCRIPTOR.services_by_name["ExportService"].full_name,
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
        self.gate.close()
        self.gate.wait_quiet(_DRAIN_QUIET_SECONDS, grace)
        stopped = self.server.stop(max(0.0, deadline - time.monotonic()))
        # After the core stopped taking calls: the held ones now answer UNAVAILABLE, not CANCELLED.
        self.gate.release()
        stopped.wait()
        self.streams.stop()
        self.sequencer.stop()
        for callback in self.on_stop:
            callback()
        self.pool.close()
        _log.info("stopped")


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
) -> Service:
    """Builds and starts the gRPC server on config.grpc_port (0: a free port).

    database_url: the runtime login every connection uses (default: from config, see
    auditlog.storage.logins); migration_url: the owner's, for migrations (default: database_url).
    migrate=False: the caller prepared the database already and database_url is the runtime login.
    so_reuseport: share the port with other processes that set it too (the worker processes of
    `auditlog.workers`); off, binding a port in use fails."""
    if migrate or database_url is None:
        url = prepare_database(config, runtime_url=database_url, owner_url=migration_url)
    else:
        url = database_url
    verification_key = load_or_create_key(config.data_dir)
    signer = load_signer(config)
    # Requests of up to 16 MiB are received, parsed and freed: their memory must not stay resident.
    return_large_blocks()
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
        # Every call: request id, logging, and each error as the status its class declares.
        interceptors=[ErrorInterceptor()],
    )
    # Bound before anything starts, so a port in use leaves no pool or threads behind.
    address = f"{config.grpc_host}:{config.grpc_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:  # grpcio's answer when no address could be bound
        raise OSError(f"cannot listen on {address}: in use or not available") from err
    # pool_timeout bounds how long a call waits for a connection while PostgreSQL is down.
    # Streams hold a connection each for their whole life: the pool has max_streams more than
    # unary calls and export workers need, so open streams never starve them.
    pool_size = max(8, max_workers // 2 - 6) + config.max_streams
    pool = create_pool(url, max_size=pool_size, timeout=pool_timeout)
    store = EventStore(pool)
    with pool.connection() as conn:
        tokens = PageTokenCodec(read_page_token_key(conn))
    sequencer = Sequencer(store.writer(), clock=clock)
    stopped = sequencer.check_tail()
    if stopped is not None:
        _log.error("not serving: %s", stopped)
    sequencer.start()
    shutting_down = threading.Event()
    streams = StreamLimiter(config.max_streams, config.stream_idle_seconds)
    streams.start()
    append_bytes = ByteBudget(config.max_append_bytes, "AppendEvents request")
    # Readiness and the health monitor ping on a connection of their own, never a pooled one.
    pinger = Pinger(pool)

    verifications = VerificationRecords(pool, verification_key)
    # AppendEvents on threads of its own: each holds a request of up to 16 MiB, so their number
    # bounds memory, and other calls never wait behind big appends.
    append_pool = CallPool(config.append_threads, config.append_waiting, "AppendEvents", append_bytes)
    # Every service through the stand-in, so a request that does not decode is INVALID_ARGUMENT.
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
            anchored=checkpointer.anchored,
        ),
        services,
    )
    exports = create_exports(config, store, clock=clock, settings=export_settings)
    export_service_pb2_grpc.add_ExportServiceServicer_to_server(
        ExportServicer(exports, store, clock, tokens, streams=streams, max_jobs=config.max_export_jobs),
        services,
    )
    health_service_pb2_grpc.add_HealthServiceServicer_to_server(
        HealthServicer(pinger.ping, shutting_down, sequencer.appends_stopped), services
    )
    log_service_pb2_grpc.add_LogServiceServicer_to_server(
        LogServicer(TreeStore(pool, checkpointer.cache), checkpointer.origin, signer.verifier_key()),
        services,
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, services)
    names = [
        *SERVICE_NAMES,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ]
    reflection.enable_server_reflection(names, services)
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
    _log.info("gRPC listening on %s:%d", config.grpc_host, port)
    exports.runner.start()
    service = Service(
        server, port, pool, store, sequencer, health_servicer, monitor, shutting_down, streams, gate
    )
    service.checkpointer = checkpointer
    service.on_stop.append(checkpointer.stop)
    # Running export jobs stop between rows and return to pending before the pool closes.
    service.on_stop.append(exports.runner.stop)
    service.on_stop.append(pinger.close)
    service.on_stop.append(append_pool.shutdown)
    return service
