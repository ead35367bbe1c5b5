"""One incremental pass over a folder: never miss a message, never handle one twice.

The cursor (UIDVALIDITY, last UID, watch start) lives on the mailbox row; the ledger has
one row per (mailbox, message key). Each batch of messages is recorded together with the
cursor advance in one transaction, so a crash anywhere before the commit means the batch
is fetched again and recorded once, and a crash after it means it is not fetched again.
On a UIDVALIDITY change the folder is not replayed: only mail that arrived since the
watch started is looked at again, and the ledger skips what was already handled.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tasks.errors import MalformedMessageError, OnwardError
from tasks.mailbox import Fetched, Mailbox
from tasks.message import Message
from tasks.parse import parse_message
from tasks.store import Mailbox as MailboxRow
from tasks.store import (
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


@dataclass(frozen=True)
class StepResult:
    """What the per-message step decided; the sync records it with the message."""

    label: str | None = None
    confidence: float | None = None
    verdict: dict[str, Any] | None = None
    # Domain events to record with the message, as (kind, payload); unique per message.
    events: tuple[tuple[str, dict[str, Any]], ...] = ()


# The per-message step (the classifier, later more). It only decides: it is pure, so a
# batch can be decided first and written in one statement.
MessageHandler = Callable[[Message], StepResult]


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
    labels: dict[str, int] = field(default_factory=dict)
    recorded_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "recorded_ids"}


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

    for start in range(0, len(uids), batch_size):
        batch = uids[start : start + batch_size]
        envelopes = mailbox.envelopes(batch)
        with store.unit_of_work() as session:
            ids = [e.message_id for e in envelopes if e.message_id]
            known = known_keys(session, mailbox_id, ids)
        fresh = [e for e in envelopes if not (e.message_id and e.message_id in known)]
        report.seen += len(envelopes)
        report.already_known += len(envelopes) - len(fresh)
        fetched = mailbox.fetch(fresh, max_text_bytes) if fresh else []
        if crash_after_fetch is not None:
            crash_after_fetch()
        rows, events = _decide(mailbox_id, state.uidvalidity, fetched, handler, report)
        with store.unit_of_work() as session:
            inserted = insert_ledger_rows(session, rows)
            _count(rows, inserted, report)
            insert_events(session, mailbox_id, events, inserted)
            _advance(_mailbox_row(session, mailbox_name), state.uidvalidity, batch[-1])
    with store.unit_of_work() as session:
        row = _mailbox_row(session, mailbox_name)
        _advance(row, state.uidvalidity, state.uidnext - 1)
        row.last_sync_at = utcnow()
        row.last_error = None
    report.seconds = time.monotonic() - started
    return report


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


def _decide(
    mailbox_id: int,
    uidvalidity: int,
    fetched: list[Fetched],
    handler: MessageHandler | None,
    report: SyncReport,
) -> tuple[list[dict[str, Any]], list[tuple[str, str, dict[str, Any]]]]:
    """Parse and run the step for each message: ledger rows and (key, kind, payload) events."""
    rows: dict[str, dict[str, Any]] = {}
    events: list[tuple[str, str, dict[str, Any]]] = []
    for item in fetched:
        row = _parse_row(item)
        if row["status"] == "recorded" and handler is not None and "message" in row:
            try:
                result = handler(row["message"])
            except Exception as exc:
                log.exception("the message step failed for %s", row["key"])
                row["status"], row["error"] = "failed", f"{type(exc).__name__}: {exc}"
            else:
                row["label"], row["confidence"] = result.label, result.confidence
                row["verdict"] = result.verdict
                events.extend((row["key"], kind, payload) for kind, payload in result.events)
        row.pop("message", None)
        row.update(mailbox_id=mailbox_id, uidvalidity=uidvalidity, uid=item.uid)
        if row["key"] in rows:  # the same message twice in one batch
            report.already_known += 1
            continue
        rows[row["key"]] = row
    return list(rows.values()), events


def _parse_row(item: Fetched) -> dict[str, Any]:
    try:
        message = parse_message(item.raw)
    except MalformedMessageError as exc:
        reason = str(exc)
    except Exception as exc:  # a parser bug must not stop the watch either
        log.exception("parsing UID %s failed", item.uid)
        reason = f"parser error: {exc!r}"
    else:
        return {
            "message": message,
            "key": message.key,
            "message_id": message.message_id,
            "status": "recorded",
            "error": None,
            "subject": message.subject[:2000],
            "from_addr": message.from_.addr if message.from_ else None,
            "from_name": message.from_.name if message.from_ else None,
            "sent_at": message.date,
            "in_reply_to": message.in_reply_to,
            "references": list(message.references[-20:]),
        }
    log.warning("UID %s is malformed and was skipped: %s", item.uid, reason)
    # Keyed by content, not UID, so a renumbered folder does not record it twice.
    return {
        "key": "raw:" + hashlib.sha256(item.raw[:8192]).hexdigest(),
        "status": "malformed",
        "error": reason[:2000],
    }


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
