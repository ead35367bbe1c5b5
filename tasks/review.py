"""The review queue: borderline rejections wait for the person to confirm or dismiss them.

A confirmed one is handled exactly as a detected one (its reactions start); a dismissed
one never is. Either way the decision is kept (on the event, and as a line the person can
turn into their own classifier rules in ``$ONWARD_HOME/review-decisions.jsonl``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks.errors import ConfigError
from onward.tasks.events import REJECTION_DETECTED
from onward.tasks.rejections import application_title
from onward.tasks.store import (
    DomainEvent,
    LedgerEntry,
    Store,
    get_mailbox,
    utcnow,
    waiting_reviews,
)

Decision = Literal["confirmed", "dismissed"]
DECISIONS_FILE = "review-decisions.jsonl"


@dataclass(frozen=True)
class ReviewItem:
    """One borderline rejection, as `onward review` shows it."""

    id: int
    title: str
    sender: str | None
    subject: str | None
    received: datetime | None
    confidence: float
    evidence: tuple[str, ...]
    state: str


def describe(session: Session, event: DomainEvent) -> ReviewItem:
    entry = session.get_one(LedgerEntry, event.ledger_id)
    payload = event.payload or {}
    evidence = tuple(
        str(r.get("quote") or r.get("phrase") or "")
        for r in payload.get("reasons") or []
        if r.get("quote") or r.get("phrase")
    )
    sender = f"{entry.from_name} <{entry.from_addr}>" if entry.from_name else entry.from_addr
    return ReviewItem(
        id=event.id,
        title=application_title(payload.get("company"), payload.get("role")),
        sender=sender,
        subject=entry.subject,
        received=entry.sent_at,
        confidence=float(payload.get("confidence") or 0),
        evidence=evidence,
        state=event.review or "-",
    )


def list_waiting(settings: Settings, mailbox: str | None = None) -> list[ReviewItem]:
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        row = get_mailbox(session, mailbox) if mailbox else None
        ids = waiting_reviews(session, row.id if row else None)
        return [describe(session, session.get_one(DomainEvent, i)) for i in ids]


@dataclass(frozen=True)
class Decided:
    item: ReviewItem
    decision: Decision
    changed: bool  # False when it had already been decided the same way
    review_run_id: str | None


def decide(
    settings: Settings, event_id: int, decision: Decision, note: str | None = None
) -> Decided:
    """Record the person's answer. Deciding twice the same way changes nothing; changing a
    decision after the reactions started is refused (the draft already exists)."""
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        event = session.get(DomainEvent, event_id)
        if event is None or event.kind != REJECTION_DETECTED or event.review is None:
            raise ConfigError(f"there is no borderline rejection {event_id}; see `onward review`")
        if event.review == decision:
            return Decided(describe(session, event), decision, False, event.review_run_id)
        if event.review != "waiting":
            raise ConfigError(
                f"rejection {event_id} was already {event.review}; it cannot be changed now"
            )
        event.review, event.reviewed_at = decision, utcnow()
        if decision == "dismissed":
            event.handled_at = utcnow()  # nothing will ever start for it
        item = describe(session, event)
        _remember(settings, item, decision, note)
        return Decided(item, decision, True, event.review_run_id)


def _remember(settings: Settings, item: ReviewItem, decision: Decision, note: str | None) -> None:
    """The person's own labelled example, for rules of their own (never leaves the home)."""
    path = settings.home / DECISIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    row = {
        "id": f"review-{item.id}",
        "label": "rejection" if decision == "confirmed" else "not_rejection",
        "subject": item.subject,
        "from": item.sender,
        "evidence": list(item.evidence),
        "confidence": item.confidence,
        "note": note,
        "decided_at": utcnow().isoformat(timespec="seconds"),
        "source": "onward review",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def record_review_run(settings: Settings, event_id: int, run_id: str) -> None:
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        event = session.get_one(DomainEvent, event_id)
        if event.review_run_id is None:
            event.review_run_id = run_id


def review_state(settings: Settings, event_id: int) -> str | None:
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        event = session.get(DomainEvent, event_id)
        return event.review if event is not None else None
