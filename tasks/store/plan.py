"""Plan models: the points a hiring manager's feedback made, the goals of the development
plan, and the person's self-evaluations of them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from onward.tasks.store.base import Base, UTCDateTime, utcnow


class FeedbackPoint(Base):
    """One actionable sentence of an answer to a feedback request, quoted as written."""

    __tablename__ = "feedback_points"
    __table_args__ = (UniqueConstraint("ledger_id", "position", name="uq_feedback_point"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("feedback_requests.id", ondelete="CASCADE"))
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # order in the answer
    quote: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Goal(Base):
    """A small dated goal. ``key`` is its natural key, so re-planning updates, never adds."""

    __tablename__ = "plan_goals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(Text)
    why: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))  # "profile" | "pattern" | "feedback"
    quote: Mapped[str | None] = mapped_column(Text)
    hours: Mapped[float] = mapped_column(Float)
    due: Mapped[date] = mapped_column(Date)
    # "planned" | "done" | "partly" | "skipped"; a planned goal past its date is overdue.
    status: Mapped[str] = mapped_column(String(20), default="planned")
    missed: Mapped[int] = mapped_column(Integer, default=0)
    confidence: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Evaluation(Base):
    """One answer of a self-evaluation about one goal."""

    __tablename__ = "plan_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    goal_id: Mapped[int] = mapped_column(ForeignKey("plan_goals.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(20))  # "done" | "partly" | "not_yet"
    confidence: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
