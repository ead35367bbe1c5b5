"""Contacts in the database: merging imports, gathering people from the mailbox, and
reading the ledger for mail from known contacts. Functions take a session, never open one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks.feedback.replies import clean_text
from onward.tasks.mail.addresses import is_no_reply
from onward.tasks.network import stages
from onward.tasks.network.imports import ParsedContact, RowProblem, normalise_email, valid_email
from onward.tasks.store import Contact, FeedbackRequest, Interaction, LedgerEntry, Mailbox, utcnow

# Mail about a job search: its human senders are the recruiters and hiring managers.
JOB_LABELS = frozenset(
    {
        "rejection",
        "interview",
        "assessment",
        "offer",
        "application_received",
        "recruiter_outreach",
        "feedback_reply",
    }
)


@dataclass(frozen=True)
class ImportReport:
    """What ``onward contacts import`` did: rows added, merged into existing contacts, and
    the rows skipped with their line numbers and reasons."""

    file: str
    format: str
    added: int
    merged: int
    skipped: list[RowProblem] = field(default_factory=list)


@dataclass(frozen=True)
class RefreshReport:
    gathered: int
    interactions: int
    cooled: int


def match_key(name: str, company: str | None) -> str:
    def fold(value: str | None) -> str:
        return " ".join(re.sub(r"[^\w]+", " ", (value or "").casefold()).split())

    return f"{fold(name)}|{fold(company)}"[:600]


def find_contact(
    session: Session, email: str | None, url: str | None, name: str, company: str | None
) -> Contact | None:
    """The same person already stored: by e-mail, then profile URL, then name and company."""
    if email:
        found = session.scalars(select(Contact).where(Contact.email == email)).first()
        if found is not None:
            return found
    if url:
        found = session.scalars(select(Contact).where(Contact.profile_url == url)).first()
        if found is not None:
            return found
    return session.scalars(
        select(Contact).where(Contact.match_key == match_key(name, company)).order_by(Contact.id)
    ).first()


def merge_contacts(
    session: Session,
    parsed: Iterable[ParsedContact],
    source: str,
    *,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Add new contacts and merge the rest into what is stored: (added, merged). Newer
    company and position replace older ones; stage and history are never touched."""
    at = now or utcnow()
    added = merged = 0
    for row in parsed:
        contact = find_contact(session, row.email, row.profile_url, row.name, row.company)
        if contact is None:
            session.add(
                Contact(
                    name=row.name,
                    email=row.email,
                    profile_url=row.profile_url,
                    match_key=match_key(row.name, row.company),
                    company=row.company,
                    position=row.position,
                    source=source,
                    connected_on=row.connected_on,
                    stage="cold",
                    touches=0,
                    stage_changed_at=at,
                    scanned_ledger_id=0,
                    created_at=at,
                    updated_at=at,
                )
            )
            added += 1
        else:
            _merge_into(session, contact, row, at)
            merged += 1
        session.flush()  # the next row of the same file must find this one
    return added, merged


def _merge_into(session: Session, contact: Contact, row: ParsedContact, at: datetime) -> None:
    if row.email and contact.email is None and not _taken(session, Contact.email, row.email):
        contact.email = row.email
    if (
        row.profile_url
        and contact.profile_url is None
        and not _taken(session, Contact.profile_url, row.profile_url)
    ):
        contact.profile_url = row.profile_url
    if row.company:
        contact.company = row.company
    if row.position:
        contact.position = row.position
    if row.connected_on and contact.connected_on is None:
        contact.connected_on = row.connected_on
    if contact.source == "mailbox" or contact.name == contact.email:
        contact.name = row.name  # an export knows the name better than a From header
    contact.match_key = match_key(contact.name, contact.company)
    contact.updated_at = at


def _taken(session: Session, column: Any, value: str) -> bool:
    return session.scalars(select(Contact.id).where(column == value)).first() is not None


# --- from the mailbox --------------------------------------------------------------------


def user_addresses(session: Session, settings: Settings) -> frozenset[str]:
    mine = {a.strip().lower() for a in settings.user.addresses}
    mine.update(a.lower() for a in session.scalars(select(Mailbox.address)) if a)
    return frozenset(mine)


def _sender_kind(verdict: dict[str, Any] | None) -> str:
    if not verdict:
        return "unknown"
    kind = verdict.get("sender_kind")
    if kind is None and isinstance(verdict.get("contact"), dict):
        kind = verdict["contact"].get("kind")
    return str(kind or "unknown")


def _person(addr: str | None, mine: frozenset[str]) -> str | None:
    email = normalise_email(addr)
    if email is None or not valid_email(email) or email in mine or is_no_reply(email):
        return None
    return email


