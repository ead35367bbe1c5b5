"""The worker gives freed heap back to the system after a pass."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from onward.tasks import heap


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_goes_back_to_the_system_at_most_once_per_interval() -> None:
    # Blocks freed between blocks that live on: free pages in the middle of the heap,
    # which malloc keeps (it only gives back the top of the heap by itself).
    blocks = [bytearray(4000) for _ in range(50_000)]
    survivors = blocks[::25]
    del blocks
    before = _rss_kib()
    assert heap.release_free_memory(force=True)
    after = _rss_kib()
    assert before - after > 50_000, f"RSS {before} -> {after} KiB"
    assert not heap.release_free_memory()  # within MIN_INTERVAL of the last trim
    assert len(survivors) == 2_000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_ceiling_says_over_once_above_it_and_never_loops_after_a_restart() -> None:
    assert not heap.MemoryCeiling(0).over()  # 0: never
    assert not heap.MemoryCeiling(1_000_000).over()
    over = heap.MemoryCeiling(1)
    assert over.over()
    assert over.over()  # stays over until the restart
    assert over.exceeded_at is not None
    assert over.exceeded_at > 1
    # Started by a restart and over at once: restarting again would loop, so it stops.
    looping = heap.MemoryCeiling(1, restarted=True)
    assert not looping.over()
    assert looping.limit_mb == 0
    assert not looping.over()
    # Started by a restart, under at first and over later: that one is real growth.
    later = heap.MemoryCeiling(1_000_000, restarted=True)
    assert not later.over()
    later.limit_mb = 1
    assert later.over()
