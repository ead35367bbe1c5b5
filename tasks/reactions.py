"""What onward does about a recorded rejection: the feedback-request draft and the cooldown.

Plain functions over the app database and the mailbox; the flows in ``flows/`` call them.
Everything here is safe to repeat: one draft per rejection (a marker header searched
before every APPEND, a unique row per rejection), one cooldown per rejection, stable
calendar UIDs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from config.settings import Settings
from tasks.accounts import Account
from tasks.decide import REJECTION_DETECTED
from tasks.drafts import DraftRef, DraftStore, ImapDrafts, MaildirDrafts
from tasks.errors import ConfigError
from tasks.message import Address, Message
from tasks.replies import (
    ReplyContext,
    build_reply,
    choose_recipient,
    clean_text,
    registered_domain,
    render_feedback_request,
)
from tasks.secrets import load_secret
from tasks.store import (
    Cooldown,
    DomainEvent,
    FeedbackRequest,
    LedgerEntry,
    Mailbox,
    utcnow,
)


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
        company = clean_text(self.company, 60) or "unknown company"
        role = clean_text(self.role, 60)
        return f"{company} — {role}" if role else company

    @property
    def marker(self) -> str:
        return clean_text(self.message.message_id or self.message.key, 900)


def mark_started(session: Session, event_id: int) -> None:
    event = session.get(DomainEvent, event_id)
    if event is not None and event.handled_at is None:
        event.handled_at = utcnow()


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


# --- the feedback request -----------------------------------------------------------------


@dataclass(frozen=True)
class DraftPlan:
    """What to save: the reply's bytes and who it is for (decided, nothing written yet)."""

    rejection: Rejection
    raw: bytes
    to: Address | None
    body: str

    @property
    def state(self) -> str:
        return "drafted" if self.to is not None else "needs_recipient"


def plan_feedback_request(rejection: Rejection, settings: Settings) -> DraftPlan:
    user_addresses = {a.lower() for a in settings.user.addresses}
    own = rejection.account.address or (
        rejection.account.imap.username if rejection.account.imap else None
    )
    if own:
        user_addresses.add(own.lower())
    to = choose_recipient(
        rejection.message,
        rejection.payload.get("sender_kind") or "unknown",
        rejection.company,
        rejection.earlier,
        user_addresses,
    )
    contact = rejection.payload.get("contact_name")
    if to is not None and to.addr != rejection.payload.get("contact_addr"):
        contact = to.name or None  # writing to someone else than the sender: greet them
    body = render_feedback_request(
        ReplyContext(
            contact_name=contact,
            company=rejection.company,
            role=rejection.role,
            sender_name=settings.user.name or None,
            original_subject=rejection.message.subject,
            original_date=rejection.message.date,
        ),
        template_dirs=[settings.templates_dir] if settings.templates_dir.is_dir() else [],
    )
    if not own:
        raise ConfigError(
            f"mailbox {rejection.account.name!r} has no address to write from; "
            "run `onward connect --address you@example.org`"
        )
    raw = build_reply(
        rejection.message,
        body,
        from_=Address(settings.user.name, own),
        to=to,
        marker=rejection.marker,
    )
    return DraftPlan(rejection=rejection, raw=raw, to=to, body=body)


def open_draft_store(account: Account, settings: Settings, folder: str | None) -> DraftStore:
    if account.kind == "maildir" and account.path:
        return MaildirDrafts(Path(account.path))
    if account.kind == "imap" and account.imap is not None and account.secret_ref:
        ref = account.secret_ref
        return ImapDrafts(account.imap, lambda: load_secret(settings.secrets_dir, ref), folder)
    raise ConfigError(f"mailbox {account.name!r} cannot take drafts; run `onward connect`")


def save_draft(
    plan: DraftPlan, settings: Settings, folder: str | None
) -> tuple[str, DraftRef | None]:
    """Find-or-append the draft; returns (state, ref). Never a second draft per rejection."""
    rejection = plan.rejection
    with open_draft_store(rejection.account, settings, folder) as store:
        ref = store.find(rejection.marker)
        if ref is None:
            ref = store.append(plan.raw)
        return plan.state, ref


def existing_request(session: Session, ledger_id: int) -> FeedbackRequest | None:
    return session.scalars(
        select(FeedbackRequest).where(FeedbackRequest.ledger_id == ledger_id)
    ).first()


def refresh_state(request: FeedbackRequest, rejection: Rejection, store: DraftStore) -> str:
    """Has the person deleted the draft, or sent a reply? (onward never recreates it.)"""
    if request.state in ("sent", "discarded"):
        return request.state
    message_id = rejection.message.message_id
    if message_id and store.sent_reply_to(message_id):
        return "sent"
    ref = DraftRef(folder=request.folder or "Drafts", uid=request.draft_uid)
    if not store.exists(ref, request.marker):
        return "discarded"
    return request.state


