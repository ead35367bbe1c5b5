"""The calendar file: every cooldown as an all-day block in one .ics, with stable UIDs."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from onward.tasks.store import Cooldown, LedgerEntry


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
