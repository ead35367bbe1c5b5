"""Giving freed heap memory back to the system after a pass.

CPython hands freed memory to the C allocator, and glibc's malloc keeps freed pages in its
arenas for reuse rather than returning them, so a long-lived worker holds on to the peak of
its busiest passes. After a pass the worker asks glibc to return what is free
(``malloc_trim``); in the soak, under tracemalloc, one trim gave back 122 of 682 MB.
It does not stop the slow growth ``tests/bench/soak.py`` still measures (about 4 MB per
1,000 messages, following the rejections handled while live allocations stay level).
Elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading
import time

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
