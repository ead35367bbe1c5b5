"""What the calendar holds, derived from the app database: each capability's items.

A source is a function ``(session, settings, now) -> items``. The calendar is their union;
adding a capability to the calendar means adding its source here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onward.config.settings import WEEKDAYS, Settings
from onward.tasks.calendar.model import CalendarItem
from onward.tasks.rejections import application_title
from onward.tasks.store import Cooldown, LedgerEntry, utcnow

Source = Callable[[Session, Settings, datetime], Iterable[CalendarItem]]
_ICAL_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def cooldown_items(session: Session, settings: Settings, now: datetime) -> list[CalendarItem]:
    """Each cooldown as all-day free time, from the day of the rejection to the day
    before onward picks things up (DTEND is exclusive)."""
    tz = settings.tz
    rows = session.execute(
        select(Cooldown, LedgerEntry)
        .join(LedgerEntry, LedgerEntry.id == Cooldown.ledger_id)
        .order_by(Cooldown.starts_at)
    ).all()
    items = []
    for cooldown, entry in rows:
        verdict = entry.verdict or {}
        title = application_title(verdict.get("company"), verdict.get("role"))
        first = cooldown.starts_at.astimezone(tz).date()
        back = cooldown.ends_at.astimezone(tz)
        sender = entry.from_name or entry.from_addr or "the employer"
        items.append(
            CalendarItem(
                key=f"cooldown:{cooldown.calendar_uid}",
                kind="cooldown",
                # The UID the cooldown blocks had before this calendar model: calendars
                # that imported the old file update those events instead of doubling them.
                uid=cooldown.calendar_uid,
                summary=f"Cooldown after {title}",
                description=(
                    f"After the rejection from {sender} ({entry.subject or 'no subject'}). "
                    "Nothing to do: allow yourself to feel it. onward picks things up on "
                    f"{back:%A %d %B} with a plan and a few small steps."
                ),
                start=first,
                end=max(back.date(), first + timedelta(days=1)),
                transparent=True,
                categories=("onward", "cooldown"),
            )
        )
    return items


def rhythm_items(session: Session, settings: Settings, now: datetime) -> list[CalendarItem]:
    """The weekly self-evaluation and the monthly review, once the first cooldown is over
    (the plan starts there). Written as local times with a recurrence rule, so 18:00 stays
    18:00 across daylight-saving changes."""
    started = session.scalar(
        select(func.min(Cooldown.ends_at)).where(Cooldown.ended_at.isnot(None))
    )
    if started is None:
        return []
    cal = settings.calendar
    tz = settings.tz
    alarm = cal.reminder_minutes or None
    begin = started.astimezone(tz).date()
    weekday = WEEKDAYS.index(cal.evaluation_day)
    first_eval = begin + timedelta(days=(weekday - begin.weekday()) % 7)
    first_review = _next_month_day(begin, cal.monthly_review_day)
    length = timedelta(minutes=cal.evaluation_minutes)
    evaluation_start = datetime.combine(first_eval, _minute(cal.evaluation_time), tzinfo=tz)
    review_start = datetime.combine(first_review, _minute(cal.evaluation_time), tzinfo=tz)
    return [
        CalendarItem(
            key="evaluation:weekly",
            kind="evaluation",
            summary="Weekly self-evaluation (onward plan review)",
            description=(
                "How did this week's goals go? For each: done, partly or not yet, how "
                "confident you feel (1-5) and a note. Run `onward plan review`; overdue "
                "goals move forward instead of piling up."
            ),
            start=evaluation_start,
            end=evaluation_start + length,
            rrule={"FREQ": "WEEKLY", "BYDAY": _ICAL_DAYS[weekday]},
            alarm_minutes=alarm,
            categories=("onward", "plan"),
        ),
        CalendarItem(
            key="review:monthly",
            kind="review",
            summary="Monthly review: where you are, where you are heading",
            description=(
                "Look back over the month: the pattern of your rejections, the feedback "
                "you got, the goals you finished. Adjust targets and pace in your profile "
                "(`onward plan init`) if they no longer fit."
            ),
            start=review_start,
            end=review_start + 2 * length,
            rrule={"FREQ": "MONTHLY", "BYMONTHDAY": cal.monthly_review_day},
            alarm_minutes=alarm,
            categories=("onward", "plan"),
        ),
    ]


def _minute(value: time) -> time:
    return value.replace(second=0, microsecond=0, tzinfo=None)


def _next_month_day(after: date, day: int) -> date:
    candidate = after.replace(day=day)
    if candidate < after:
        month = after.month % 12 + 1
        candidate = candidate.replace(year=after.year + (after.month == 12), month=month)
    return candidate


def network_items(session: Session, settings: Settings, now: datetime) -> list[CalendarItem]:
    """This week's networking tasks as to-dos (see ``tasks/network``)."""
    from onward.tasks.network.calendar import network_calendar_items

    return network_calendar_items(session, settings)


def plan_items(session: Session, settings: Settings, now: datetime) -> list[CalendarItem]:
    """The development plan's goals as to-dos (see ``tasks/plan``)."""
    from onward.tasks.plan.calendar import plan_calendar_items

    return plan_calendar_items(session, settings)


SOURCES: tuple[Source, ...] = (cooldown_items, rhythm_items, plan_items, network_items)


def collect_items(
    session: Session, settings: Settings, now: datetime | None = None
) -> list[CalendarItem]:
    """Everything onward schedules, as implied by the database now."""
    now = now or utcnow()
    return [item for source in SOURCES for item in source(session, settings, now)]
