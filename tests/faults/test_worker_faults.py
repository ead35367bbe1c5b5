"""Faults around the worker's process lifecycle, each printing its figures (run with -s).

(a) `onward sync --once` SIGKILLed ten times at random points of a 1,000-message backfill:
    nothing lost, nothing repeated, no process of it left.
(b) `onward run`'s local Prefect server killed: it comes back, a rejection delivered after
    the kill is drafted.
(c) Dovecot restarted while the worker idles: caught up (the rejection drafted) in time.
(d) The app database (SQLite) locked by another writer for 20 s: the pass catches up after.
(c) and (d) again with the app database on PostgreSQL (ONWARD_TEST_DATABASE_URL): one more
    worker, the ledger table locked for (d).
(e) A Prefect server of the person's own (PREFECT_API_URL) gone, then SIGTERM: the worker
    stops at once instead of retrying the API.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from onward.tasks.lifecycle import descendants, start_time
from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir, maildir_folder_path
from onward.tasks.store import LedgerEntry, Store
from tests.support.dovecot import DovecotServer
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ONWARD = str(Path(sys.executable).with_name("onward"))


def rejection(n: int, company: str = "Firmly") -> bytes:
    return (
        f"Message-ID: <fault-rej-{n}@careers.example>\r\n"
        "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
        f"From: Morgan Lee <morgan.lee@{company.lower()}.example>\r\n"
        "To: alice@example.org\r\n"
        f"Subject: Your application for Platform Engineer ({n})\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Dear Alice,\r\n\r\nThank you for applying for the Platform Engineer position at "
        f"{company}. After careful consideration, we have decided to move forward with other "
        "candidates.\r\n\r\nKind regards,\r\nMorgan Lee\r\n"
    ).encode()


def ordinary(n: int) -> bytes:
    return (
        f"Message-ID: <fault-other-{n}@news.example>\r\n"
        "Date: Mon, 30 Nov 2026 09:00:00 +0000\r\n"
        "From: Weekly Digest <digest@news.example>\r\n"
        "To: alice@example.org\r\n"
        f"Subject: Your weekly digest #{n}\r\n\r\n"
        f"Here is what happened this week: {n} new releases.\r\n"
    ).encode()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def processes_naming(marker: str) -> set[int]:
    """Our processes whose command line or environment names ``marker`` (a temp home)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in blob and start_time(int(entry.name)) is not None:
            found.add(int(entry.name))
    return found


def _commands(pids: set[int]) -> list[str]:
    out = []
    for pid in sorted(pids):
        try:
            out.append(
                f"{pid}: "
                + (Path(f"/proc/{pid}/cmdline").read_bytes()[:200])
                .decode(errors="replace")
                .replace("\0", " ")
            )
        except OSError:
            out.append(f"{pid}: (gone)")
    return out


def survivors(tree: dict[int, str]) -> set[int]:
    return {pid for pid, stamp in tree.items() if start_time(pid) == stamp}


# --- (a) SIGKILL during a backfill -------------------------------------------------------


