"""One incremental pass over a folder: never miss a message, never handle one twice.

The cursor (UIDVALIDITY, last UID, watch start) lives on the mailbox row; the ledger has
one row per (mailbox, message key). Each batch of messages is recorded together with the
cursor advance in one transaction, so a crash anywhere before the commit means the batch
is fetched again and recorded once, and a crash after it means it is not fetched again.
On a UIDVALIDITY change the folder is not replayed: only mail that arrived since the
watch started is looked at again, and the ledger skips what was already handled.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks import progress
from onward.tasks.errors import OnwardError
from onward.tasks.lifecycle import init_pool_worker
from onward.tasks.mail.decide import Decided, MessageHandler, decide_batch, warm_up
from onward.tasks.mail.mailbox import Envelope, Fetched, Mailbox
from onward.tasks.mail.message_ids import message_id_from_header
from onward.tasks.store import Mailbox as MailboxRow
from onward.tasks.store import (
    Store,
    get_mailbox,
    insert_events,
    insert_ledger_rows,
    known_keys,
    utcnow,
)

log = logging.getLogger("onward.sync")

# After a UIDVALIDITY change mail is re-read from a little before the watch started:
# INTERNALDATE has whole seconds and comes from the server's clock, not ours. The ledger
# skips what was handled; the slack only risks looking at a few minutes of older mail.
RESCAN_SLACK = timedelta(minutes=5)


@dataclass
class SyncReport:
    """What one pass did; ``recorded`` lists the ledger ids of messages new to onward."""

    mailbox: str
    uidvalidity: int = 0
    first_run: bool = False
    uidvalidity_changed: bool = False
    seen: int = 0
    recorded: int = 0
    already_known: int = 0
    malformed: int = 0
    failed: int = 0
    # Rejections whose reactions failed in this pass (recorded on them; see onward drafts).
    attention: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    recorded_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0
    # The pass did not run: another worker holds the mailbox's watch slot.
    busy: bool = False


class MailboxNotConnectedError(OnwardError):
    """The named mailbox was never connected."""


def sync_once(
    store: Store,
    mailbox_name: str,
    mailbox: Mailbox,
    *,
    since: datetime | None = None,
    handler: MessageHandler | None = None,
    batch_size: int = 100,
    max_text_bytes: int = 65536,
    crash_after_fetch: Callable[[], None] | None = None,
    parallel_threshold: int = 1000,
) -> SyncReport:
    """Sync ``mailbox`` (already open or not) into the ledger of ``mailbox_name``.

    ``since`` asks for a backfill from that moment on the first run (and widens the
    watch start on later runs). ``crash_after_fetch`` exists for tests that prove a crash
    between fetch and ledger write loses and repeats nothing.
    """
    started = time.monotonic()
    report = SyncReport(mailbox=mailbox_name)
    state = mailbox.open()
    report.uidvalidity = state.uidvalidity
    with store.unit_of_work() as session:
        row = _mailbox_row(session, mailbox_name)
        mailbox_id = row.id
        report.first_run = row.uidvalidity is None
        if report.first_run:
            row.watch_start = since or utcnow()
            if since is None:
                # First run: start at "now"; the folder's history is not ours to answer.
                row.uidvalidity, row.last_uid = state.uidvalidity, state.uidnext - 1
                row.last_sync_at = utcnow()
                report.seconds = time.monotonic() - started
                return report
        elif since is not None and row.watch_start is not None and since < row.watch_start:
            row.watch_start = since  # a later backfill: the ledger skips what is known
        else:
            since = None
        report.uidvalidity_changed = not report.first_run and row.uidvalidity != state.uidvalidity
        watch_start, last_uid = row.watch_start, row.last_uid

    if report.uidvalidity_changed:
        log.warning(
            "UIDVALIDITY of %s changed to %s: re-reading mail since %s, skipping what is known",
            mailbox_name,
            state.uidvalidity,
            watch_start,
        )
    if report.uidvalidity_changed:
        assert watch_start is not None
        uids = mailbox.uids_since(watch_start - RESCAN_SLACK)
    elif report.first_run or since is not None:
        assert watch_start is not None
        uids = mailbox.uids_since(watch_start.replace(microsecond=0))
    elif last_uid is not None and state.uidnext <= last_uid + 1:
        uids = []  # UIDNEXT says nothing arrived: no SEARCH needed
    else:
        uids = mailbox.uids_after(last_uid or 0)

    # Only a rescan (new UIDVALIDITY, a wider backfill) meets mail the ledger may know: its
    # bodies are not fetched. Above the cursor, the ledger's unique key is guard enough.
    rescan = report.uidvalidity_changed or (since is not None and not report.first_run)

    def write(batch: list[int], decided: Future[Decided]) -> None:
        rows, events, duplicates = decided.result()
        report.already_known += duplicates
        with store.unit_of_work() as session:
            inserted = insert_ledger_rows(session, rows)
            _count(rows, inserted, report)
            insert_events(session, mailbox_id, events, inserted)
            _advance(
                _mailbox_row(session, mailbox_name), state.uidvalidity, mailbox.settled(batch[-1])
            )
        progress.report("messages", uids.index(batch[-1]) + 1, len(uids))

    # A big backlog is decided in a second process while this one fetches the next batch:
    # parsing and classifying cost about as much CPU as imapclient's own response parsing.
    parallel = len(uids) >= parallel_threshold
    with _Decider(handler, parallel=parallel) as decider:
        pending: tuple[list[int], Future[Decided]] | None = None
        for start in range(0, len(uids), batch_size):
            batch = uids[start : start + batch_size]
            envelopes = mailbox.envelopes(batch)
            fresh = _unknown(store, mailbox_id, envelopes) if rescan else envelopes
            report.seen += len(envelopes)
            report.already_known += len(envelopes) - len(fresh)
            fetched = mailbox.fetch(fresh, max_text_bytes) if fresh else []
            if crash_after_fetch is not None:
                crash_after_fetch()
            decided = decider.submit(mailbox_id, state.uidvalidity, fetched)
            if pending is not None:
                write(*pending)
            pending = (batch, decided)
        if pending is not None:
            write(*pending)
    with store.unit_of_work() as session:
        row = _mailbox_row(session, mailbox_name)
        _advance(row, state.uidvalidity, mailbox.settled(state.uidnext - 1))
        row.last_sync_at = utcnow()
        row.last_error = None
    report.seconds = time.monotonic() - started
    return report


def _unknown(store: Store, mailbox_id: int, envelopes: list[Envelope]) -> list[Envelope]:
    ids = {e.uid: message_id_from_header(e.header) for e in envelopes}
    with store.unit_of_work() as session:
        known = known_keys(session, mailbox_id, [i for i in ids.values() if i])
    return [e for e in envelopes if ids[e.uid] not in known]


def _mailbox_row(session: Session, name: str) -> MailboxRow:
    row = get_mailbox(session, name)
    if row is None:
        raise MailboxNotConnectedError(f"no mailbox called {name!r}; run `onward connect` first")
    return row


def _advance(row: MailboxRow, uidvalidity: int, uid: int) -> None:
    """Move the cursor to ``uid``: forward only, unless the old UIDs are void."""
    if row.uidvalidity == uidvalidity and row.last_uid is not None:
        row.last_uid = max(row.last_uid, uid)
    else:
        row.uidvalidity, row.last_uid = uidvalidity, uid


class _Decider:
    """Runs ``decide_batch`` inline, or in a worker process so it overlaps the next fetch."""

    def __init__(self, handler: MessageHandler | None, *, parallel: bool) -> None:
        self.handler = handler
        self.pool: ProcessPoolExecutor | None = None
        if parallel:
            # forkserver: the worker never inherits Prefect's or SQLAlchemy's threads; it
            # imports only onward.tasks.mail.decide, and starts while the first batch is fetched.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["onward.tasks.mail.decide"])
            # The worker (a child of the forkserver, not of us) ends when we do, however we
            # end: a killed `onward sync --once` leaves no decider behind.
            self.pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=context,
                initializer=init_pool_worker,
                initargs=(os.getpid(),),
            )
            self.pool.submit(warm_up)

    def __enter__(self) -> _Decider:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, mailbox_id: int, uidvalidity: int, fetched: list[Fetched]) -> Future[Decided]:
        if self.pool is not None:
            return self.pool.submit(decide_batch, mailbox_id, uidvalidity, fetched, self.handler)
        done: Future[Decided] = Future()
        done.set_result(decide_batch(mailbox_id, uidvalidity, fetched, self.handler))
        return done


def _count(rows: list[dict[str, Any]], inserted: dict[str, int], report: SyncReport) -> None:
    for row in rows:
        ledger_id = inserted.get(row["key"])
        if ledger_id is None:
            report.already_known += 1
        elif row["status"] == "malformed":
            report.malformed += 1
        else:
            report.recorded += 1
            report.recorded_ids.append(ledger_id)
            if row["status"] == "failed":
                report.failed += 1
            if row.get("label"):
                report.labels[row["label"]] = report.labels.get(row["label"], 0) + 1


def nothing_new(settings: Settings, name: str | None) -> bool:
    """UIDNEXT says whether anything arrived; then no flow run (and no Prefect start) is needed."""
    from onward.tasks.mail.accounts import Account, open_backend
    from onward.tasks.store import pending_rejections

    store = Store.open(settings.database_url)
    try:
        with store.unit_of_work() as session:
            row = get_mailbox(session, name)
            if row is None or row.uidvalidity is None or row.last_uid is None:
                return False
            if pending_rejections(session, row.id):
                return False  # reactions a crash left unstarted: the flow picks them up
            account = Account.from_row(row, settings)
            cursor = (row.uidvalidity, row.last_uid)
        with closing(open_backend(account, settings)) as backend:
            state = backend.open()
        if (state.uidvalidity, state.uidnext - 1) != cursor:
            return False
        with store.unit_of_work() as session:
            row = get_mailbox(session, name)
            if row is not None:
                row.last_sync_at = datetime.now(UTC)
        return True
    finally:
        store.close()
