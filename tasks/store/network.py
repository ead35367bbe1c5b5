"""Networking models: contacts with their stage, what happened between them and the person,
and the weekly engagement tasks.

Idempotency lives here as unique constraints: one contact per e-mail address and per
profile URL, one interaction per (contact, ledger row), one task per (week, contact).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from onward.tasks.store.base import Base, UTCDateTime, utcnow


class Contact(Base):
    """Someone the person knows or has heard from, and how warm the connection is.

    ``touches`` counts engagements (and replies) since the contact last cooled down;
    ``stage`` follows from it and the [network] thresholds. ``scanned_ledger_id`` is how
    far the ledger was read for mail from this contact.
    """

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    # Lower-case; None when unknown (most LinkedIn connections).
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    # Normalised (no scheme, no "www.", no trailing slash or query).
    profile_url: Mapped[str | None] = mapped_column(String(500), unique=True)
    # Name and company folded for matching a re-import without e-mail or URL.
    match_key: Mapped[str] = mapped_column(String(600), index=True)
    company: Mapped[str | None] = mapped_column(Text)
    position: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))  # linkedin | vcard | csv | mailbox
    connected_on: Mapped[date | None] = mapped_column(Date)
    stage: Mapped[str] = mapped_column(String(10), default="cold")  # cold | warming | warm
    touches: Mapped[int] = mapped_column(Integer, default=0)
    last_touch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_interaction_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stage_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scanned_ledger_id: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NetworkTask(Base):
    """One engagement task of a weekly round. ``week`` is the round's date (the configured
    round day on or before the run), so a repeated round finds the tasks it made.

    States: ``open``, ``done`` (an engagement was recorded), ``skipped``, ``expired`` (its
    week ended with it still open).
    """

    __tablename__ = "network_tasks"
    __table_args__ = (UniqueConstraint("week", "contact_id", name="uq_network_tasks_week_contact"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    week: Mapped[date] = mapped_column(Date, index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    # The contact's stage when the task was picked: an ask is only ever given to "warm".
    stage: Mapped[str] = mapped_column(String(10))
    due: Mapped[date] = mapped_column(Date)
    message: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default="open")
    replied: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Interaction(Base):
    """Something that happened between the person and a contact: an engagement they did, a
    reply, mail from the contact in the watched mailbox (then ``ledger_id`` is set)."""

    __tablename__ = "network_interactions"
    __table_args__ = (
        UniqueConstraint("contact_id", "ledger_id", name="uq_network_interactions_contact_ledger"),
        Index("ix_network_interactions_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    # engagement | reply | mail | feedback_reply | you_replied
    kind: Mapped[str] = mapped_column(String(20))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("network_tasks.id", ondelete="SET NULL"))
    ledger_id: Mapped[int | None] = mapped_column(ForeignKey("ledger.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
