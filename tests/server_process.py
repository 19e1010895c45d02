"""Runs one auditlog gRPC server in a child process (for multi-process tests).

Usage: python -m tests.server_process DATABASE_URL  -> prints "PORT <n>", serves until SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from auditlog.app import create_service
from auditlog.config import Config


def main() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(database_url=sys.argv[1], data_dir=Path(tmp), grpc_host="127.0.0.1", grpc_port=0)
        service = create_service(config, database_url=sys.argv[1])
        print(f"PORT {service.port}", flush=True)
        stop.wait()
        service.stop()
    return 0


class ServerProcess:
    """A server child process; `port` once started, `stop()` to end it."""

    def __init__(self, database_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.server_process", database_url],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.process.kill()
            raise RuntimeError(f"server process did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


if __name__ == "__main__":
    sys.exit(main())
