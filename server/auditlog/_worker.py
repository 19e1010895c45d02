"""One worker process of `auditlog.workers`: a whole service on the shared, reserved port.

Usage (by auditlog.workers only): python -m auditlog._worker PARENT_PID READY_FD, with the parent's
sys.path and a WorkerSpec pickled on stdin. It writes one line to READY_FD: `SERVING <port>`, or
`FAILED <reason>` and exits 1. SIGTERM (also sent when the parent dies) or SIGINT stops it
gracefully, exit 0; if its gRPC server stops on its own, it exits 1.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
from typing import IO

from auditlog._parent_death import signal_on_parent_death
from auditlog.app import Service, create_service
from auditlog.logs import use_json
from auditlog.redaction import redact, redact_logging, register
from auditlog.tuning import settle_server_process
from auditlog.workers import WorkerSpec, stop_on_signals

_log = logging.getLogger("auditlog.worker")
_WATCH_INTERVAL = 0.5


def main(argv: list[str]) -> int:
    parent_pid, ready_fd = int(argv[0]), int(argv[1])
    if not signal_on_parent_death(parent_pid, signal.SIGTERM):
        return 1
    stop = stop_on_signals(_log)
    # The parent wrote both (its own process, over a pipe only the two of us hold).
    sys.path[:] = pickle.load(sys.stdin.buffer)  # noqa: S301
    spec = pickle.load(sys.stdin.buffer)  # noqa: S301
    if not isinstance(spec, WorkerSpec):
        raise TypeError(f"stdin held a {type(spec).__name__}, not a WorkerSpec")
    logging.basicConfig(
        level=getattr(logging, spec.log_level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s {spec.name} %(name)s %(message)s",
        stream=sys.stderr,
    )
    register(spec.database_url)
    redact_logging()
    if spec.config.log_format == "json":
        use_json(spec.name)
    with os.fdopen(ready_fd, "w") as ready:
        service = _start(spec, ready)
        if service is None:
            return 1
        cpu = settle_server_process(spec.config.cpu_affinity, spec.index)
        if cpu is not None:
            _log.info("pinned to CPU %d (AUDITLOG_CPU_AFFINITY)", cpu)
        ready.write(f"SERVING {service.port}\n")
    failed = False
    while not stop.wait(_WATCH_INTERVAL):
        # wait_for_termination answers True when it timed out, i.e. the server still runs.
        if not service.server.wait_for_termination(0):
            _log.error("the gRPC server stopped unexpectedly")
            failed = True
            break
    service.stop()
    return 1 if failed else 0


def _start(spec: WorkerSpec, ready: IO[str]) -> Service | None:
    """The started service, or None after reporting why it could not start."""
    try:
        service = create_service(
            spec.config,
            database_url=spec.database_url,
            migrate=False,
            max_workers=spec.max_workers,
            so_reuseport=True,
            metrics_dir=spec.metrics_dir,
        )
    except Exception as err:  # noqa: BLE001 - whatever it is, the parent reports it and stops the rest
        ready.write(f"FAILED {_one_line(err)}\n")
        return None
    return service


def _one_line(err: BaseException) -> str:
    return redact(" ".join(f"{type(err).__name__}: {err}".split()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
