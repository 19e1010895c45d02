"""The server under test, in its own process: the product service plus the bench-only echo RPC.

With --workers N > 1 this process starts N worker processes on one port as `auditlog serve` does
with AUDITLOG_WORKERS=N (auditlog.workers), each serving the echo RPC too, and only supervises them.
With --model aio it serves only CreateEvent and the echo RPC on an asyncio server (bench/aio_server.py).
Prints `PORT <n>` on stdout once serving; stops gracefully when stdin closes.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from auditlog.affinity import parse_cpu_affinity
from auditlog.app import create_service
from auditlog.config import Config
from auditlog.storage.migrations import apply_migrations
from auditlog.tuning import settle_server_process
from auditlog.workers import reserve_port, start_workers
from bench import aio_server
from bench.echo import serve_echo

# threaded: the product's service (auditlog.app); aio: bench/aio_server.py (CreateEvent and the no-op).
MODELS = ("threaded", "aio")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--max-workers", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server processes on one port (default 1)")
    parser.add_argument("--cpu-affinity", default="", help="as AUDITLOG_CPU_AFFINITY (default: off)")
    parser.add_argument("--model", choices=MODELS, default="threaded", help="the server (default threaded)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = Config(
        database_url=args.database_url,
        data_dir=args.data_dir,
        grpc_host="127.0.0.1",
        grpc_port=0,
        cpu_affinity=parse_cpu_affinity(args.cpu_affinity),
    )
    if args.model == "aio":
        return aio_server.main(config, args.database_url)
    if args.workers > 1:
        return serve_workers(config, args)
    service = create_service(config, database_url=args.database_url, max_workers=args.max_workers)
    serve_echo(service)
    settle_server_process(config.cpu_affinity, 1)  # as `auditlog serve` does; workers do it themselves
    print(f"PORT {service.port}", flush=True)
    sys.stdin.read()  # until the harness closes our stdin
    service.stop(grace=5)
    return 0


def serve_workers(config: Config, args: argparse.Namespace) -> int:
    apply_migrations(args.database_url)  # once, as auditlog serve does, so the workers start fast
    with reserve_port(config.grpc_host, config.grpc_port) as reserved:
        workers = start_workers(
            dataclasses.replace(config, grpc_port=reserved.port),
            args.workers,
            database_url=args.database_url,
            log_level="warning",
            max_workers=args.max_workers,
            setup=(serve_echo,),
        )
        print(f"PORT {reserved.port}", flush=True)
        sys.stdin.read()
        workers.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
