"""Runs Envoy so that it dies with the process that started it.

Usage: python -m auditlog._envoy_launch PARENT_PID ENVOY [ARGS...]

On Linux it asks the kernel (prctl PR_SET_PDEATHSIG) to send SIGTERM when the parent dies, then
execs Envoy, which keeps that setting. This is done here, in a fresh process, rather than in a
`preexec_fn`, which is unsafe in the multi-threaded gRPC server. Elsewhere it only execs Envoy.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: python -m auditlog._envoy_launch PARENT_PID ENVOY [ARGS...]\n")
        return 2
    parent_pid, envoy, args = int(argv[0]), argv[1], argv[2:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            sys.stderr.write(f"auditlog: prctl failed: {os.strerror(ctypes.get_errno())}\n")
            return 1
        if os.getppid() != parent_pid:
            return 1  # the parent died before the setting took effect
    os.execv(envoy, [envoy, *args])  # noqa: S606 - a fixed binary with our own arguments
    return 1  # unreachable: execv replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
