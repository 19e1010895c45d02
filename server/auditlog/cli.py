"""`auditlog serve`: runs the service until SIGTERM or SIGINT, then stops gracefully (exit 0)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from auditlog.app import create_service
from auditlog.config import load_config
from auditlog.errors import ConfigError

_log = logging.getLogger("auditlog")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def serve(args: argparse.Namespace) -> int:
    try:
        config = load_config()
    except ConfigError as err:
        print(f"auditlog: configuration error: {err}", file=sys.stderr)  # noqa: T201
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
        print(f"auditlog: cannot start: {err}", file=sys.stderr)  # noqa: T201
        return 1
    print(f"auditlog: gRPC on port {service.port}", file=sys.stderr, flush=True)  # noqa: T201
    stop.wait()
    service.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auditlog", description="Immutable, verifiable audit-log service.")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default: info)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service until SIGTERM or Ctrl-C")
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
