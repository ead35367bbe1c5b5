"""A recorded rejection, loaded with what every reaction to it needs."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks.errors import ConfigError
from onward.tasks.events import REJECTION_DETECTED
from onward.tasks.feedback.replies import clean_text
from onward.tasks.mail.accounts import Account
from onward.tasks.mail.addresses import registered_domain
from onward.tasks.mail.message import Address, Message
from onward.tasks.store import (
    DomainEvent,
    LedgerEntry,
    Mailbox,
    utcnow,
)


def application_title(company: str | None, role: str | None) -> str:
    """How onward names an application everywhere: ``Acme — Data Engineer``."""
    name = clean_text(company, 60) or "unknown company"
    job = clean_text(role, 60)
    return f"{name} — {job}" if job else name


@dataclass(frozen=True)
class Rejection:
    """A recorded rejection with what the reactions need, detached from any session."""

    event_id: int
    ledger_id: int
    mailbox_id: int
    account: Account
    message: Message
    payload: dict[str, Any]
    earlier: tuple[Message, ...]

    @property
    def company(self) -> str | None:
        return self.payload.get("company")

    @property
    def role(self) -> str | None:
        return self.payload.get("role")

    @property
    def title(self) -> str:
        """How the UI names it: ``Acme — Data Engineer``."""
        return application_title(self.company, self.role)

    @property
    def marker(self) -> str:
        return clean_text(self.message.message_id or self.message.key, 900)


def mark_started(session: Session, event_id: int) -> None:
    event = session.get(DomainEvent, event_id)
    if event is not None and event.handled_at is None:
        event.handled_at = utcnow()
        event.retry_at = None


# A reaction that failed for a passing reason (the server down, the database locked) is
# tried again later, less often each time, and given up after GIVE_UP_AFTER attempts; one
# that failed on its input or the configuration is given up at once: repeating it would
# fail the same way. Given up means visible (`onward drafts`, `onward status`) until the
# person fixes it and runs `onward drafts --retry`.
RETRY_DELAYS = (
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
)
GIVE_UP_AFTER = len(RETRY_DELAYS) + 1


def record_failure(
    session: Session, event_id: int, reason: str, *, transient: bool, now: datetime | None = None
) -> str:
    """Record a failed attempt at the reactions to ``event_id``: "retry" or "failed"."""
    event = session.get_one(DomainEvent, event_id)
    now = now or utcnow()
    event.attempts = (event.attempts or 0) + 1
    event.last_error = reason[:2000]
    if transient and event.attempts < GIVE_UP_AFTER:
        event.retry_at = now + RETRY_DELAYS[event.attempts - 1]
        return "retry"
    event.retry_at = None
    event.failed_at = now
    return "failed"


def retry_failed(session: Session, mailbox_id: int) -> int:
    """Make the rejections onward gave up on pending again (after the person fixed the
    cause); returns how many."""
    events = session.scalars(
        select(DomainEvent).where(
            DomainEvent.mailbox_id == mailbox_id,
            DomainEvent.kind == REJECTION_DETECTED,
            DomainEvent.handled_at.is_(None),
            or_(DomainEvent.failed_at.is_not(None), DomainEvent.retry_at.is_not(None)),
        )
    ).all()
    for event in events:
        event.failed_at = event.retry_at = None
        event.attempts = 0
    return len(events)


@dataclass(frozen=True)
class Attention:
    """A rejection whose reactions failed: what `onward drafts` and `status` show."""

    title: str
    company: str | None
    role: str | None
    state: str  # "retrying" or "needs_attention"
    reason: str
    attempts: int
    retry_at: datetime | None
    created_at: datetime


def needing_attention(session: Session, mailbox_id: int) -> list[Attention]:
    """Rejections whose reactions failed (given up, or waiting for another try)."""
    events = session.scalars(
        select(DomainEvent)
        .where(
            DomainEvent.mailbox_id == mailbox_id,
            DomainEvent.kind == REJECTION_DETECTED,
            DomainEvent.handled_at.is_(None),
            DomainEvent.last_error.is_not(None),
        )
        .order_by(DomainEvent.id)
    ).all()
    out = []
    for event in events:
        payload = event.payload or {}
        company, role = payload.get("company"), payload.get("role")
        out.append(
            Attention(
                title=application_title(company, role),
                company=company,
                role=role,
                state="needs_attention" if event.failed_at else "retrying",
                reason=event.last_error or "",
                attempts=event.attempts or 0,
                retry_at=event.retry_at,
                created_at=event.created_at,
            )
        )
    return out


def load_rejection(session: Session, event_id: int, settings: Settings) -> Rejection:
    event = session.get(DomainEvent, event_id)
    if event is None or event.kind != REJECTION_DETECTED:
        raise ConfigError(f"no rejection event {event_id}")
    entry = session.get_one(LedgerEntry, event.ledger_id)
    mailbox = session.get_one(Mailbox, event.mailbox_id)
    payload = dict(event.payload or {})
    message = ledger_message(entry, reply_to=payload.get("reply_to") or ())
    return Rejection(
        event_id=event.id,
        ledger_id=entry.id,
        mailbox_id=mailbox.id,
        account=Account.from_row(mailbox, settings),
        message=message,
        payload=payload,
        earlier=tuple(ledger_message(e) for e in earlier_entries(session, entry)),
    )


def ledger_message(entry: LedgerEntry, reply_to: Any = ()) -> Message:
    """A Message rebuilt from what the ledger keeps (headers only, no text)."""
    return Message(
        key=entry.key,
        message_id=entry.message_id,
        subject=entry.subject or "",
        from_=Address(entry.from_name or "", entry.from_addr) if entry.from_addr else None,
        reply_to=tuple(Address(r.get("name", ""), r["addr"]) for r in reply_to if r.get("addr")),
        date=entry.sent_at,
        in_reply_to=entry.in_reply_to,
        references=tuple(entry.references or ()),
    )


def earlier_entries(session: Session, entry: LedgerEntry, limit: int = 50) -> list[LedgerEntry]:
    """Mail recorded before ``entry`` in its thread, or from its organisation's domain."""
    thread_ids = [i for i in (*(entry.references or ()), entry.in_reply_to) if i]
    conditions = []
    if thread_ids:
        conditions.append(LedgerEntry.message_id.in_(thread_ids))
    if entry.from_addr and "@" in entry.from_addr:
        domain = registered_domain(entry.from_addr)
        conditions.append(LedgerEntry.from_addr.like(f"%@{domain}"))
        conditions.append(LedgerEntry.from_addr.like(f"%.{domain}"))
    if not conditions:
        return []
    rows = session.scalars(
        select(LedgerEntry)
        .where(
            LedgerEntry.mailbox_id == entry.mailbox_id,
            LedgerEntry.id != entry.id,
            LedgerEntry.status == "recorded",
            or_(*conditions),
        )
        .order_by(LedgerEntry.sent_at, LedgerEntry.id)
        .limit(limit)
    )
    return list(rows)
