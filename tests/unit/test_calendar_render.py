"""The calendar as iCalendar: time zones, recurrence, all-day days, alarms, CANCELLED.

Every calendar is read back by three parsers: icalendar (ours), recurring-ical-events
(which expands recurrences) and vobject (an independent implementation).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import recurring_ical_events
import vobject
from icalendar import Calendar

from onward.tasks.calendar.entries import Published
from onward.tasks.calendar.ics import render_calendar, render_one
from onward.tasks.calendar.model import CalendarItem

BERLIN = ZoneInfo("Europe/Berlin")
STAMP = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def published(item: CalendarItem, sequence: int = 0, entry_id: int = 1) -> Published:
    return Published(item, item.stable_uid, sequence, STAMP, STAMP, entry_id)


def weekly_evaluation() -> CalendarItem:
    start = datetime(2026, 1, 4, 18, 0, tzinfo=BERLIN)  # a Sunday
    return CalendarItem(
        key="evaluation:weekly",
        kind="evaluation",
        summary="Weekly self-evaluation",
        start=start,
        end=start + timedelta(minutes=30),
        rrule={"FREQ": "WEEKLY", "BYDAY": "SU"},
        alarm_minutes=60,
    )


def cooldown(first: date, days: int) -> CalendarItem:
    return CalendarItem(
        key="cooldown:x",
        kind="cooldown",
        summary="Cooldown after Brightforge — Data Engineer",
        start=first,
        end=first + timedelta(days=days),
        transparent=True,
    )


def test_weekly_evaluation_stays_at_local_18_00_across_both_dst_changes() -> None:
    data = render_calendar([published(weekly_evaluation())], BERLIN)
    cal = Calendar.from_ical(data)
    # Expanded by an independent recurrence engine, across 2026's changes (29 Mar, 25 Oct).
    occurrences = recurring_ical_events.of(cal).between(date(2026, 3, 15), date(2026, 11, 8))
    starts = sorted(e["DTSTART"].dt for e in occurrences)
    around = [s for s in starts if s.date() in _sundays_around_dst()]
    assert len(around) == 4
    for start in around:
        local = start.astimezone(BERLIN)
        assert (local.hour, local.minute) == (18, 0), start
    offsets = {start.astimezone(BERLIN).utcoffset() for start in around}
    assert offsets == {timedelta(hours=1), timedelta(hours=2)}
    # TZID with its VTIMEZONE, not UTC or a floating time.
    assert b"DTSTART;TZID=Europe/Berlin:20260104T180000" in data
    assert b"BEGIN:VTIMEZONE" in data
    assert b"TZID:Europe/Berlin" in data


def _sundays_around_dst() -> set[date]:
    return {date(2026, 3, 22), date(2026, 3, 29), date(2026, 10, 18), date(2026, 10, 25)}


def test_all_day_block_covers_exactly_its_days() -> None:
    first = date(2026, 3, 27)
    data = render_calendar([published(cooldown(first, 3))], BERLIN)
    cal = Calendar.from_ical(data)
    event = next(iter(cal.walk("VEVENT")))
    assert event["DTSTART"].dt == date(2026, 3, 27)
    assert event["DTEND"].dt == date(2026, 3, 30)  # exclusive: the 27th, 28th and 29th
    assert event["TRANSP"] == "TRANSPARENT"
    days = recurring_ical_events.of(cal).between(date(2026, 3, 26), date(2026, 4, 2))
    assert len(days) == 1
    covered = {date(2026, 3, 26) + timedelta(days=i) for i in range(7)}
    inside = {d for d in covered if event["DTSTART"].dt <= d < event["DTEND"].dt}
    assert inside == {date(2026, 3, 27), date(2026, 3, 28), date(2026, 3, 29)}
    assert b"DTSTART;VALUE=DATE:20260327" in data
    assert b"VTIMEZONE" not in data  # nothing timed, no zone needed


def test_a_second_parser_reads_the_same_calendar() -> None:
    todo = CalendarItem(
        key="network-task:7",
        kind="network_task",
        todo=True,
        summary="Comment on Dana's post",
        due=date(2026, 2, 6),
        status="COMPLETED",
        completed_at=datetime(2026, 2, 5, 12, tzinfo=UTC),
    )
    items = [published(weekly_evaluation()), published(cooldown(date(2026, 2, 2), 3), 2, 2)]
    items.append(published(todo, 1, 3))
    data = render_calendar(items, BERLIN).decode()
    parsed = vobject.readOne(data)
    assert len(parsed.vevent_list) == 2
    assert parsed.vtodo.status.value == "COMPLETED"
    assert parsed.vtodo.due.value == date(2026, 2, 6)
    sequences = sorted(int(e.sequence.value) for e in parsed.vevent_list)
    assert sequences == [0, 2]
    evaluation = next(e for e in parsed.vevent_list if e.summary.value.startswith("Weekly"))
    assert evaluation.dtstart.value.tzinfo is not None
    assert evaluation.dtstart.value.astimezone(BERLIN).hour == 18
    assert evaluation.valarm.trigger.value == timedelta(minutes=-60)


def test_cancelled_items_keep_their_uid_and_lose_their_alarm() -> None:
    item = weekly_evaluation()
    from dataclasses import replace

    data = render_one(published(replace(item, status="CANCELLED", alarm_minutes=None), 3), BERLIN)
    event = next(iter(Calendar.from_ical(data).walk("VEVENT")))
    assert event["STATUS"] == "CANCELLED"
    assert int(event["SEQUENCE"]) == 3
    assert str(event["UID"]) == item.stable_uid
    assert not list(event.walk("VALARM"))


def test_rendering_is_deterministic() -> None:
    items = [published(weekly_evaluation()), published(cooldown(date(2026, 2, 2), 3), 0, 2)]
    assert render_calendar(items, BERLIN) == render_calendar(items, BERLIN)


def test_uid_comes_from_the_natural_key() -> None:
    a = CalendarItem(key="goal:abc", kind="goal", summary="x")
    b = CalendarItem(key="goal:abc", kind="goal", summary="y (renamed)")
    c = CalendarItem(key="goal:abd", kind="goal", summary="x")
    assert a.stable_uid == b.stable_uid != c.stable_uid
    assert a.visible_hash() != b.visible_hash()
    assert CalendarItem.from_data(a.to_data()) == a
    evaluation = weekly_evaluation()
    assert CalendarItem.from_data(evaluation.to_data()).visible_hash() == evaluation.visible_hash()
