"""`auditlog serve`: the gRPC server and Envoy (REST) together until SIGTERM or Ctrl-C.

Both stop cleanly on a signal (exit 0). If either stops on its own, the other is stopped too and the
command exits 1 with a line saying which one, so a supervisor (Docker, systemd, Kubernetes) restarts
the pair instead of leaving half a service running.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import urllib.error
import urllib.request
from types import FrameType

from auditlog.app import Service, create_service
from auditlog.config import load_config
from auditlog.errors import ConfigError
from auditlog.gateway import Gateway, GatewayError, GatewaySettings, start_gateway

_log = logging.getLogger("auditlog")
# How often the pair is checked for a member that stopped on its own.
_WATCH_INTERVAL = 0.5


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _say(message: str) -> None:
    """One line for the operator on stderr (start-up addresses and fatal errors)."""
    print(f"auditlog: {message}", file=sys.stderr, flush=True)  # noqa: T201


def _watch(service: Service, gateway: Gateway, stop: threading.Event) -> str | None:
    """Blocks until a signal (returns None) or until one of the pair stops (returns why)."""
    while not stop.wait(_WATCH_INTERVAL):
        code = gateway.poll()
        if code is not None and not stop.is_set():
            return f"Envoy (REST gateway) exited unexpectedly with code {code}; stopping the gRPC server"
        # wait_for_termination answers True when it timed out, i.e. the server still runs.
        if not service.server.wait_for_termination(0) and not stop.is_set():
            return "the gRPC server stopped unexpectedly; stopping Envoy"
    return None


def serve(args: argparse.Namespace) -> int:
    try:
        config = load_config()
    except ConfigError as err:
        _say(f"configuration error: {err}")
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        service = create_service(config)
    except OSError as err:
        _say(f"cannot start: {err}")
        return 1
    try:
        gateway = start_gateway(GatewaySettings.for_service(config, service.port))
    except (GatewayError, OSError) as err:
        _say(f"cannot start the REST gateway (Envoy) on port {config.http_port}: {err}")
        service.stop()
        return 1
    _say(f"gRPC on port {service.port}, REST on port {gateway.port} (Envoy pid {gateway.pid})")
    failure = _watch(service, gateway, stop)
    if failure is not None:
        _say(failure)
    # The gRPC server drains first, while Envoy still relays the answers of in-flight calls.
    service.stop()
    gateway.stop()
    _log.info("gateway stopped")
    return 1 if failure is not None else 0


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
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "serve":
        return serve(args)
    if args.command == "healthcheck":
        return healthcheck(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
