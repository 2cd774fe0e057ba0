"""Keep a long-running node's resident memory near what it actually holds.

glibc's allocator, left to its defaults, makes a node hold on to memory it has freed. Each thread that
allocates gets an arena of its own (up to eight per core), and every buffer freed in an arena stays
there for that thread's next use; and after a large buffer is freed, glibc raises the size above which
it maps buffers directly (up to 32 MiB), so later 4 MiB evidence chunks and 10 MiB inbox batches come
from the arenas and stay resident after use. Two arenas and a fixed 256 KiB mapping threshold make
large buffers go back to the system as they are freed, for a page-fault cost far below the encryption
of the same bytes (``benchmarks/bench_evidence.py`` measures both).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameter numbers, from glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENAS = 2
MMAP_THRESHOLD = 256 * 1024


def tune_allocator() -> bool:
    """Apply the settings above if this process runs on glibc; True when they were applied.

    Call it before the process starts its threads: arenas already made are kept.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_ARENA_MAX, ARENAS)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not applied:
        log.warning("the allocator refused the memory settings; the node runs on its defaults")
    return applied
