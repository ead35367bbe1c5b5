"""Bring the calendar up to date and write it: the file, and what `onward calendar` lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks.calendar.entries import Published, ReconcileReport, published, reconcile
from onward.tasks.calendar.ics import render_calendar, write_atomically
from onward.tasks.calendar.sources import collect_items
from onward.tasks.store import Store, utcnow


def refresh(session: Session, settings: Settings, now: datetime | None = None) -> ReconcileReport:
    """Entries in step with what the database implies (UIDs, SEQUENCE, CANCELLED)."""
    return reconcile(session, collect_items(session, settings, now), now=now)


def write_calendar_file(session: Session, settings: Settings, path: Path | None = None) -> Path:
    """The whole calendar as one .ics, written atomically (default the home's file)."""
    target = path or settings.calendar_file
    write_atomically(target, render_calendar(published(session), settings.tz))
    return target


def publish(settings: Settings, *, path: Path | None = None) -> tuple[Path, ReconcileReport]:
    """Refresh and write; the file is rebuilt from the database every time."""
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        report = refresh(session, settings)
        return write_calendar_file(session, settings, path), report


@dataclass(frozen=True)
class ListedItem:
    """One line of `onward calendar`."""

    kind: str
    summary: str
    when: str
    starts: str | None
    status: str
    recurring: bool
    uid: str


def upcoming(settings: Settings, *, today: date | None = None) -> list[ListedItem]:
    """What is scheduled from today on (recurring items always), soonest first; cancelled
    items are left out."""
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        refresh(session, settings)
        items = published(session)
    today = today or utcnow().astimezone(settings.tz).date()
    rows = [p for p in items if p.item.status != "CANCELLED" and _relevant(p, today, settings)]
    rows.sort(key=lambda p: _sort_key(p, settings))
    return [_listed(p, settings) for p in rows]


def _moment(p: Published) -> date | datetime | None:
    return p.item.start if p.item.start is not None else p.item.due


def _day(value: date | datetime, settings: Settings) -> date:
    return value.astimezone(settings.tz).date() if isinstance(value, datetime) else value


def _relevant(p: Published, today: date, settings: Settings) -> bool:
    if p.item.rrule:
        return True
    last = p.item.end or p.item.due or p.item.start
    if last is None:
        return True
    end_day = _day(last, settings)
    if not isinstance(last, datetime) and p.item.end is not None:
        end_day -= timedelta(days=1)  # all-day DTEND is exclusive
    return end_day >= today


def _sort_key(p: Published, settings: Settings) -> tuple[date, str]:
    moment = _moment(p)
    return (_day(moment, settings) if moment else date.max, p.item.summary)


def _listed(p: Published, settings: Settings) -> ListedItem:
    item = p.item
    moment = _moment(p)
    when = _describe_when(p, settings)
    return ListedItem(
        kind=item.kind,
        summary=item.summary,
        when=when,
        starts=moment.isoformat() if moment is not None else None,
        status=item.status,
        recurring=bool(item.rrule),
        uid=p.uid,
    )


def _describe_when(p: Published, settings: Settings) -> str:
    item = p.item
    if item.rrule:
        start = item.start
        at = f" at {start.astimezone(settings.tz):%H:%M}" if isinstance(start, datetime) else ""
        if item.rrule.get("FREQ") == "WEEKLY":
            return f"every {_weekday_name(item.rrule.get('BYDAY'))}{at}"
        return f"monthly on day {item.rrule.get('BYMONTHDAY')}{at}"
    if item.todo and item.due is not None:
        return f"due {_format(item.due, settings)}"
    if item.start is not None and item.end is not None and not isinstance(item.start, datetime):
        last = item.end - timedelta(days=1) if not isinstance(item.end, datetime) else item.end
        if last == item.start:
            return _format(item.start, settings)
        return f"{_format(item.start, settings)} to {_format(last, settings)}"
    return _format(item.start, settings) if item.start is not None else "-"


def _format(value: date | datetime, settings: Settings) -> str:
    if isinstance(value, datetime):
        return f"{value.astimezone(settings.tz):%a %d %b %H:%M}"
    return f"{value:%a %d %b}"


def _weekday_name(code: object) -> str:
    names = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday"}
    names |= {"FR": "Friday", "SA": "Saturday", "SU": "Sunday"}
    return names.get(str(code), str(code))
