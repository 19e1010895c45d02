"""Freed large blocks go back to the system at once (glibc only; elsewhere nothing changes)."""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def return_large_blocks(threshold: int = 1 << 20) -> bool:
    """Blocks of threshold bytes or more get their own mapping, unmapped when freed. glibc otherwise
    raises the threshold to the largest block freed (up to 32 MiB), after which requests of many MiB
    are carved from heaps that fragment and stay resident. Returns whether the setting took."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