def record_request(
    session: Session, plan: DraftPlan, state: str, ref: DraftRef | None
) -> FeedbackRequest:
    rejection = plan.rejection
    request = existing_request(session, rejection.ledger_id)
    if request is None:
        request = FeedbackRequest(
            mailbox_id=rejection.mailbox_id, ledger_id=rejection.ledger_id, marker=rejection.marker
        )
        session.add(request)
    request.company, request.role = rejection.company, rejection.role
    request.to_addr = plan.to.addr if plan.to else None
    request.to_name = plan.to.name if plan.to else None
    request.state = state
    request.folder = ref.folder if ref else None
    request.draft_uid = ref.uid if ref else None
    request.note = None if plan.to else "no person to write to was found: add a recipient"
    request.updated_at = utcnow()
    session.flush()
    return request


# --- the cooldown ---------------------------------------------------------------------------


def record_cooldown(
    session: Session, rejection: Rejection, days: int, *, now: datetime | None = None
) -> Cooldown:
    """The cooldown for ``rejection``, created once: ``days`` whole days from today."""
    existing = session.scalars(
        select(Cooldown).where(Cooldown.ledger_id == rejection.ledger_id)
    ).first()
    if existing is not None:
        return existing
    start = now or utcnow()
    cooldown = Cooldown(
        mailbox_id=rejection.mailbox_id,
        ledger_id=rejection.ledger_id,
        days=days,
        starts_at=start,
        ends_at=start + timedelta(days=days),
        calendar_uid=f"cooldown-{hashlib.sha1(rejection.marker.encode()).hexdigest()[:16]}@onward",
    )
    session.add(cooldown)
    session.flush()
    return cooldown


def write_calendar(session: Session, path: Path) -> int:
    """Every cooldown as an all-day block in one .ics file; UIDs are stable, so calendar
    apps that subscribe to the file update events instead of duplicating them."""
    from icalendar import Calendar, Event

    cal = Calendar()
    cal.add("prodid", "-//onward//cooldowns//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "onward")
    rows = session.execute(
        select(Cooldown, LedgerEntry).join(LedgerEntry, LedgerEntry.id == Cooldown.ledger_id)
    ).all()
    for cooldown, entry in rows:
        event = Event()
        event.add("uid", cooldown.calendar_uid)
        event.add("dtstamp", cooldown.created_at)
        event.add("dtstart", _day(cooldown.starts_at))
        event.add("dtend", _day(cooldown.ends_at))  # exclusive: the day the plan starts
        event.add("summary", "Cooldown: give yourself a few days")
        sender = entry.from_name or entry.from_addr or "an employer"
        event.add(
            "description",
            f"After the rejection from {sender} ({entry.subject or 'no subject'}). "
            "Nothing to do: allow yourself to feel it. onward picks things up afterwards.",
        )
        event.add("transp", "TRANSPARENT")
        cal.add_component(event)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temp file of its own: two cooldown runs may write at once.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".onward-", suffix=".ics.tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(cal.to_ical())
    os.replace(tmp, path)
    return len(rows)


def _day(value: datetime) -> date:
    return value.astimezone(UTC).date()


def list_requests(settings: Settings, mailbox: str | None, *, check: bool) -> list[dict[str, Any]]:
    """The feedback requests of ``mailbox`` for `onward drafts`; with ``check``, drafts the
    person sent or deleted since are looked up in the mailbox and their state recorded."""
    from tasks.store import Store, get_mailbox

    store = Store.open(settings.database_url)
    try:
        with store.unit_of_work() as session:
            row = get_mailbox(session, mailbox)
            if row is None:
                return []
            account = Account.from_row(row, settings)
            requests = session.scalars(
                select(FeedbackRequest)
                .where(FeedbackRequest.mailbox_id == row.id)
                .order_by(FeedbackRequest.created_at)
            ).all()
            open_states = [r for r in requests if r.state in ("drafted", "needs_recipient")]
            if check and open_states:
                with open_draft_store(account, settings, row.drafts_folder) as drafts:
                    for request in open_states:
                        entry = session.get_one(LedgerEntry, request.ledger_id)
                        rejection_id = entry.message_id
                        if rejection_id and drafts.sent_reply_to(rejection_id):
                            request.state = "sent"
                        elif not drafts.exists(
                            DraftRef(request.folder or "Drafts", request.draft_uid), request.marker
                        ):
                            request.state = "discarded"
            return [
                {
                    "company": r.company,
                    "role": r.role,
                    "to": f"{r.to_name} <{r.to_addr}>" if r.to_name else r.to_addr,
                    "state": r.state,
                    "folder": r.folder,
                    "note": r.note,
                    "created_at": r.created_at.isoformat(),
                }
                for r in requests
            ]
    finally:
        store.close()
