"""Child processes that do not outlive the process that started them (Envoy, worker processes).

On Linux the kernel is asked (prctl PR_SET_PDEATHSIG) to send a signal when the parent dies. The
child calls this itself, first thing: a `preexec_fn` would do it between fork and exec, which is
unsafe in the multi-threaded gRPC server. The setting survives exec. Elsewhere it does nothing.

The kernel sends the signal when the *thread* that started the child ends, so children are started
from the parent's main thread.
"""

from __future__ import annotations

import ctypes
import os
import sys

_PR_SET_PDEATHSIG = 1


def signal_on_parent_death(parent_pid: int, signum: int) -> bool:
    """Asks for signum when parent_pid dies; False (after a line on stderr) when that cannot be
    arranged or the parent already died, and the caller should exit."""
    if not sys.platform.startswith("linux"):
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        sys.stderr.write(f"auditlog: prctl failed: {os.strerror(ctypes.get_errno())}\n")
        return False
    # The parent died before the setting took effect: this process was handed to another parent.
    return os.getppid() == parent_pid
