"""Ports and processes for the tests and benchmarks that start `onward run`."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


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


def start_worker(
    onward: str, env: Mapping[str, str], log_path: Path, timeout: float = 240
) -> subprocess.Popen[bytes]:
    """`onward run` with its output in ``log_path``, returned once its first pass has set
    the cursor: mail delivered before that pass counts as old mail and is never read."""
    with log_path.open("wb") as log:
        worker = subprocess.Popen([onward, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    started = time.monotonic()
    while True:
        if worker.poll() is not None or time.monotonic() - started > timeout:
            stop_worker(worker)
            raise SystemExit(f"the worker did not start:\n{log_path.read_text()[-3000:]}")
        if "watching" in log_path.read_text(errors="replace"):
            status = subprocess.run(
                [onward, "status", "--json"], env=env, capture_output=True, check=False
            )
            if status.returncode == 0 and json.loads(status.stdout).get("last_sync"):
                return worker
        time.sleep(0.5)
