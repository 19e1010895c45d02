"""Several gRPC server processes on one port (`AUDITLOG_WORKERS` > 1).

One Python process runs the service on about one core, whatever its thread count (the GIL). Here
several processes, each a whole service (`create_service`: its own pool, sequencer and servicers),
listen on one port with SO_REUSEPORT, and the kernel spreads incoming connections across them. They
append to one chain safely: every batch locks the log head (docs/architecture.md, "Writing: the sequencer").

The parent (`auditlog serve`) first reserves the port with
`reserve_port`, then `start_workers` starts the processes and returns once each reports serving.
A worker is `python -m auditlog._worker` (see there): a fresh interpreter, never a fork of a process
holding gRPC objects. It runs in its own session, so a terminal's Ctrl-C reaches only the parent,
which stops the workers (`WorkerSet.stop`: SIGTERM, each stops gracefully); and it gets SIGTERM when
the parent dies, so it never outlives it. A worker whose gRPC server stops on its own exits 1; the
parent watches `WorkerSet.exited` and decides what follows.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

from auditlog.config import Config
from auditlog.errors import InternalError

_log = logging.getLogger(__name__)


def stop_on_signals(log: logging.Logger) -> threading.Event:
    """An event that SIGTERM and SIGINT set (each logged): how `auditlog serve` and each worker
    learn to stop. Call it from the main thread."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


class WorkerError(InternalError):
    """A worker process could not start."""


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process runs. It travels pickled on the worker's stdin, not on its command
    line, which every user of the machine can read (the database URL may hold a password)."""

    index: int  # 1..N; the worker's name (and logger prefix) is worker-{index}
    config: Config  # grpc_port: the reserved port
    database_url: str
    log_level: str = "info"
    max_workers: int = 32  # RPC threads (create_service's max_workers; the pool is sized from it)
    metrics_dir: Path | None = None  # where its metrics go (auditlog.metrics); None: none

    @property
    def name(self) -> str:
        return f"worker-{self.index}"


class PortReservation:
    """The gRPC port held by sockets bound with SO_REUSEPORT but not listening: connections reach
    only listening sockets (the workers'), and nothing without SO_REUSEPORT can take the port."""

    def __init__(self, sockets: list[socket.socket], port: int) -> None:
        self.sockets = sockets
        self.port = port

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def reserve_port(host: str, port: int) -> PortReservation:
    """Binds every address host resolves to (as gRPC binds them) on port; port 0 picks one free port
    for all of them. Raises OSError("cannot listen on HOST:PORT: ...") when the port is taken, by
    another service's SO_REUSEPORT sockets too."""
    where = f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as err:
        raise OSError(f"cannot listen on {where}: {err}") from err
    sockets: list[socket.socket] = []
    chosen = port
    try:
        if port != 0:
            # SO_REUSEPORT alone would join the port of another service of ours (same user) and
            # share its traffic; a socket without it cannot bind while anything holds the port.
            for family, kind, proto, _, address in dict.fromkeys(addresses):
                with socket.socket(family, kind, proto) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(address)
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # As gRPC's own listeners: connections in TIME_WAIT on the port must not block it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((address[0], chosen, *address[2:]))
            chosen = sock.getsockname()[1]
    except OSError as err:
        for sock in sockets:
            sock.close()
        raise OSError(f"cannot listen on {where}: {err.strerror or err}") from err
    return PortReservation(sockets, chosen)


@dataclass
class WorkerProcess:
    """One started worker; `ready` reads its one start-up report."""

    spec: WorkerSpec
    process: subprocess.Popen[bytes]
    ready: IO[str]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_report(self) -> None:
        """Reads the report the worker wrote (or the end of file it left by exiting)."""
        line = self.ready.readline().strip()
        self.ready.close()
        status, _, detail = line.partition(" ")
        if status == "SERVING":
            return
        if status == "FAILED":
            raise WorkerError(f"{self.name} (pid {self.pid}) could not start: {detail}")
        try:
            code: int | None = self.process.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        raise WorkerError(
            f"{self.name} (pid {self.pid}) exited during start-up with code {code} (its log says why)"
        )


@dataclass
class WorkerSet:
    """The running workers."""

    members: list[WorkerProcess] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self.members]

    def exited(self) -> WorkerProcess | None:
        """The first worker that has exited, if any (its code: `.process.returncode`)."""
        return next((worker for worker in self.members if worker.process.poll() is not None), None)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to every worker (each stops gracefully: NOT_SERVING, in-flight calls finish, the
        sequencer drains), then waits; SIGKILL to any still running after timeout seconds."""
        for worker in self.members:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for worker in self.members:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.warning(
                    "%s (pid %d) did not stop within %.0fs; killing it", worker.name, worker.pid, timeout
                )
                worker.process.kill()
                worker.process.wait()
            if not worker.ready.closed:
                worker.ready.close()


def start_workers(
    config: Config,
    count: int,
    *,
    database_url: str,
    log_level: str = "info",
    max_workers: int = 32,
    startup_timeout: float = 60.0,
    metrics_dir: Path | None = None,
) -> WorkerSet:
    """Starts count workers serving config.grpc_port (reserved by the caller with `reserve_port`)
    and returns once every one reports serving. database_url is the runtime login; migrations must
    be applied already (auditlog.storage.postgres.logins.prepare_database). If one fails or exits during start-up, the others
    are stopped and WorkerError names it."""
    workers = WorkerSet()
    try:
        for index in range(1, count + 1):
            spec = WorkerSpec(index, config, database_url, log_level, max_workers, metrics_dir)
            workers.members.append(_spawn(spec))
        _wait_until_serving(workers.members, startup_timeout)
    except BaseException:
        workers.stop()
        raise
    _log.info("%d workers serving on port %d (pids %s)", count, config.grpc_port, workers.pids)
    return workers


def _spawn(spec: WorkerSpec) -> WorkerProcess:
    read_fd, write_fd = os.pipe()
    try:
        command = [sys.executable, "-m", "auditlog._worker", str(os.getpid()), str(write_fd)]
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, pass_fds=(write_fd,), start_new_session=True
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the worker holds the write end: end of file once it exits
    worker = WorkerProcess(spec, process, os.fdopen(read_fd, "r"))
    stdin = process.stdin
    if stdin is None:  # never: Popen was given stdin=PIPE
        raise WorkerError(f"{spec.name} has no stdin to read its spec from")
    try:
        # sys.path first (as multiprocessing does), so the worker imports what its parent does.
        stdin.write(pickle.dumps(sys.path) + pickle.dumps(spec))
        stdin.close()
    except BrokenPipeError:
        pass  # it exited already; reading its report says so
    return worker


def _wait_until_serving(workers: list[WorkerProcess], timeout: float) -> None:
    waiting = {worker.ready: worker for worker in workers}
    deadline = time.monotonic() + timeout
    while waiting:
        remaining = deadline - time.monotonic()
        readable = select.select(list(waiting), [], [], remaining)[0] if remaining > 0 else []
        if not readable:
            names = ", ".join(worker.name for worker in waiting.values())
            raise WorkerError(f"{names} did not report serving within {timeout:.0f}s")
        for ready in readable:
            waiting.pop(ready).read_report()
