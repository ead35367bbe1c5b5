"""Mail models: connected mailboxes with their cursor, the ledger of seen messages, events.

Idempotency lives here as unique constraints: one ledger row per (mailbox, message key),
one event per (kind, message).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from onward.tasks.store.base import Base, UTCDateTime, utcnow


class Mailbox(Base):
    """A connected mailbox and its sync cursor. Never holds a secret, only where it is kept."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # "imap" | "maildir"
    address: Mapped[str | None] = mapped_column(String(320))
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(320))
    security: Mapped[str | None] = mapped_column(String(20))  # "tls" | "starttls" | "plain"
    auth: Mapped[str | None] = mapped_column(String(20))  # "password" | "xoauth2"
    secret_ref: Mapped[str | None] = mapped_column(String(500))
    ca_file: Mapped[str | None] = mapped_column(String(1000))
    path: Mapped[str | None] = mapped_column(String(1000))
    folder: Mapped[str] = mapped_column(String(500), default="INBOX")
    drafts_folder: Mapped[str | None] = mapped_column(String(500))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int | None] = mapped_column(BigInteger)
    watch_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """What the watch recorded for one message: handled, or malformed with the reason."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("mailbox_id", "key", name="uq_ledger_mailbox_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(998))
    message_id: Mapped[str | None] = mapped_column(String(998))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))  # "recorded" | "malformed" | "failed"
    error: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    from_addr: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str] | None] = mapped_column(JSON)
    label: Mapped[str | None] = mapped_column(String(40))
    confidence: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DomainEvent(Base):
    """Something that happened and that reactions consume (e.g. ``rejection.detected``)."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("kind", "ledger_id", name="uq_events_kind_ledger"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Borderline rejections wait for the person: "waiting", then "confirmed" (reactions
    # start as for any rejection) or "dismissed" (they never do). None: nothing to ask.
    review: Mapped[str | None] = mapped_column(String(20))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The suspended Prefect run that asks the same question in the UI, if one was started.
    review_run_id: Mapped[str | None] = mapped_column(String(64))
    # Reactions that failed: how often, why (for a person), when to try again, and when
    # onward gave up (then `onward drafts` / `onward status` show it as needing attention).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
