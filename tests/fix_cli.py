"""auditctl as a user runs it: a separate process of the installed CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def auditctl(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """auditctl with args; its exit code, stdout and stderr (text), never raising on failure."""
    return subprocess.run(
        [sys.executable, "-m", "auditlog_client.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
