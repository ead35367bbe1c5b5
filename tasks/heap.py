"""Giving freed memory back to the system, so a worker that runs for months stays its size.

CPython hands freed memory to the C allocator, and glibc's malloc keeps freed pages in its
arenas (one per thread that allocated, up to eight per core) for reuse rather than
returning them. A long-lived process with many threads (the doorbell, Prefect's event
loops, the health and feed servers) so keeps each arena's high-water mark, and its
resident size creeps up although the Python heap stays level (tests/bench/soak.py, with
tracemalloc and memray: no Python object or native allocation grows with the passes). After
a pass the worker asks glibc to return what is free (``malloc_trim``); in the soak, under
tracemalloc, one trim gave back 122 of 682 MB. Elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
import time

# malloc_trim walks every arena: a few milliseconds, worth it after a pass but not after
# each of a stream of passes.
MIN_INTERVAL = 30.0

_lock = threading.Lock()
_last = float("-inf")
_trim: ctypes._NamedFuncPointer | None = None
_looked = False


def _malloc_trim() -> ctypes._NamedFuncPointer | None:
    global _trim, _looked
    if not _looked:
        _looked = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _trim = libc.malloc_trim  # glibc only: musl has none
                _trim.argtypes = [ctypes.c_size_t]
                _trim.restype = ctypes.c_int
            except (OSError, AttributeError):
                _trim = None
    return _trim


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
