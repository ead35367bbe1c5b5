"""Ports and processes for the tests and benchmarks that start `onward run`."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_worker(worker: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """SIGTERM, as systemd would; killed (and said so) when it does not stop in time."""
    worker.terminate()
    try:
        worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        print(f"the worker did not stop within {timeout:.0f} s of SIGTERM and was killed")
