"""The IMAP backend and the sync against a real Dovecot on 127.0.0.1."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from onward.tasks.errors import ConfigError, MailboxAuthError, MailboxConnectError, MailboxTLSError
from onward.tasks.mail.imap import ImapConfig, ImapMailbox
from onward.tasks.mail.sync import SyncReport, sync_once
from onward.tasks.mail.watcher import Watcher
from onward.tasks.store import LedgerEntry, Store
from tests.support.db import add_mailbox
from tests.support.dovecot import DovecotServer
from tests.support.mailgen import make_mail

pytestmark = pytest.mark.integration


def imap_box(server: DovecotServer, password: str = "secret", **kw: Any) -> ImapMailbox:
    config = ImapConfig(
        host="127.0.0.1", port=server.port, username="alice", security="plain", **kw
    )
    return ImapMailbox(config, lambda: password)


def sync(store: Store, server: DovecotServer, **kw: Any) -> SyncReport:
    with imap_box(server) as box:
        return sync_once(store, "test", box, **kw)


def keys(store: Store) -> list[str]:
    with store.unit_of_work() as session:
        return sorted(session.scalars(select(LedgerEntry.key)))


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def mailbox_row(store: Store) -> str:
    return add_mailbox(store, kind="imap", host="127.0.0.1", username="alice")


def test_first_run_ignores_history_unless_since(
    store: Store, dovecot: DovecotServer, mailbox_row: str
) -> None:
    dovecot.deliver("alice", make_mail(1), internaldate=datetime(2001, 5, 1, tzinfo=UTC))
    dovecot.deliver("alice", make_mail(2))
    first = sync(store, dovecot)
    assert first.first_run
    assert first.recorded == 0
    dovecot.deliver("alice", make_mail(3))
    assert sync(store, dovecot).recorded == 1
    assert keys(store) == ["<test-3@company.example>"]
    backfill = sync(store, dovecot, since=datetime(2020, 1, 1, tzinfo=UTC))
    assert backfill.recorded == 1  # message 2; message 1 arrived before 2020
    assert keys(store) == ["<test-2@company.example>", "<test-3@company.example>"]


def test_since_on_first_run_backfills(
    store: Store, dovecot: DovecotServer, mailbox_row: str
) -> None:
    dovecot.deliver("alice", make_mail(1), internaldate=datetime(1999, 5, 1, tzinfo=UTC))
    dovecot.deliver("alice", make_mail(2), internaldate=datetime(2010, 5, 1, tzinfo=UTC))
    report = sync(store, dovecot, since=datetime(2005, 1, 1, tzinfo=UTC))
    assert report.recorded == 1
    assert keys(store) == ["<test-2@company.example>"]
    assert sync(store, dovecot).seen == 0


def test_no_flag_changes(store: Store, dovecot: DovecotServer, mailbox_row: str) -> None:
    sync(store, dovecot)
    for n in range(6):
        dovecot.deliver("alice", make_mail(n, html="<p>hi</p>" if n % 2 else None))
    dovecot.doveadm("flags", "add", "-u", "alice", "\\Flagged", "mailbox", "INBOX", "uid", "2")
    before = dovecot.flags("alice")
    assert len(before) == 6
    assert sync(store, dovecot).recorded == 6
    assert dovecot.flags("alice") == before
    assert all("\\Seen" not in flags for flags in before.values())


def _bytes_sent_to_client(server: DovecotServer) -> list[int]:
    return [int(n) for n in re.findall(r"Logged out in=\d+ out=(\d+)", server.log())]


def test_large_attachment_is_not_downloaded(
    store: Store, dovecot: DovecotServer, mailbox_row: str
) -> None:
    sync(store, dovecot)
    big = make_mail(
        1, body="We regret to tell you the role is closed.\n", attachment=b"\x89" * 5_000_000
    )
    assert len(big) > 6_000_000  # base64 grows it
    dovecot.deliver("alice", big)
    report = sync(store, dovecot)
    assert report.recorded == 1
    assert wait_for(lambda: len(_bytes_sent_to_client(dovecot)) >= 2)
    # The whole session that fetched it moved a few KB, not megabytes.
    assert max(_bytes_sent_to_client(dovecot)) < 50_000
    with store.unit_of_work() as session:
        entry = session.scalars(select(LedgerEntry)).one()
        assert entry.subject == "Message number 1"


def test_crash_between_fetch_and_ledger_write(
    store: Store, dovecot: DovecotServer, mailbox_row: str
) -> None:
    sync(store, dovecot)
    for n in range(5):
        dovecot.deliver("alice", make_mail(n))

    def crash() -> None:
        raise SystemExit("killed between fetch and ledger write")

    with pytest.raises(SystemExit):
        sync(store, dovecot, crash_after_fetch=crash, batch_size=2)
    assert keys(store) == []
    assert sync(store, dovecot, batch_size=2).recorded == 5
    assert sync(store, dovecot).recorded == 0
    assert len(keys(store)) == 5


def test_uidvalidity_change_neither_loses_nor_repeats(
    store: Store, dovecot: DovecotServer, mailbox_row: str
) -> None:
    sync(store, dovecot)
    dovecot.deliver("alice", make_mail(1))
    assert sync(store, dovecot).recorded == 1
    dovecot.set_uidvalidity("alice", "INBOX", 12345)
    dovecot.deliver("alice", make_mail(2))
    report = sync(store, dovecot)
    assert report.uidvalidity_changed
    assert report.recorded == 1
    assert report.already_known == 1
    assert keys(store) == ["<test-1@company.example>", "<test-2@company.example>"]


def test_renumbered_folder_neither_loses_nor_repeats(
    store: Store, dovecot: DovecotServer, mailbox_row: str
) -> None:
    dovecot.deliver("alice", make_mail(0), internaldate=datetime(2001, 1, 1, tzinfo=UTC))
    sync(store, dovecot)
    for n in (1, 2, 3):
        dovecot.deliver("alice", make_mail(n))
    assert sync(store, dovecot).recorded == 3
    dovecot.renumber("alice")
    dovecot.deliver("alice", make_mail(4))
    report = sync(store, dovecot)
    assert report.uidvalidity_changed
    assert report.recorded == 1
    assert len(keys(store)) == 4
    assert "<test-0@company.example>" not in keys(store)  # older than the watch: not replayed


def test_malformed_message_does_not_stop_the_sync(
    store: Store, dovecot: DovecotServer, mailbox_row: str
) -> None:
    sync(store, dovecot)
    dovecot.deliver("alice", make_mail(1))
    dovecot.deliver("alice", b"\r\n\r\nno header here, only a body\r\n")
    dovecot.deliver("alice", make_mail(3))
    report = sync(store, dovecot)
    assert (report.recorded, report.malformed) == (2, 1)


@pytest.fixture
def watcher_thread(
    store: Store, dovecot: DovecotServer, mailbox_row: str
) -> Iterator[tuple[Watcher, threading.Event]]:
    stop = threading.Event()
    watcher = Watcher(
        lambda: imap_box(dovecot),
        lambda box: sync_once(store, "test", box),
        renew_seconds=540,
        backoff_initial=0.2,
        backoff_max=1.0,
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            watcher.run(stop)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert wait_for(lambda: watcher.stats.syncs >= 1)
    yield watcher, stop
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert errors == []


def test_idle_wakeup_syncs_new_mail(
    store: Store, dovecot: DovecotServer, watcher_thread: tuple[Watcher, threading.Event]
) -> None:
    # The renewal is 9 minutes away: only the IDLE doorbell can make this arrive.
    dovecot.deliver("alice", make_mail(1))
    assert wait_for(lambda: keys(store) == ["<test-1@company.example>"])


def test_reconnects_after_server_kick(
    store: Store, dovecot: DovecotServer, watcher_thread: tuple[Watcher, threading.Event]
) -> None:
    watcher, _ = watcher_thread
    dovecot.kick("alice")
    dovecot.deliver("alice", make_mail(1))
    assert wait_for(lambda: keys(store) == ["<test-1@company.example>"])
    assert watcher.stats.reconnects >= 1


def test_reconnects_after_silent_connection_loss(
    store: Store, dovecot: DovecotServer, watcher_thread: tuple[Watcher, threading.Event]
) -> None:
    watcher, _ = watcher_thread
    assert dovecot.kill_imap_processes("alice")
    dovecot.deliver("alice", make_mail(2))
    assert wait_for(lambda: keys(store) == ["<test-2@company.example>"])
    assert watcher.stats.reconnects >= 1


def test_wrong_password_is_one_clear_line(dovecot: DovecotServer) -> None:
    with pytest.raises(MailboxAuthError) as info:
        imap_box(dovecot, password="wrong").open()
    message = str(info.value)
    assert "\n" not in message
    assert "refused the password for alice" in message


def test_unreachable_server_is_one_clear_line() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    config = ImapConfig(host="127.0.0.1", port=port, username="alice", security="plain")
    with pytest.raises(MailboxConnectError, match="check --host and --port"):
        ImapMailbox(config, lambda: "x").open()


def test_untrusted_certificate_is_refused(dovecot_tls: DovecotServer) -> None:
    assert dovecot_tls.tls_port is not None
    for security, port in (("tls", dovecot_tls.tls_port), ("starttls", dovecot_tls.port)):
        config = ImapConfig(host="localhost", port=port, username="alice", security=security)
        with pytest.raises(MailboxTLSError, match="not trusted") as info:
            ImapMailbox(config, lambda: "secret").open()
        assert "\n" not in str(info.value)
        trusted = ImapConfig(
            host="localhost",
            port=port,
            username="alice",
            security=security,
            ca_file=dovecot_tls.cafile,
        )
        with ImapMailbox(trusted, lambda: "secret") as box:
            assert box.open().uidvalidity > 0


def test_plain_is_refused_for_remote_hosts() -> None:
    with pytest.raises(ConfigError, match="unencrypted"):
        ImapConfig(host="imap.example.com", username="alice", security="plain")


def test_drafts_folder_is_discovered(dovecot: DovecotServer) -> None:
    with imap_box(dovecot) as box:
        assert box.find_drafts_folder() == "Drafts"
