"""Models of the reactions to a rejection: the feedback request and the cooldown."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onward.tasks.store.base import Base, UTCDateTime, utcnow


class FeedbackRequest(Base):
    """The feedback-request draft for one rejection; ``state`` is what ``onward drafts`` shows.

    States: ``drafted`` (in Drafts, addressed), ``needs_recipient`` (in Drafts, To empty),
    ``sent`` (a reply to the rejection is in Sent), ``discarded`` (the person deleted it;
    onward does not recreate it), ``answered`` (the hiring manager replied in the thread).
    """

    __tablename__ = "feedback_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger.id", ondelete="CASCADE"), unique=True)
    marker: Mapped[str] = mapped_column(String(998))
    company: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    to_addr: Mapped[str | None] = mapped_column(String(320))
    to_name: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20))
    folder: Mapped[str | None] = mapped_column(String(500))
    draft_uid: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)
    # The draft's own Message-ID: an answer may refer to it (In-Reply-To) and nothing else.
    draft_message_id: Mapped[str | None] = mapped_column(String(998))
    answered_ledger_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger.id", ondelete="SET NULL")
    )
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Cooldown(Base):
    """The quiet days after a rejection, and the scheduled "pick yourself up" run at its end."""

    __tablename__ = "cooldowns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger.id", ondelete="CASCADE"), unique=True)
    days: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    calendar_uid: Mapped[str] = mapped_column(String(300))
    end_run_id: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
