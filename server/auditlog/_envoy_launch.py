"""Runs Envoy so that it dies with the process that started it.

Usage: python -m auditlog._envoy_launch PARENT_PID ENVOY [ARGS...]

It arranges SIGTERM on the parent's death (see auditlog._parent_death), then execs Envoy, which keeps
that setting. This is done here, in a fresh process, rather than in a `preexec_fn`, which is unsafe
in the multi-threaded gRPC server.
"""

from __future__ import annotations

import os
import signal
import sys

from auditlog._parent_death import signal_on_parent_death


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: python -m auditlog._envoy_launch PARENT_PID ENVOY [ARGS...]\n")
        return 2
    parent_pid, envoy, args = int(argv[0]), argv[1], argv[2:]
    if not signal_on_parent_death(parent_pid, signal.SIGTERM):
        return 1
    os.execv(envoy, [envoy, *args])  # noqa: S606 - a fixed binary with our own arguments
    return 1  # unreachable: execv replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