def test_sigkilled_sync_once_loses_nothing_repeats_nothing_leaves_nothing(
    tmp_path: Path,
) -> None:
    home, maildir = tmp_path / "home", create_maildir(tmp_path / "Maildir")
    rejections = set(random.Random(12).sample(range(1000), 20))
    for n in range(1000):
        deliver_to_maildir(maildir, rejection(n, f"Firm{n}") if n in rejections else ordinary(n))
    env = {**os.environ, "ONWARD_HOME": str(home)}
    for key in ("ONWARD_DATABASE_URL", "PREFECT_API_URL", "PREFECT_HOME"):
        env.pop(key, None)
    subprocess.run(
        [ONWARD, "connect", "--maildir", str(maildir), "--address", "alice@example.org"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    sync = [ONWARD, "sync", "--once", "--since", "2000-01-01"]
    rng = random.Random()
    kills: list[tuple[float, int, float]] = []
    for _ in range(10):
        proc = subprocess.Popen(sync, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        begun = time.monotonic()
        deadline = time.monotonic() + rng.uniform(2.0, 14.0)
        tree: dict[int, str] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            for pid in descendants([proc.pid]):  # what a kill now would orphan
                if pid not in tree and (stamp := start_time(pid)) is not None:
                    tree[pid] = stamp
            time.sleep(0.1)
        if proc.poll() is not None:
            continue  # it finished before its kill: nothing to kill
        at = time.monotonic() - begun
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left = survivors(tree) | processes_naming(str(home))
        gone = wait_for(
            lambda tree=tree: not survivors(tree) and not processes_naming(str(home)),  # type: ignore[misc]
            20,
            f"the children of a killed sync ({sorted(left)}) to end",
        )
        kills.append((at, len(tree), gone))
    done = subprocess.run(sync, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with Store.open(f"sqlite:///{home / 'onward.db'}") as store, store.unit_of_work() as s:
        recorded = s.scalar(select(func.count()).select_from(LedgerEntry))
        distinct = s.scalar(select(func.count(func.distinct(LedgerEntry.key))))
    drafts = [
        p
        for sub in ("new", "cur")
        for p in (maildir_folder_path(maildir, "Drafts") / sub).iterdir()
    ]
    print(
        f"\n(a) {len(kills)} SIGKILLs during a 1,000-message backfill, at "
        f"{', '.join(f'{k[0]:.1f}' for k in kills)} s; children per kill "
        f"{[k[1] for k in kills]}, all gone within {max((k[2] for k in kills), default=0):.1f} s;"
        f" recorded {recorded} (distinct {distinct}), lost {1000 - distinct}, "
        f"repeated {recorded - distinct}; drafts {len(drafts)} for {len(rejections)} rejections"
    )
    assert len(kills) >= 5, "most runs must be killed mid-way for the test to mean anything"
    assert recorded == distinct == 1000
    assert len(drafts) == len(rejections)
    assert not processes_naming(str(home))


# --- (b), (c), (d): one `onward run` on Dovecot ------------------------------------------


class Worker:
    def __init__(self, dovecot: DovecotServer, home: Path, health_port: int) -> None:
        self.dovecot, self.home = dovecot, home
        self.health = f"http://127.0.0.1:{health_port}/health"
        self.log = home.parent / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.delivered = 0
        self.database_url: str | None = None  # None: SQLite in home

    def state(self) -> dict[str, object]:
        try:
            with urllib.request.urlopen(self.health, timeout=5) as response:
                data: dict[str, object] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            data = json.loads(exc.read())
        except OSError:
            return {}
        return data

    def drafts(self) -> int:
        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=10)
        try:
            client.login("alice", "secret")
            client.select_folder("Drafts", readonly=True)
            return len(client.search(["ALL"]))
        except (OSError, IMAPClient.Error):
            return -1
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def deliver_rejection(self) -> int:
        """Deliver a new rejection; the number of drafts there should then be."""
        self.delivered += 1
        self.dovecot.deliver("alice", rejection(1000 + self.delivered, f"Co{self.delivered}"))
        return self.delivered


@contextlib.contextmanager
def running_worker(base: Path, database_url: str | None = None) -> Iterator[Worker]:
    """`onward run` on a fresh Dovecot, its app database SQLite (or ``database_url``)."""
    home = base / "home"
    with DovecotServer() as dovecot:
        w = Worker(dovecot, home, free_port())
        env = {
            **os.environ,
            "ONWARD_HOME": str(home),
            "MAIL_PW": "secret",
            "ONWARD_CALENDAR_FEED_PORT": "0",
            "ONWARD_WORKER_HEALTH_PORT": w.health.split(":")[2].split("/")[0],
            "ONWARD_WORKER_PREFECT_PORT": str(free_port()),
        }
        for key in ("ONWARD_DATABASE_URL", "PREFECT_API_URL", "PREFECT_HOME"):
            env.pop(key, None)
        if database_url:
            env["ONWARD_DATABASE_URL"] = database_url
        subprocess.run(
            [ONWARD, "connect", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user",
             "alice", "--address", "alice@example.org", "--security", "plain",
             "--password-env", "MAIL_PW"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        with w.log.open("ab") as log:
            w.proc = subprocess.Popen([ONWARD, "run"], env=env, stdout=log, stderr=log)
        try:
            wait_for(lambda: w.state().get("healthy") is True, 240, "a healthy worker")
            yield w
        finally:
            w.proc.send_signal(signal.SIGTERM)
            try:
                code = w.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                raise
            assert code == 0, w.log.read_text()[-3000:]
            # A child still shutting down on a loaded machine is not an orphan; one that
            # outlives a minute is, and the failure names it.
            left: set[int] = set()

            def gone() -> bool:
                left.clear()
                left.update(processes_naming(str(home)))
                return not left

            deadline = time.monotonic() + 60
            while not gone():
                if time.monotonic() > deadline:
                    pytest.fail(f"left running a minute after the worker: {_commands(left)}")
                time.sleep(0.5)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    from tests.support.dovecot_fixtures import require_dovecot

    require_dovecot()
    with running_worker(tmp_path_factory.mktemp("worker")) as w:
        yield w


@pytest.fixture(scope="module")
def pg_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """The worker with its app database on PostgreSQL (a database of its own, dropped after)."""
    import uuid

    from sqlalchemy import create_engine, make_url, text

    from tests.support.dovecot_fixtures import require_dovecot

    admin_url = os.environ.get("ONWARD_TEST_DATABASE_URL")
    if not admin_url:
        if os.environ.get("ONWARD_REQUIRE_POSTGRES") == "1":
            pytest.fail("ONWARD_REQUIRE_POSTGRES=1 but ONWARD_TEST_DATABASE_URL is not set")
        pytest.skip("set ONWARD_TEST_DATABASE_URL to run the PostgreSQL variant")
    require_dovecot()
    name = f"onward_faults_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        with running_worker(tmp_path_factory.mktemp("pg-worker"), url) as w:
            w.database_url = url
            yield w
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_killed_prefect_server_comes_back_and_drafts_go_on(worker: Worker) -> None:
    assert worker.proc is not None
    servers = [
        p
        for p in descendants([worker.proc.pid])
        if b"server\x00start" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    assert servers, "onward run started no local Prefect server"
    os.kill(servers[0], signal.SIGKILL)
    killed = time.monotonic()
    expected = worker.deliver_rejection()
    drafted = wait_for(lambda: worker.drafts() == expected, 120, "the draft after the kill")
    back = wait_for(
        lambda: (
            worker.state().get("prefect_api") == "up"
            and (worker.state().get("prefect_server_restarts") or 0) >= 1
        ),
        120,
        "the server's restart",
    )
    print(
        f"\n(b) Prefect server SIGKILLed: rejection drafted {drafted:.1f} s after the kill, "
        f"server back and healthy {time.monotonic() - killed:.1f} s after it (waited {back:.1f})"
    )
    assert worker.proc.poll() is None


def test_dovecot_restart_while_idling_is_caught_up(worker: Worker) -> None:
    restart_dovecot_and_catch_up(worker, "(c)")


def test_postgresql_dovecot_restart_while_idling_is_caught_up(pg_worker: Worker) -> None:
    restart_dovecot_and_catch_up(pg_worker, "(c, PostgreSQL)")


def restart_dovecot_and_catch_up(worker: Worker, label: str) -> None:
    dovecot = worker.dovecot
    assert dovecot.pid is not None
    proc = dovecot._proc
    assert proc is not None
    os.killpg(dovecot.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    dovecot._proc = None
    dovecot._launch()
    restarted = time.monotonic()
    expected = worker.deliver_rejection()  # while the worker is still reconnecting
    wait_for(lambda: worker.drafts() == expected, 60, "the draft after the restart")
    caught_up = time.monotonic() - restarted
    print(
        f"\n{label} Dovecot restarted while the worker idled: a rejection delivered at once "
        f"was drafted {caught_up:.1f} s after the restart (reconnects so far "
        f"{worker.state().get('reconnects')})"
    )
    assert caught_up <= 60


def test_database_locked_for_20_s_then_caught_up(worker: Worker) -> None:
    db = sqlite3.connect(worker.home / "onward.db", timeout=30, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    locked = time.monotonic()
    try:
        expected = worker.deliver_rejection()
        hold_lock(worker, locked, expected, "the database")
    finally:
        db.execute("ROLLBACK")
        db.close()
    caught_up = caught_up_after_lock(worker, locked, expected, "(d) app database")
    assert caught_up <= 30


def hold_lock(worker: Worker, locked: float, expected: int, what: str) -> None:
    """Keep the lock for its 20 s, as specified; no draft may appear meanwhile."""
    while time.monotonic() - locked < 20:
        assert worker.drafts() < expected, f"drafted while {what} was locked?"
        time.sleep(1.0)


def caught_up_after_lock(worker: Worker, locked: float, expected: int, label: str) -> float:
    """Seconds from the lock's release to the draft, printed with the failed passes."""
    released = time.monotonic()
    caught_up = wait_for(lambda: worker.drafts() == expected, 90, "the draft after the lock")
    print(
        f"\n{label} locked for {released - locked:.0f} s: the rejection was drafted "
        f"{caught_up:.1f} s after the lock was released; failed passes meanwhile "
        f"{worker.state().get('failed_passes')}"
    )
    return caught_up


def test_postgresql_table_locked_for_20_s_then_caught_up(pg_worker: Worker) -> None:
    """PostgreSQL makes a blocked pass wait rather than fail: the ledger locked by another
    transaction for 20 s, then the pass goes on."""
    from sqlalchemy import create_engine, text

    assert pg_worker.database_url is not None
    engine = create_engine(pg_worker.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE"))
            locked = time.monotonic()
            expected = pg_worker.deliver_rejection()
            hold_lock(pg_worker, locked, expected, "the ledger")
            conn.rollback()
    finally:
        engine.dispose()
    caught_up = caught_up_after_lock(pg_worker, locked, expected, "(d, PostgreSQL) ledger")
    assert caught_up <= 30


def test_sigterm_with_the_prefect_api_gone_stops_at_once(tmp_path: Path) -> None:
    """Stopping paused the deployments through the API, each call retried with back-off:
    73 s with the API gone, near systemd's 90 s before it kills."""
    from onward.deployments.server import LocalPrefectServer

    maildir = create_maildir(tmp_path / "Maildir")
    env = {
        **os.environ,
        "ONWARD_HOME": str(tmp_path / "home"),
        "ONWARD_CALENDAR_FEED_PORT": "0",
        "ONWARD_WORKER_HEALTH_PORT": str(free_port()),
    }
    for key in ("ONWARD_DATABASE_URL", "PREFECT_HOME"):
        env.pop(key, None)
    subprocess.run(
        [ONWARD, "connect", "--maildir", str(maildir), "--address", "alice@example.org"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    log = tmp_path / "worker.log"
    server = LocalPrefectServer(tmp_path / "prefect", port=free_port())
    server.start()
    try:
        env["PREFECT_API_URL"] = server.api_url
        with log.open("wb") as out:
            proc = subprocess.Popen([ONWARD, "run"], env=env, stdout=out, stderr=out)
        try:
            wait_for(lambda: "onward is watching" in log.read_text(), 240, "the worker")
            time.sleep(12)  # the runner is serving its deployments
        finally:
            server.stop()
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        took = time.monotonic() - asked
    finally:
        server.stop()
    print(f"\n(e) Prefect API gone, then SIGTERM: the worker exited {code} after {took:.1f} s")
    assert code == 0, log.read_text()[-3000:]
    assert took < 30, log.read_text()[-3000:]
    assert "serving the deployments stopped" not in log.read_text()
