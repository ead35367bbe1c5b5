"""The incremental sync on a real Maildir in a temp folder."""

from __future__ import annotations

import os
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from onward.config.settings import Settings
from onward.tasks.mail.maildir import (
    SETTLE_US,
    MaildirMailbox,
    create_maildir,
    deliver_to_maildir,
)
from onward.tasks.mail.sync import SyncReport, sync_once
from onward.tasks.mail.watcher import MAX_RECHECKS, Watcher, cursor_behind
from onward.tasks.store import LedgerEntry, Store
from tests.support.db import add_mailbox
from tests.support.mailgen import MALFORMED, make_mail


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under the Maildir with its mtime and size: reading must change none."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size)
    return out


def _ledger_keys(store: Store) -> list[str]:
    with store.unit_of_work() as session:
        return list(session.scalars(select(LedgerEntry.key).order_by(LedgerEntry.id)))


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    return create_maildir(tmp_path / "Maildir")


def _sync(store: Store, root: Path, **kw: Any) -> SyncReport:
    with MaildirMailbox(root) as box:
        return sync_once(store, "test", box, **kw)


def test_first_run_ignores_old_mail_then_records_new_once(store: Store, maildir: Path) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    deliver_to_maildir(maildir, make_mail(1))
    first = _sync(store, maildir)
    assert first.first_run
    assert first.recorded == 0
    deliver_to_maildir(maildir, make_mail(2))
    second = _sync(store, maildir)
    assert second.recorded == 1
    assert _ledger_keys(store) == ["<test-2@company.example>"]
    assert _sync(store, maildir).recorded == 0


def test_mail_delivered_in_the_same_clock_tick_as_the_cursor_is_still_read(
    store: Store, maildir: Path
) -> None:
    # A Maildir UID is a file's ctime from the kernel's coarse clock: a message delivered
    # right after a pass can share the newest UID the pass saw (a tick is 1-10 ms; a test
    # cannot hit one on purpose, so it checks the rule that makes it harmless: the cursor
    # never reaches a UID that fresh mail could still get).
    add_mailbox(store, kind="maildir", path=str(maildir))
    _sync(store, maildir)  # the first run starts the watch
    deliver_to_maildir(maildir, make_mail(1))
    assert _sync(store, maildir).recorded == 1
    with MaildirMailbox(maildir) as box:
        box.open()
        newest = max(box.uids_after(0))
        # The cursor stays a settle time short of the scan: a file delivered from the scan
        # on (its ctime can lag the scan by a tick) gets a UID above it. Asked about a UID
        # from this very instant, not ``newest``: on a slow machine the pass above can take
        # longer than the settle time, and then ``newest`` is rightly settled.
        just_now = time.time_ns() // 1000
        assert box.settled(just_now) <= just_now - SETTLE_US
        assert box.settled(newest) <= newest
    late = deliver_to_maildir(maildir, make_mail(2))
    with MaildirMailbox(maildir) as box:
        box.open()
        assert newest <= max(box.uids_after(0)), "the late file's UID is not below the newest"
    second = _sync(store, maildir)
    assert second.recorded == 1, second
    assert sorted(_ledger_keys(store)) == ["<test-1@company.example>", "<test-2@company.example>"]
    assert late.exists()


def test_a_steady_stream_during_passes_is_read_without_a_ring(
    store: Store, settings: Settings, maildir: Path
) -> None:
    # Mail lands during every pass, more passes in a row than the re-check limit: each look
    # after a pass takes in the news (the folder signature moves on), so only the re-check
    # can see it. Found by tests/bench/soak.py: a batch waited minutes for a ring.
    add_mailbox(store, kind="maildir", path=str(maildir))
    to_deliver = iter(range(1, MAX_RECHECKS + 6))
    last = MAX_RECHECKS + 5

    def run_sync(box: MaildirMailbox) -> SyncReport:
        report = sync_once(store, "test", box)
        n = next(to_deliver, None)
        if n is not None:
            deliver_to_maildir(maildir, make_mail(n))  # lands while this pass runs
        return report

    stop = threading.Event()
    watcher = Watcher(
        lambda: MaildirMailbox(maildir, poll_interval=0.2),
        run_sync,  # type: ignore[arg-type]
        renew_seconds=600,
        behind=cursor_behind(settings, "test"),
    )
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(_ledger_keys(store)) < last and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_ledger_keys(store)) == last, (watcher.stats, _ledger_keys(store))
    finally:
        stop.set()
        thread.join(10)


