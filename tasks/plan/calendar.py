"""The plan's goals as calendar to-dos, due on their day, with a reminder."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks.calendar.model import CalendarItem
from onward.tasks.store import Goal

SOURCE_NAMES = {"feedback": "from feedback", "pattern": "from your rejections", "profile": ""}


def plan_calendar_items(session: Session, settings: Settings) -> list[CalendarItem]:
    """Planned and finished goals; skipped and dropped ones leave the calendar (CANCELLED)."""
    at = settings.calendar.evaluation_time.replace(second=0, microsecond=0, tzinfo=None)
    items = []
    for goal in session.scalars(select(Goal).where(Goal.status.in_(("planned", "done", "partly")))):
        done = goal.status == "done"
        description = f"{goal.why}\n\n{goal.description}\n\nAbout {goal.hours:g} h. "
        description += f"Mark it: onward plan done {goal.id} (or skip {goal.id})."
        items.append(
            CalendarItem(
                key=f"goal:{goal.key}",
                kind="goal",
                todo=True,
                summary=goal.title,
                description=description,
                due=datetime.combine(goal.due, at, tzinfo=settings.tz),
                status="COMPLETED" if done else "NEEDS-ACTION",
                completed_at=goal.done_at if done else None,
                alarm_minutes=settings.calendar.reminder_minutes or None,
                categories=("onward", "plan", goal.source),
            )
        )
    return items
