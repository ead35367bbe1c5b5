"""The guardian that cleans up after a dead worker must itself end, whatever signals come."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from onward.tasks.lifecycle import start_time

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, prctl")

OWNER = r"""
import subprocess, sys, time
from onward.tasks.lifecycle import start_guardian
guardian = start_guardian()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(guardian.pid, child.pid, flush=True)
time.sleep(120)
"""


def _ended(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if start_time(pid) is None:
            return True
        time.sleep(0.05)
    return False


def test_guardian_ends_and_cleans_up_after_a_burst_of_sigterms() -> None:
    """A guardian whose SIGTERM handler took a lock deadlocked on a second SIGTERM arriving
    inside the first one's handler, and lived on for good (seen in CI as an orphan)."""
    for _ in range(5):
        owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
        assert owner.stdout is not None
        guardian, child = (int(p) for p in owner.stdout.readline().split())
        time.sleep(1.5)  # the guardian has seen the child
        burst = time.monotonic() + 0.5
        while time.monotonic() < burst:  # some arrive inside the handler of another
            os.kill(guardian, signal.SIGTERM)
        owner.kill()
        owner.wait()
        try:
            assert _ended(guardian, 10), "the guardian hung"
            assert _ended(child, 10), "the owner's child was left running"
        finally:
            for pid in (guardian, child):
                if start_time(pid) is not None:
                    os.kill(pid, signal.SIGKILL)
