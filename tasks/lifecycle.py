"""Processes that die with their parent: killing any onward process, by any signal, leaves
nothing of it running.

Three pieces, from the most direct to the most general:

- ``die_with_parent()`` in a child asks Linux for SIGKILL when its parent dies
  (``PR_SET_PDEATHSIG``); the setting survives ``exec``, so ``launch_command()`` puts it
  in front of a command such as ``prefect server start``.
- ``exit_when_gone(pid)`` is a watchdog thread for a grandchild whose own parent may
  outlive ours (the decider's workers are children of multiprocessing's forkserver).
- ``start_guardian()`` starts a small process that notes the whole tree under onward once a
  second and, when onward dies, kills what is left of it: the flow-run processes Prefect's
  runner starts, which onward cannot tell to die with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
_PROC = Path("/proc")


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Get ``sig`` when the parent (the thread that forked us) ends; exit at once when
    ``parent`` is given and is already gone. A no-op outside Linux."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (tells a reused pid apart), None if gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None  # a zombie is gone, only not yet reaped
    return fields[19]


def alive(pid: int, started: str | None) -> bool:
    return started is not None and start_time(pid) == started


def exit_when_gone(pid: int, interval: float = 0.5) -> threading.Thread:
    """A daemon thread that ends this process soon after ``pid`` ends."""
    started = start_time(pid)

    def watch() -> None:
        while alive(pid, started):
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="onward-parent-watch", daemon=True)
    thread.start()
    return thread


def init_pool_worker(owner: int) -> None:
    """``ProcessPoolExecutor`` initializer: the worker ends with its parent and with ``owner``."""
    die_with_parent()
    exit_when_gone(owner)


def launch_command(command: Sequence[str]) -> list[str]:
    """``command``, run so that it is killed when the process starting it dies."""
    return [sys.executable, "-m", "onward.tasks.lifecycle", "exec", str(os.getpid()), *command]


def children_map() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    out: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(roots: Iterable[int], tree: dict[int, list[int]] | None = None) -> set[int]:
    """All processes below ``roots`` (not the roots themselves)."""
    tree = children_map() if tree is None else tree
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in tree.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def start_guardian() -> subprocess.Popen[bytes] | None:
    """A process that kills what is left of this one's tree when this one dies. Linux only."""
    if not sys.platform.startswith("linux"):
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "onward.tasks.lifecycle", "guard", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        close_fds=True,
    )


def set_from_signal(event: threading.Event) -> None:
    """Set ``event`` from a signal handler.

    A handler runs between two bytecodes of the main thread, perhaps inside ``event.wait()``
    or inside this same handler's ``event.set()`` for an earlier signal, both holding the
    event's lock: taking it again there deadlocks for good (the guardian hung so under a
    burst of SIGTERMs). A short-lived thread takes the lock instead, once the main thread
    has let it go.
    """
    if not event.is_set():
        threading.Thread(target=event.set, name="onward-signal", daemon=True).start()


def _guard(owner: int, interval: float = 1.0) -> None:
    started = start_time(owner)
    gone = False

    def on_sigterm(signum: int, frame: object) -> None:
        nonlocal gone
        gone = True  # a plain flag: no lock a second signal could find taken

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for onward; it tells us by dying
    die_with_parent(signal.SIGTERM, owner)
    me = os.getpid()
    known: dict[int, str] = {}
    while not gone and alive(owner, started):
        for pid in descendants([owner]) - {me}:
            if pid not in known and (stamp := start_time(pid)) is not None:
                known[pid] = stamp
        known = {pid: stamp for pid, stamp in known.items() if alive(pid, stamp)}
        time.sleep(interval)
    # The owner is gone: its children are now init's. Kill what we saw, and their trees.
    for _ in range(5):
        living = {pid for pid, stamp in known.items() if alive(pid, stamp)}
        for pid in descendants(living) - {me}:
            if pid not in known and (stamp := start_time(pid)) is not None:
                known[pid] = stamp
                living.add(pid)
        if not living:
            return
        for pid in living:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def main(argv: Sequence[str]) -> None:
    if argv[:1] == ["exec"]:
        parent, command = int(argv[1]), list(argv[2:])
        die_with_parent(signal.SIGKILL, parent)
        os.execvp(command[0], command)
    if argv[:1] == ["guard"]:
        _guard(int(argv[1]))
        return
    raise SystemExit("usage: python -m onward.tasks.lifecycle exec PID CMD... | guard PID")


if __name__ == "__main__":
    main(sys.argv[1:])
