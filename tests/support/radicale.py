"""A real, throw-away Radicale CalDAV server on 127.0.0.1 for the calendar tests.

Started as its own process (``python -m radicale``) on a free port with its storage and
an htpasswd file in a temp folder; it can be stopped and started again on the same port
and storage, to test a server that goes away during a change. Without Radicale installed
the fixture skips, unless ``ONWARD_REQUIRE_RADICALE=1`` (CI), where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

USER, PASSWORD = "sam", "radicale-pw-7Qx"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RadicaleServer:
    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = users or {USER: PASSWORD}
        self.dir = Path(tempfile.mkdtemp(prefix="radicale-test-"))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (self.dir / "users").write_text(
            "".join(f"{user}:{password}\n" for user, password in self.users.items())
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30.0) -> None:
        log = (self.dir / "radicale.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "radicale",
                "--server-hosts",
                f"127.0.0.1:{self.port}",
                "--storage-filesystem-folder",
                str(self.dir / "collections"),
                "--auth-type",
                "htpasswd",
                "--auth-htpasswd-filename",
                str(self.dir / "users"),
                "--auth-htpasswd-encryption",
                "plain",
                "--rights-type",
                "owner_only",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"radicale exited: {(self.dir / 'radicale.log').read_text()}")
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # it answers (401 or a redirect): it is up
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("radicale did not start in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def resources(self, user: str = USER) -> dict[str, bytes]:
        """Every .ics on disk for ``user``, by collection/name: what the server holds."""
        root = self.dir / "collections" / "collection-root" / user
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*.ics")
            if not any(part.startswith(".Radicale") for part in p.parts)
        }

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RadicaleServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def require_radicale() -> None:
    try:
        import radicale  # noqa: F401
    except ImportError:
        message = "radicale is not installed: pip install radicale"
        if os.environ.get("ONWARD_REQUIRE_RADICALE") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def radicale() -> Iterator[RadicaleServer]:
    require_radicale()
    with RadicaleServer() as server:
        yield server