def gather_from_mailbox(session: Session, settings: Settings, now: datetime) -> int:
    """Contacts from job mail: the people (never no-reply or ATS senders) who wrote, and
    whoever the person sent a feedback request to. Returns how many were new."""
    mine = user_addresses(session, settings)
    people: dict[str, tuple[str | None, str | None]] = {}
    rows = session.execute(
        select(LedgerEntry.from_addr, LedgerEntry.from_name, LedgerEntry.verdict)
        .where(
            LedgerEntry.status == "recorded",
            LedgerEntry.label.in_(JOB_LABELS),
            LedgerEntry.from_addr.is_not(None),
        )
        .order_by(LedgerEntry.id)
    )
    for addr, name, verdict in rows:
        email = _person(addr, mine)
        if email is None or _sender_kind(verdict) != "person":
            continue
        company = verdict.get("company") if verdict else None
        people[email] = (name, company if isinstance(company, str) else None)
    sent = session.execute(
        select(FeedbackRequest.to_addr, FeedbackRequest.to_name, FeedbackRequest.company).where(
            FeedbackRequest.state == "sent", FeedbackRequest.to_addr.is_not(None)
        )
    )
    for addr, name, company in sent:
        email = _person(addr, mine)
        if email is not None:
            people.setdefault(email, (name, company))
    new = 0
    for email, (name, company) in people.items():
        if session.scalars(select(Contact.id).where(Contact.email == email)).first() is not None:
            continue
        display = clean_text(name, 200).strip("\"' ") or email
        parsed = ParsedContact(line=0, name=display, email=email, company=company or None)
        added, _ = merge_contacts(session, [parsed], "mailbox", now=now)
        new += added
    return new


def scan_mail(session: Session, settings: Settings) -> int:
    """Mail from known contacts in the ledger since each contact's last scan, and the
    person's own replies to them, recorded once per (contact, ledger row) and applied to
    their stage in time order. Returns how many interactions were new."""
    contacts = {
        c.email: c for c in session.scalars(select(Contact).where(Contact.email.is_not(None)))
    }
    if not contacts:
        return 0
    mine = user_addresses(session, settings)
    low = min(c.scanned_ledger_id for c in contacts.values())
    events: list[tuple[datetime, int, Contact, str]] = []
    rows = session.execute(
        select(
            LedgerEntry.id,
            func.lower(LedgerEntry.from_addr),
            LedgerEntry.label,
            LedgerEntry.sent_at,
            LedgerEntry.recorded_at,
            LedgerEntry.in_reply_to,
        ).where(LedgerEntry.id > low, LedgerEntry.status == "recorded")
    )
    replies_to: dict[str, list[tuple[int, datetime]]] = {}
    for ledger_id, addr, label, sent_at, recorded_at, in_reply_to in rows:
        at = sent_at or recorded_at
        contact = contacts.get(addr)
        if contact is not None and ledger_id > contact.scanned_ledger_id:
            kind = "feedback_reply" if label == "feedback_reply" else "mail"
            events.append((at, ledger_id, contact, kind))
        elif addr in mine and in_reply_to:
            replies_to.setdefault(in_reply_to, []).append((ledger_id, at))
    if replies_to:
        parents = session.execute(
            select(LedgerEntry.message_id, func.lower(LedgerEntry.from_addr)).where(
                LedgerEntry.message_id.in_(list(replies_to))
            )
        )
        for message_id, parent_addr in parents:
            contact = contacts.get(parent_addr)
            if contact is None:
                continue
            for ledger_id, at in replies_to[message_id]:
                if ledger_id > contact.scanned_ledger_id:
                    events.append((at, ledger_id, contact, "you_replied"))
    top = session.scalar(select(func.max(LedgerEntry.id))) or 0
    known = _known_pairs(session, [(c.id, lid) for _at, lid, c, _k in events])
    new = 0
    for at, ledger_id, contact, kind in sorted(events, key=lambda e: (e[0], e[1])):
        if (contact.id, ledger_id) in known:
            continue
        kind = _apply(contact, kind, settings, at)
        session.add(
            Interaction(contact_id=contact.id, kind=kind, ledger_id=ledger_id, occurred_at=at)
        )
        new += 1
    for contact in contacts.values():
        contact.scanned_ledger_id = max(contact.scanned_ledger_id, top)
    session.flush()
    return new


def _apply(contact: Contact, kind: str, settings: Settings, at: datetime) -> str:
    rules = settings.network
    if kind == "you_replied":
        stages.record_engagement(contact, rules, at)
    elif kind == "feedback_reply":
        stages.record_feedback_reply(contact, rules, at)
    elif stages.record_mail(contact, rules, at):
        return "reply"
    return kind


def _known_pairs(session: Session, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    if not pairs:
        return set()
    ids = sorted({lid for _cid, lid in pairs})
    rows = session.execute(
        select(Interaction.contact_id, Interaction.ledger_id).where(Interaction.ledger_id.in_(ids))
    )
    return {(cid, lid) for cid, lid in rows if lid is not None}


def cool_contacts(session: Session, settings: Settings, now: datetime) -> int:
    cooled = 0
    for contact in session.scalars(select(Contact).where(Contact.stage != "cold")):
        cooled += stages.cool_down(contact, settings.network, now)
    return cooled


def refresh_contacts(session: Session, settings: Settings, now: datetime) -> RefreshReport:
    """Bring every contact up to date: new people from the mailbox, their mail, silence."""
    gathered = gather_from_mailbox(session, settings, now)
    interactions = scan_mail(session, settings)
    cooled = cool_contacts(session, settings, now)
    return RefreshReport(gathered, interactions, cooled)