def test_since_backfills_history(store: Store, maildir: Path) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    old = deliver_to_maildir(maildir, make_mail(1))
    ancient = datetime(2001, 1, 1, tzinfo=UTC).timestamp()
    os.utime(old, (ancient, ancient))
    deliver_to_maildir(maildir, make_mail(2))
    report = _sync(store, maildir, since=datetime(2020, 1, 1, tzinfo=UTC))
    assert report.recorded == 1
    report = _sync(store, maildir, since=datetime(2000, 1, 1, tzinfo=UTC))
    assert report.recorded == 1
    assert sorted(_ledger_keys(store)) == ["<test-1@company.example>", "<test-2@company.example>"]


def test_reading_changes_no_file(store: Store, maildir: Path) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    _sync(store, maildir)
    for n in range(5):
        deliver_to_maildir(maildir, make_mail(n), flags="" if n % 2 else "S")
    before = _snapshot(maildir)
    assert _sync(store, maildir).recorded == 5
    assert _snapshot(maildir) == before


def test_malformed_message_is_recorded_and_skipped(store: Store, maildir: Path) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    _sync(store, maildir)
    deliver_to_maildir(maildir, make_mail(1))
    deliver_to_maildir(maildir, MALFORMED)
    deliver_to_maildir(maildir, make_mail(3))
    report = _sync(store, maildir)
    assert (report.recorded, report.malformed) == (2, 1)
    with store.unit_of_work() as session:
        bad = session.scalars(select(LedgerEntry).where(LedgerEntry.status == "malformed")).one()
        assert bad.error
    assert _sync(store, maildir).malformed == 0


def test_crash_between_fetch_and_ledger_write_loses_and_repeats_nothing(
    store: Store, maildir: Path
) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    _sync(store, maildir)
    for n in range(7):
        deliver_to_maildir(maildir, make_mail(n))

    def crash() -> None:
        raise SystemExit("killed")

    with pytest.raises(SystemExit):
        _sync(store, maildir, crash_after_fetch=crash, batch_size=3)
    assert _ledger_keys(store) == []
    report = _sync(store, maildir, batch_size=3)
    assert report.recorded == 7
    with store.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 7


def test_recreated_maildir_is_a_uidvalidity_change_without_repeats(
    store: Store, maildir: Path, tmp_path: Path
) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    _sync(store, maildir)
    deliver_to_maildir(maildir, make_mail(1))
    assert _sync(store, maildir).recorded == 1
    # Restore from a copy: new inodes, new ctimes, same messages, plus one new message.
    copy = tmp_path / "copy"
    shutil.copytree(maildir, copy)
    shutil.rmtree(maildir)
    shutil.copytree(copy, maildir)
    deliver_to_maildir(maildir, make_mail(2))
    report = _sync(store, maildir)
    assert report.uidvalidity_changed
    assert report.recorded == 1
    assert sorted(_ledger_keys(store)) == ["<test-1@company.example>", "<test-2@company.example>"]


def test_flag_change_by_a_mail_client_does_not_repeat(store: Store, maildir: Path) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    _sync(store, maildir)
    path = deliver_to_maildir(maildir, make_mail(1))
    assert _sync(store, maildir).recorded == 1
    os.rename(path, maildir / "cur" / (path.name + ":2,S"))  # what a mail client does
    report = _sync(store, maildir)
    assert report.recorded == 0
    assert report.already_known == 1


def test_not_a_maildir_is_a_clear_error(tmp_path: Path) -> None:
    from onward.tasks.errors import MailboxError

    with pytest.raises(MailboxError, match="is not a Maildir"):
        MaildirMailbox(tmp_path).open()


def test_watch_start_is_recorded(store: Store, maildir: Path) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    before = datetime.now(UTC) - timedelta(seconds=1)
    _sync(store, maildir)
    from onward.tasks.store import get_mailbox

    with store.unit_of_work() as session:
        row = get_mailbox(session, "test")
        assert row is not None
        assert row.watch_start is not None
        assert row.watch_start >= before


def test_parallel_decisions_record_the_same(store: Store, maildir: Path) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    _sync(store, maildir)
    for n in range(9):
        deliver_to_maildir(maildir, make_mail(n))
    deliver_to_maildir(maildir, MALFORMED)
    report = _sync(store, maildir, batch_size=4, parallel_threshold=1)
    assert (report.recorded, report.malformed) == (9, 1)
    assert len(_ledger_keys(store)) == 10


def test_a_header_longer_than_the_envelope_read_is_not_skipped(store: Store, maildir: Path) -> None:
    add_mailbox(store, kind="maildir", path=str(maildir))
    _sync(store, maildir)
    deliver_to_maildir(maildir, make_mail(1, subject="S" * 2_000_000))
    deliver_to_maildir(maildir, make_mail(2, subject="x " * 100_000))
    assert _sync(store, maildir).recorded == 2
