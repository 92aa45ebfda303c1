"""A process's memory: megabyte buffers given back to the system as soon as they are freed."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def map_large_buffers(threshold_bytes: int = 1 << 20) -> bool:
    """Give each allocation of ``threshold_bytes`` or more its own mapping, unmapped when freed.

    glibc raises this threshold to the largest block freed so far (up to 32 MiB), so after the
    first megabyte buffer is freed the next ones come from its heap, which keeps the high
    water mark. For a process whose large buffers are rare and short-lived (the aggregator's
    job bodies) a fixed threshold keeps its memory at what it holds. Only on glibc; returns
    whether it was applied."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold_bytes))
