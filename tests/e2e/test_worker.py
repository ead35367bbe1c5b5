"""`onward run` for real: its own Prefect server, the IDLE doorbell, restart, no repeats."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from onward.tasks.store import Cooldown, FeedbackRequest, Mailbox, Store
from tests.support.dovecot import DovecotServer
from tests.support.mailgen import make_mail
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ONWARD = str(Path(sys.executable).with_name("onward"))
REJECTION = (
    "Dear Alice,\n\nThank you for applying for the Platform Engineer position at Firmly.\n"
    "After careful consideration we have decided to move forward with other candidates.\n\n"
    "Kind regards,\nMorgan Lee\n"
)


def drafts_count(server: DovecotServer) -> int:
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False)
    client.login("alice", "secret")
    client.select_folder("Drafts", readonly=True)
    count = len(client.search(["ALL"]))
    client.logout()
    return count


def wait_until(predicate: object, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text(errors='replace')}")


def check_feed(port: str, log: Path) -> None:
    """`onward run` serves the calendar: the cooldown is in it, with an ETag, and a repeat
    with If-None-Match is answered 304."""
    assert f"calendar feed: webcal://127.0.0.1:{port}/onward.ics" in log.read_text()
    url = f"http://127.0.0.1:{port}/onward.ics"
    with urllib.request.urlopen(url, timeout=10) as response:
        body, etag = response.read(), response.headers["ETag"]
    assert b"SUMMARY:Cooldown after Firmly" in body
    request = urllib.request.Request(url, headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(request, timeout=10)
    assert not_modified.value.code == 304


def connected(
    dovecot: DovecotServer, tmp_path: Path, database_url: str, **settings: str
) -> dict[str, str]:
    """The environment of a worker on its own ports, connected to Alice's Dovecot mailbox;
    ``settings`` are more ONWARD_* variables."""
    env = {
        **os.environ,
        "ONWARD_HOME": str(tmp_path / "home"),
        "ONWARD_DATABASE_URL": database_url,
        "MAIL_PW": "secret",
        "ONWARD_CALENDAR_FEED_PORT": "0",
        "ONWARD_WORKER_HEALTH_PORT": str(free_port()),
        "ONWARD_WORKER_PREFECT_PORT": str(free_port()),
        **settings,
    }
    env.pop("PREFECT_API_URL", None)
    subprocess.run(
        [ONWARD, "connect", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user",
         "alice", "--address", "alice@example.org", "--security", "plain",
         "--password-env", "MAIL_PW"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return env


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    proc = subprocess.Popen([ONWARD, "run"], env=env, stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=90)


def test_worker_drafts_once_and_survives_a_restart(
    dovecot: DovecotServer, tmp_path: Path, database_url: str
) -> None:
    env = connected(dovecot, tmp_path, database_url, ONWARD_CALENDAR_FEED_PORT=str(free_port()))
    log = tmp_path / "worker.log"
    store = Store.open(database_url)
    worker = start_worker(env, log)
    try:
        wait_until(lambda: "Prefect UI: http://127.0.0.1:" in log.read_text(), 240, "start", log)

        def watching() -> bool:  # the first pass starts the watch at "now"
            with store.unit_of_work() as session:
                return session.scalars(select(Mailbox.uidvalidity)).first() is not None

        wait_until(watching, 120, "the first pass", log)
        dovecot.deliver("alice", make_mail(1, subject="Your application", body=REJECTION))
        wait_until(lambda: drafts_count(dovecot) == 1, 120, "the draft", log)

        def end_scheduled() -> bool:
            with store.unit_of_work() as session:
                return session.scalars(select(Cooldown.end_run_id)).first() is not None

        wait_until(end_scheduled, 120, "the cooldown's scheduled end", log)
        assert stop_worker(worker) == 0
        assert "onward stopped" in log.read_text()

        worker = start_worker(env, log)
        wait_until(lambda: log.read_text().count("Prefect UI:") == 2, 240, "restart", log)
        dovecot.deliver("alice", make_mail(2, subject="Lunch on Friday?"))  # rings the doorbell
        wait_until(lambda: "1 new message(s) recorded" in log.read_text(), 120, "a pass", log)
        wait_until(
            lambda: log.read_text().rstrip().endswith("Finished in state Completed()"),
            60,
            "the pass to finish",
            log,
        )
        assert drafts_count(dovecot) == 1
        with store.unit_of_work() as session:
            assert len(session.scalars(select(FeedbackRequest)).all()) == 1
            cooldowns = session.scalars(select(Cooldown)).all()
            assert len(cooldowns) == 1
        ui = re.findall(r"Prefect UI: (http://127\.0\.0\.1:\d+)", log.read_text())[-1]
        assert ui.startswith("http://127.0.0.1:")
        check_feed(env["ONWARD_CALENDAR_FEED_PORT"], log)
    finally:
        if worker.poll() is None:
            stop_worker(worker)
        store.close()


def test_worker_over_its_memory_ceiling_restarts_itself_once_and_goes_on(
    dovecot: DovecotServer, tmp_path: Path, database_url: str
) -> None:
    """A ceiling below what onward needs: the first pass is over it, so the worker stops
    cleanly and executes itself again (same pid, nothing of the first one left); the new
    one is over it at its first pass too, says the ceiling is too low and goes on."""
    env = connected(dovecot, tmp_path, database_url, ONWARD_WORKER_RESTART_ABOVE_MB="64")
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        wait_until(
            lambda: log.read_text().count("onward is watching") == 2, 300, "the restart", log
        )
        assert log.read_text().count("restarting to give it back") == 1
        assert worker.poll() is None  # the same process, executed again
        guards = [
            p for p in Path("/proc").iterdir()
            if p.name.isdigit() and _cmdline(p).endswith(f"lifecycle guard {worker.pid}")
        ]  # fmt: skip
        assert len(guards) == 1, "the first incarnation's guardian is gone"
        dovecot.deliver("alice", make_mail(1, subject="Your application", body=REJECTION))
        wait_until(lambda: drafts_count(dovecot) == 1, 120, "the draft", log)
        wait_until(lambda: "not restarting for memory" in log.read_text(), 60, "warning", log)
        assert log.read_text().count("restarting to give it back") == 1
    finally:
        if worker.poll() is None:
            assert stop_worker(worker) == 0


def test_a_sigterm_while_restarting_for_memory_ends_the_worker(
    dovecot: DovecotServer, tmp_path: Path
) -> None:
    """systemd's stop (or a person's kill) during a restart for memory is a stop: the
    worker exits 0 and does not come back. Both used to arrive as SIGTERM, one taken for
    the other, and the worker restarted instead (CI, stop 17)."""
    env = connected(
        dovecot,
        tmp_path,
        f"sqlite:///{tmp_path / 'onward.db'}",
        ONWARD_WORKER_RESTART_ABOVE_MB="64",
    )
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        deadline = time.monotonic() + 300
        while "restarting to give it back" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)  # the restart's own stop takes a few seconds: be inside it
        assert stop_worker(worker) == 0
        text = log.read_text()
        assert text.count("onward is watching") == 1, text
        assert "onward stopped" in text, text
        assert "Error logging to API" not in text, text  # its queued logs went first
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
