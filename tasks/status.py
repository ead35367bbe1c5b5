"""What `onward status` tells a person: is it watching, what waits on them, where things are."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from onward.config.settings import Settings
from onward.tasks.rejections import application_title, needing_attention
from onward.tasks.store import (
    CalDavAccount,
    Cooldown,
    FeedbackRequest,
    LedgerEntry,
    Store,
    get_mailbox,
    ledger_counts,
    utcnow,
)

WORKER_FILE = "worker.json"


@dataclass(frozen=True)
class WorkerInfo:
    """What a running `onward run` wrote about itself."""

    pid: int
    ui: str | None
    feed: str | None
    started_at: str
    health: str | None = None


@dataclass(frozen=True)
class CooldownRow:
    title: str
    ends_at: datetime


@dataclass
class Status:
    mailbox: str | None
    database: str
    kind: str | None = None
    watching: str | None = None
    watch_start: datetime | None = None
    last_sync: datetime | None = None
    last_error: str | None = None
    messages: int = 0
    malformed: int = 0
    failed: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    drafts_to_review: int = 0
    drafts_needing_recipient: int = 0
    # "title: reason" of each rejection onward gave up on, and how many wait for a retry.
    needs_attention: list[str] = field(default_factory=list)
    retrying: int = 0
    cooldowns: list[CooldownRow] = field(default_factory=list)
    calendar_file: str | None = None
    calendar_feed: str | None = None
    caldav: list[str] = field(default_factory=list)
    worker: WorkerInfo | None = None
    next_check: str = ""
    last_pass_age_seconds: float | None = None
    # A pass is overdue when the last one is older than this (twice the interval run's).
    pass_overdue_after_seconds: int = 0
    pass_overdue: bool = False
    warning: str | None = None


def write_worker_info(
    settings: Settings, ui: str | None, feed: str | None, health: str | None = None
) -> Path:
    """Called by `onward run` at start: status can then say where the UI and feed are."""
    path = settings.home / WORKER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "pid": os.getpid(),
        "ui": ui,
        "feed": feed,
        "health": health,
        "started_at": utcnow().isoformat(timespec="seconds"),
    }
    path.write_text(json.dumps(info))
    return path


def read_worker_info(settings: Settings) -> WorkerInfo | None:
    """The running worker, or None when none runs (a stale file is ignored)."""
    try:
        data = json.loads((settings.home / WORKER_FILE).read_text())
        pid = int(data["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return WorkerInfo(
        pid=pid,
        ui=data.get("ui"),
        feed=data.get("feed"),
        started_at=str(data.get("started_at")),
        health=data.get("health"),
    )


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def gather_status(settings: Settings, mailbox: str | None = None) -> Status:
    status = Status(mailbox=None, database=safe_url(settings.database_url))
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        row = get_mailbox(session, mailbox)
        if row is None:
            return status
        counts = ledger_counts(session, row.id)
        status.mailbox, status.kind = row.name, row.kind
        where = row.path if row.kind == "maildir" else f"{row.username} at {row.host}"
        status.watching = f"{row.folder} of {where}"
        status.watch_start, status.last_sync = row.watch_start, row.last_sync_at
        status.last_error = row.last_error
        status.messages = counts.get("total", 0)
        status.malformed, status.failed = counts.get("malformed", 0), counts.get("failed", 0)
        status.labels = {
            k.removeprefix("label:"): v for k, v in counts.items() if k.startswith("label:")
        }
        by_state = dict(
            session.execute(
                select(FeedbackRequest.state, func.count())
                .where(FeedbackRequest.mailbox_id == row.id)
                .group_by(FeedbackRequest.state)
            ).all()
        )
        status.drafts_to_review = by_state.get("drafted", 0)
        status.drafts_needing_recipient = by_state.get("needs_recipient", 0)
        for item in needing_attention(session, row.id):
            if item.state == "needs_attention":
                status.needs_attention.append(f"{item.title}: {item.reason}")
            else:
                status.retrying += 1
        running = session.execute(
            select(Cooldown, LedgerEntry)
            .join(LedgerEntry, LedgerEntry.id == Cooldown.ledger_id)
            .where(Cooldown.mailbox_id == row.id, Cooldown.ended_at.is_(None))
            .order_by(Cooldown.ends_at)
        ).all()
        status.cooldowns = [
            CooldownRow(_title(entry), cooldown.ends_at) for cooldown, entry in running
        ]
    if settings.calendar_file.is_file():
        status.calendar_file = str(settings.calendar_file)
    status.worker = read_worker_info(settings)
    status.calendar_feed = status.worker.feed if status.worker else None
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        for account in session.scalars(select(CalDavAccount).order_by(CalDavAccount.id)):
            state = f"error: {account.last_error}" if account.last_error else "up to date"
            status.caldav.append(
                f"CalDAV {account.username}, calendar {account.calendar_name!r}: {state}"
                f" (last push {age(account.last_push_at)})"
            )
    if status.worker is not None:
        status.next_check = (
            "as mail arrives (`onward run` is watching), and every "
            f"{settings.worker.fallback_interval_minutes} min"
        )
    else:
        status.next_check = "when you run `onward sync --once` or start `onward run`"
    _judge_last_pass(status, settings)
    return status


def _judge_last_pass(status: Status, settings: Settings, now: datetime | None = None) -> None:
    """How old the last successful pass is, and a warning when it is older than it should be."""
    status.pass_overdue_after_seconds = 2 * 60 * settings.worker.fallback_interval_minutes + 60
    if status.last_sync is None:
        return
    status.last_pass_age_seconds = round(((now or utcnow()) - status.last_sync).total_seconds())
    if status.last_pass_age_seconds <= status.pass_overdue_after_seconds:
        return
    if status.worker is not None:
        status.pass_overdue = True
        status.warning = (
            f"the last successful pass was {age(status.last_sync, now)}, but `onward run` "
            f"passes at least every {settings.worker.fallback_interval_minutes} min: "
            f"see its log{' and ' + status.worker.health if status.worker.health else ''}"
            + (f" (last error: {status.last_error})" if status.last_error else "")
        )
    elif status.last_sync is not None:
        status.warning = (
            f"nothing is watching the inbox: no `onward run` is running and the last pass "
            f"was {age(status.last_sync, now)}; start `onward run` (or `onward sync --once`)"
        )


def _title(entry: LedgerEntry) -> str:
    verdict = entry.verdict or {}
    return application_title(verdict.get("company"), verdict.get("role"))


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """``5 min ago``, ``3 h ago``, ``2 days ago``."""
    if moment is None:
        return "never"
    delta = (now or utcnow()) - moment
    if delta < timedelta(minutes=1):
        return "just now"
    if delta < timedelta(hours=1):
        return f"{int(delta.total_seconds() // 60)} min ago"
    if delta < timedelta(days=1):
        return f"{int(delta.total_seconds() // 3600)} h ago"
    return f"{delta.days} day(s) ago"
