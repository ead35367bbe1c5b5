"""A local Prefect server that onward starts (and `onward run` supervises) when none is configured.

The server is started so that it dies with the process that started it: a killed onward
never leaves a Prefect server behind.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import TracebackType
from typing import IO

from onward.tasks.errors import OnwardError
from onward.tasks.lifecycle import launch_command

log = logging.getLogger("onward.server")


class PrefectServerError(OnwardError):
    """The local Prefect server did not come up."""


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise PrefectServerError("no free port on 127.0.0.1 for the Prefect server")


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def retention_env(keep_runs_days: int) -> dict[str, str]:
    """Day-one retention for a Prefect server: flow runs (with their logs and artifacts)
    and events older than ``keep_runs_days`` are deleted; events after 7 days at most.
    Prefect's default vacuums events only, so runs and logs would pile up forever."""
    days = 24 * 3600
    return {
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(keep_runs_days * days),
        # A plain timedelta there: ISO 8601, not seconds.
        "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"P{min(keep_runs_days, 7)}D",
    }


# The server's own log stays bounded: LOG_BYTES per file, LOG_BACKUPS old files.
LOG_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


def copy_rotating(stream: IO[bytes], path: Path) -> None:
    """Copy a child's output into ``path``, rotated (a file the child wrote itself could not
    be rotated under it); ends when the child closes its output."""
    handler = RotatingFileHandler(
        path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8", errors="replace"
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            handler.emit(logging.makeLogRecord({"msg": line}))
    finally:
        handler.close()
        stream.close()


class LocalPrefectServer:
    """``prefect server start`` on 127.0.0.1 with its SQLite under ``home``; stopped on exit.

    ``services=False`` runs the API alone (no scheduler): enough for `onward sync`.
    ``keep_runs_days``: the retention policy installed with it (``[worker] keep_runs_days``).
    """

    def __init__(
        self,
        home: Path,
        port: int = 4200,
        startup_timeout: float = 180.0,
        *,
        services: bool = True,
        keep_runs_days: int = 30,
    ) -> None:
        self.home = home
        self.port = free_port(port)
        self.startup_timeout = startup_timeout
        self.services = services
        self.keep_runs_days = keep_runs_days
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = home / "prefect-server.log"
        self.restarts = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalPrefectServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            "DO_NOT_TRACK": "1",
            # The UI asks this address for its data; without it, it asks port 4200 and
            # shows "Can't connect to Server API" whenever the server runs elsewhere.
            "PREFECT_UI_API_URL": self.api_url,
            **retention_env(self.keep_runs_days),
        }
        env.pop("PREFECT_API_URL", None)
        command = [sys.executable, "-m", "prefect", "server", "start"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        if not self.services:
            command.append("--no-services")
        self.process = subprocess.Popen(
            launch_command(command),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C is for onward, which then stops the server
        )
        assert self.process.stdout is not None
        threading.Thread(
            target=copy_rotating,
            args=(self.process.stdout, self.log_path),
            name="onward-prefect-server-log",
            daemon=True,
        ).start()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrefectServerError(
                    f"the Prefect server exited with code {self.process.returncode}; "
                    f"see {self.log_path}"
                )
            if healthy(self.api_url):
                return
            time.sleep(0.5)
        self.stop()
        raise PrefectServerError(f"the Prefect server did not start in time; see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def supervise(self, stop: threading.Event, interval: float = 2.0) -> None:
        """Restart the server whenever it dies or stops answering, until ``stop``: on the
        same port, so every client's PREFECT_API_URL stays right. Runs in a thread that
        lives as long as the server must (the server dies with the thread that started it)."""
        failures = 0
        while not stop.wait(interval):
            if self.alive() and healthy(self.api_url, timeout=5.0):
                failures = 0
                continue
            failures += 1
            if self.alive() and failures < 3:
                continue  # busy for a moment (a slow SQLite write): give it 3 checks
            log.warning("the local Prefect server is down; restarting it on port %s", self.port)
            self.stop()
            try:
                self.start()
            except PrefectServerError as exc:
                log.error("the local Prefect server did not restart (%s); trying again", exc)
                continue
            self.restarts += 1
            failures = 0
            log.warning("the local Prefect server is back (restart %d)", self.restarts)
        if self.restarts:
            self.stop()  # started by this thread, so stopped here, before it ends and kills it
