"""`auditlog serve`: the gRPC server and Envoy (REST) together until SIGTERM or Ctrl-C.

Both stop cleanly on a signal (exit 0). If either stops on its own, the other is stopped too and the
command exits 1 with a line saying which one, so a supervisor (Docker, systemd, Kubernetes) restarts
the pair instead of leaving half a service running.

With AUDITLOG_WORKERS=N > 1 the gRPC server runs in N worker processes on one port
(auditlog.workers) and this process supervises them and Envoy by the same rule: a signal stops the
workers (each gracefully), then Envoy, exit 0; any member stopping on its own stops the rest, exit 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psycopg

from auditlog import keys_cli, metrics
from auditlog.access import bootstrap_keys
from auditlog.affinity import cpus_of
from auditlog.app import Service, create_service
from auditlog.config import Config, load_config
from auditlog.errors import AuditLogError, ConfigError
from auditlog.gateway import Gateway, GatewayError, GatewaySettings, start_gateway
from auditlog.logs import use_json
from auditlog.redaction import redact, redact_logging, register
from auditlog.storage.postgres.logins import prepare_database
from auditlog.tuning import settle_server_process
from auditlog.workers import WorkerError, WorkerSet, reserve_port, start_workers, stop_on_signals

_log = logging.getLogger("auditlog")
# How often the pair is checked for a member that stopped on its own.
_WATCH_INTERVAL = 0.5


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    redact_logging()


def _say(message: str) -> None:
    """One line for the operator on stderr (start-up addresses and fatal errors)."""
    print(f"auditlog: {redact(message)}", file=sys.stderr, flush=True)  # noqa: T201


def _watch(service: Service, gateway: Gateway, stop: threading.Event) -> str | None:
    """Blocks until a signal (returns None) or until one of the pair stops (returns why)."""

    def stopped() -> str | None:
        # wait_for_termination answers True when it timed out, i.e. the server still runs.
        running = service.server.wait_for_termination(0)
        return None if running else "the gRPC server stopped unexpectedly; stopping Envoy"

    return _watch_gateway_and(gateway, stop, "the gRPC server", stopped)


def _watch_workers(workers: WorkerSet, gateway: Gateway, stop: threading.Event) -> str | None:
    """As _watch, for the worker processes and Envoy."""

    def exited() -> str | None:
        worker = workers.exited()
        if worker is None:
            return None
        return (
            f"gRPC {worker.name} (pid {worker.pid}) exited unexpectedly with code"
            f" {worker.process.returncode}; stopping the other workers and Envoy"
        )

    return _watch_gateway_and(gateway, stop, "the gRPC workers", exited)


def _watch_gateway_and(
    gateway: Gateway, stop: threading.Event, servers: str, servers_failure: Callable[[], str | None]
) -> str | None:
    """Blocks until a signal (returns None) or until Envoy or the gRPC servers (named servers;
    servers_failure says why they stopped, or None while they run) stop on their own."""
    while not stop.wait(_WATCH_INTERVAL):
        code = gateway.poll()
        if code is not None:
            failure: str | None = (
                f"Envoy (REST gateway) exited unexpectedly with code {code}; stopping {servers}"
            )
        else:
            failure = servers_failure()
        if failure is not None and not stop.is_set():
            return failure
    return None


def serve(args: argparse.Namespace) -> int:
    try:
        config = load_config()
    except ConfigError as err:
        _say(f"configuration error: {err}")
        return 2
    for url in (config.database_url, config.migration_database_url):
        if url:
            register(url)
    if config.log_format == "json":
        use_json()
    stop = stop_on_signals(_log)
    try:
        metrics_dir = metrics.prepare_directory(config.data_dir) if config.metrics else None
    except OSError as err:
        _say(f"cannot start: metrics directory: {err.strerror or err}")
        return 1
    if config.workers > 1:
        return _serve_workers(config, stop, args.log_level, metrics_dir)
    try:
        service = create_service(config, metrics_dir=metrics_dir)
    # A port in use; PostgreSQL unreachable or refusing; a runtime login with too much privilege.
    except (OSError, psycopg.Error, AuditLogError) as err:
        _say(f"cannot start: {err}")
        return 1

    def settle() -> str:
        # After Envoy (and an embedded PostgreSQL) started: a child would inherit the pinning.
        cpu = settle_server_process(config.cpu_affinity, 1)
        pinned = "" if cpu is None else f"; gRPC server pinned to CPU {cpu}"
        stopped = service.sequencer.appends_stopped()
        return pinned if stopped is None else f"{pinned}; NOT SERVING: {stopped}"

    return _serve_behind_gateway(
        config,
        service.port,
        lambda gateway: _watch(service, gateway, stop),
        service.stop,
        settle,
        metrics_dir,
        upstream_port=service.gateway_port,
    )


def _serve_behind_gateway(
    config: Config,
    grpc_port: int,
    watch: Callable[[Gateway], str | None],
    stop_servers: Callable[[], None],
    started: Callable[[], str],
    metrics_dir: Path | None = None,
    upstream_port: int | None = None,
) -> int:
    """Starts Envoy in front of the running gRPC server(s) on grpc_port, says so (with what
    started() adds, once Envoy runs), watches, then stops the servers and Envoy in that order; the
    exit code of `auditlog serve`. If Envoy cannot start, the servers are stopped at once.
    metrics_dir: the servers' metrics, served on loopback for Envoy's GET /metrics (None: off).
    upstream_port: where Envoy reaches the servers, when not grpc_port (a plain loopback port beside TLS)."""
    exporter = None
    try:
        exporter = metrics.serve_metrics(metrics_dir) if metrics_dir is not None else None
        gateway = _start_gateway(
            config, upstream_port or grpc_port, None if exporter is None else exporter.server_port
        )
    except OSError as err:
        _say(f"cannot start the metrics endpoint: {err.strerror or err}")
        gateway = None
    if gateway is None:
        stop_servers()
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        return 1
    _say(
        f"gRPC on port {grpc_port}, REST on port {gateway.port} (Envoy pid {gateway.pid});"
        f" auth {config.access.auth}{started()}"
    )
    failure = watch(gateway)
    if failure is not None:
        _say(failure)
    # The gRPC servers drain first, while Envoy still relays the answers of in-flight calls.
    stop_servers()
    gateway.stop()
    _log.info("gateway stopped")
    if exporter is not None:
        exporter.shutdown()
        exporter.server_close()
    return 1 if failure is not None else 0


def _start_gateway(config: Config, grpc_port: int, metrics_port: int | None = None) -> Gateway | None:
    """Envoy in front of grpc_port (and of the metrics endpoint on metrics_port), or None (with the
    reason said) when it cannot start."""
    try:
        return start_gateway(GatewaySettings.for_service(config, grpc_port, metrics_port))
    except (GatewayError, OSError) as err:
        _say(f"cannot start the REST gateway (Envoy) on port {config.http_port}: {err}")
        return None


def _serve_workers(config: Config, stop: threading.Event, log_level: str, metrics_dir: Path | None) -> int:
    """serve() with config.workers gRPC server processes on one port."""
    if config.access.grpc_tls:
        # Envoy would need a loopback port shared by every worker; not built yet.
        _say("configuration error: GRPC_TLS_CERT_FILE: got TLS with AUDITLOG_WORKERS > 1, want one of them")
        return 2
    try:
        reserved = reserve_port(config.grpc_host, config.grpc_port)
    except OSError as err:
        _say(f"cannot start: {err}")
        return 1
    with reserved:
        try:
            # Once here, not per worker: the embedded PostgreSQL starts once, migrations apply once.
            database_url = prepare_database(config)
            bootstrap_keys(database_url, config.access, config.data_dir)
            workers = start_workers(
                replace(config, grpc_port=reserved.port),
                config.workers,
                database_url=database_url,
                log_level=log_level,
                metrics_dir=metrics_dir,
            )
        except (WorkerError, OSError, psycopg.Error, ConfigError) as err:
            _say(f"cannot start: {err}")
            return 1

        def started() -> str:
            said = f"; {config.workers} gRPC worker processes, pids {', '.join(map(str, workers.pids))}"
            pinned = cpus_of(config.cpu_affinity, config.workers)
            return f"{said}; pinned to CPUs {', '.join(map(str, pinned))}" if pinned else said

        def stop_workers() -> None:
            workers.stop()
            _log.info("gRPC workers stopped")

        return _serve_behind_gateway(
            config,
            reserved.port,
            lambda gateway: _watch_workers(workers, gateway, stop),
            stop_workers,
            started,
            metrics_dir,
        )


def healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when GET /health/ready on this host's HTTP_PORT answers 200 (container health checks
    run it: the image has no curl)."""
    try:
        config = load_config()
    except ConfigError as err:
        _say(f"configuration error: {err}")
        return 2
    url = f"http://127.0.0.1:{config.http_port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as reply:
            return 0 if reply.status == 200 else 1
    except (urllib.error.URLError, OSError) as err:
        _say(f"not ready: {url}: {err}")
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auditlog", description="Immutable, verifiable audit-log service.")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default: info)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve",
        help="run the gRPC server (GRPC_PORT) and the REST gateway (HTTP_PORT) until SIGTERM or Ctrl-C",
    )
    check = commands.add_parser(
        "healthcheck", help="exit 0 when the running service is ready (GET /health/ready)"
    )
    check.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for the answer (default: 3)"
    )
    keys_cli.add_parser(commands)
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "serve":
        return serve(args)
    if args.command == "healthcheck":
        return healthcheck(args)
    if args.command == "keys":
        return keys_cli.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
