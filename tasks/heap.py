"""Giving freed heap memory back to the system after a pass.

CPython hands freed memory to the C allocator, and glibc's malloc keeps freed pages in its
arenas for reuse rather than returning them, so a long-lived worker holds on to the peak of
its busiest passes. After a pass the worker asks glibc to return what is free
(``malloc_trim``); in the soak, under tracemalloc, one trim gave back 122 of 682 MB.
It does not stop the slow growth ``tests/bench/soak.py`` still measures (about 3 MB per
1,000 messages while live allocations stay level: the allocator's fragmentation). Elsewhere
than glibc this is a no-op.

What bounds the worker is ``MemoryCeiling``: above ``[worker] restart_above_mb`` the worker
restarts itself between passes, as uWSGI's reload-on-rss and Celery's
max-memory-per-child do, and picks up where it left off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("onward.worker")

# malloc_trim walks every arena: a few milliseconds, worth it after a pass but not after
# each of a stream of passes.
MIN_INTERVAL = 30.0

_lock = threading.Lock()
_last = float("-inf")


@functools.cache
def _malloc_trim() -> ctypes._NamedFuncPointer | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # glibc only: musl has none
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory(*, force: bool = False) -> bool:
    """Return free heap pages to the system (glibc), at most once per ``MIN_INTERVAL``
    unless ``force``; True when it did."""
    global _last
    trim = _malloc_trim()
    if trim is None:
        return False
    with _lock:
        now = time.monotonic()
        if not force and now - _last < MIN_INTERVAL:
            return False
        _last = now
        trim(0)
    return True


def resident_mb() -> float | None:
    """This process's resident memory in MB, None where /proc does not tell."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class MemoryCeiling:
    """Whether the worker should restart to give its memory back: checked after each pass.

    ``limit_mb`` 0 never restarts. A process that was itself started by such a restart and
    is over the limit at its first check would only restart again and again: the limit is
    below what onward needs, so it says so and stops checking.
    """

    def __init__(self, limit_mb: int, restarted: bool = False) -> None:
        self.limit_mb = limit_mb
        self.restarted = restarted
        self.checks = 0
        self.exceeded_at: float | None = None

    def over(self) -> bool:
        """True once resident memory is above the limit (and stays True)."""
        if self.exceeded_at is not None:
            return True
        if not self.limit_mb:
            return False
        rss = resident_mb()
        self.checks += 1
        if rss is None or rss <= self.limit_mb:
            return False
        if self.restarted and self.checks == 1:
            log.warning(
                "onward uses %.0f MB right after a restart, above [worker] restart_above_mb = "
                "%d: raise it (or 0 for never); not restarting for memory",
                rss, self.limit_mb,
            )  # fmt: skip
            self.limit_mb = 0
            return False
        self.exceeded_at = rss
        return True
