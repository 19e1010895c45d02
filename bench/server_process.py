"""The server under test, in its own process: the product service plus the bench-only echo RPC.

With --workers N > 1 this process reserves the port as `auditlog serve` does with AUDITLOG_WORKERS=N,
starts N copies of itself (--worker I), each a whole service plus the echo RPC on that port with
SO_REUSEPORT as each of auditlog.workers' processes is, and only supervises them.
Prints `PORT <n>` on stdout once serving; stops gracefully when stdin closes.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from auditlog.access import load_access
from auditlog.affinity import parse_cpu_affinity
from auditlog.app import create_service
from auditlog.config import Config
from auditlog.metrics import directory_for, prepare_directory
from auditlog.storage.postgres.migrations import apply_migrations
from auditlog.tuning import settle_server_process
from auditlog.workers import reserve_port
from bench.echo import serve_echo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--max-workers", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server processes on one port (default 1)")
    parser.add_argument("--cpu-affinity", default="", help="as AUDITLOG_CPU_AFFINITY (default: off)")
    parser.add_argument("--metrics", choices=("on", "off"), default="on", help="as AUDITLOG_METRICS")
    parser.add_argument(
        "--auth",
        choices=("on", "off"),
        default="off",
        help="on: AUDITLOG_AUTH=required (an admin key is minted)",
    )
    # Given by the supervising process to each of its workers: the worker's number and reserved port.
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = Config(
        database_url=args.database_url,
        data_dir=args.data_dir,
        grpc_host="127.0.0.1",
        grpc_port=args.port,
        cpu_affinity=parse_cpu_affinity(args.cpu_affinity),
        metrics=args.metrics == "on",
        access=load_access({"AUDITLOG_AUTH": "required" if args.auth == "on" else "off"}, "development"),
        # Every client of the bench shares one key: the per-principal rate must not be what is measured.
        principal_rate=1_000_000,
    )
    # The metrics directory is emptied once, by the process that starts the rest (as auditlog serve).
    metrics_dir = None
    if config.metrics:
        metrics_dir = directory_for(args.data_dir) if args.worker else prepare_directory(args.data_dir)
    if args.workers > 1 and not args.worker:
        return serve_workers(config, args)
    service = create_service(
        config,
        database_url=args.database_url,
        max_workers=args.max_workers,
        migrate=not args.worker,
        so_reuseport=bool(args.worker),
        metrics_dir=metrics_dir,
    )
    serve_echo(service)
    settle_server_process(config.cpu_affinity, args.worker or 1)  # as `auditlog serve` and its workers do
    print(f"PORT {service.port}", flush=True)
    sys.stdin.read()  # until the harness (or the supervising process) closes our stdin
    service.stop(grace=5)
    return 0


def serve_workers(config: Config, args: argparse.Namespace) -> int:
    apply_migrations(args.database_url)  # once, as auditlog serve does, so the workers start fast
    workers: list[subprocess.Popen[str]] = []
    with reserve_port(config.grpc_host, config.grpc_port) as reserved:
        try:
            for index in range(1, args.workers + 1):
                command = [
                    sys.executable,
                    "-m",
                    "bench.server_process",
                    f"--database-url={args.database_url}",
                    f"--data-dir={args.data_dir}",
                    f"--max-workers={args.max_workers}",
                    f"--cpu-affinity={args.cpu_affinity}",
                    f"--metrics={args.metrics}",
                    f"--worker={index}",
                    f"--port={reserved.port}",
                ]
                workers.append(
                    subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                )
            for index, worker in enumerate(workers, 1):
                if worker.stdout is None or not worker.stdout.readline().startswith("PORT "):
                    raise RuntimeError(f"bench worker {index} did not start (exit code {worker.poll()})")
            print(f"PORT {reserved.port}", flush=True)
            sys.stdin.read()
        finally:
            for worker in workers:
                if worker.stdin is not None:
                    worker.stdin.close()
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
