"""The calendar as iCalendar (RFC 5545) bytes, and the file written from it.

Timed items are written in the person's time zone with a TZID and its VTIMEZONE, so a
recurring 18:00 stays 18:00 local across daylight-saving changes; all-day items are DATE
values with an exclusive DTEND; DTSTAMP and LAST-MODIFIED are the moment of the last
visible change, so an unchanged calendar renders to the same bytes every time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event, Todo, vRecur

from onward.tasks.calendar.entries import Published
from onward.tasks.calendar.model import CalendarItem

PRODID = "-//onward//onward calendar//EN"
CALENDAR_NAME = "onward"


def render_calendar(
    items: Sequence[Published], tz: ZoneInfo, *, name: str = CALENDAR_NAME
) -> bytes:
    """The whole calendar, upcoming first is not required by clients: entry order is kept."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", tz.key)
    cal.add("x-wr-caldesc", "What onward schedules for you: cooldowns, plan goals, networking")
    # Subscribing clients re-read the feed this often.
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for published in items:
        cal.add_component(render_component(published, tz))
    if any(_is_timed(p.item) for p in items):
        first, last = _span(items)
        cal.add_missing_timezones(first_date=first, last_date=last)
    return bytes(cal.to_ical())


def render_one(published: Published, tz: ZoneInfo) -> bytes:
    """One item as its own VCALENDAR, as a CalDAV resource holds it."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add_component(render_component(published, tz))
    if _is_timed(published.item):
        first, last = _span([published])
        cal.add_missing_timezones(first_date=first, last_date=last)
    return bytes(cal.to_ical())


def render_component(published: Published, tz: ZoneInfo) -> Event | Todo:
    item = published.item
    component: Event | Todo = Todo() if item.todo else Event()
    component.add("uid", published.uid)
    component.add("dtstamp", published.changed_at.astimezone(UTC))
    component.add("created", published.created_at.astimezone(UTC))
    component.add("last-modified", published.changed_at.astimezone(UTC))
    component.add("sequence", published.sequence)
    component.add("summary", item.summary)
    if item.description:
        component.add("description", item.description)
    if item.start is not None:
        component.add("dtstart", _local(item.start, tz))
    if item.end is not None and not item.todo:
        component.add("dtend", _local(item.end, tz))
    if item.due is not None:
        component.add("due", _local(item.due, tz))
    if item.rrule:
        component.add("rrule", vRecur(item.rrule))
    component.add("status", item.status)
    if not item.todo:
        component.add("transp", "TRANSPARENT" if item.transparent else "OPAQUE")
    if item.completed_at is not None:
        component.add("completed", item.completed_at.astimezone(UTC))
        component.add("percent-complete", 100)
    if item.categories:
        component.add("categories", list(item.categories))
    for key, value in sorted(item.extra.items()):
        component.add(f"x-onward-{key}", value)
    if item.alarm_minutes is not None and item.status not in ("CANCELLED", "COMPLETED"):
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", item.summary)
        alarm.add("trigger", timedelta(minutes=-item.alarm_minutes))
        component.add_component(alarm)
    return component


def _local(value: date | datetime, tz: ZoneInfo) -> date | datetime:
    """Dates stay dates (all-day); datetimes are written in the person's zone with TZID."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("calendar datetimes must be time-zone aware")
        return value.astimezone(tz)
    return value


def _is_timed(item: CalendarItem) -> bool:
    return any(isinstance(v, datetime) for v in (item.start, item.end, item.due))


def _span(items: Sequence[Published]) -> tuple[date, date]:
    days = [
        v.date() if isinstance(v, datetime) else v
        for p in items
        for v in (p.item.start, p.item.end, p.item.due)
        if v is not None
    ]
    first = min(days, default=date.today())
    last = max(days, default=date.today())
    # Recurring items go on: cover a few years of their transitions.
    return first - timedelta(days=366), last + timedelta(days=3 * 366)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half;
    readable by the person alone (it tells who rejected them)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A temp file of its own: two runs may write at once.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".onward-", suffix=".ics.tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
