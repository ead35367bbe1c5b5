"""Calendar models: what onward has published for each item, and where it pushed it.

The items themselves are derived from the other tables (see ``tasks/calendar``); these
rows keep what makes updates look right in a person's calendar: a UID that never
changes, the SEQUENCE and the moment of the last visible change, and for CalDAV the
resource's href and ETag, so an update replaces the same resource and a crash between a
PUT and the database write is recognised on the next push.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from onward.tasks.store.base import Base, UTCDateTime, utcnow


class CalendarEntry(Base):
    """One published calendar item, by its natural key."""

    __tablename__ = "calendar_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    uid: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    content_hash: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    # The item as last published, so a removed one can still be written as CANCELLED.
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    cancelled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalDavAccount(Base):
    """A CalDAV account onward writes into. The password lives in the secret store."""

    __tablename__ = "caldav_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(String(1000))
    username: Mapped[str] = mapped_column(String(320))
    secret_ref: Mapped[str] = mapped_column(String(500))
    calendar_name: Mapped[str] = mapped_column(String(200))
    calendar_url: Mapped[str | None] = mapped_column(String(1000))
    last_push_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalDavResource(Base):
    """One calendar entry as a resource in one CalDAV collection."""

    __tablename__ = "caldav_resources"
    __table_args__ = (UniqueConstraint("account_id", "entry_id", name="uq_caldav_account_entry"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("caldav_accounts.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("calendar_entries.id", ondelete="CASCADE"))
    href: Mapped[str] = mapped_column(String(1000))
    etag: Mapped[str | None] = mapped_column(String(300))
    # The entry's SEQUENCE the server has; behind the entry's means a push is due.
    pushed_sequence: Mapped[int | None] = mapped_column(Integer)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
