"""Networking tasks as calendar to-dos (VTODO), one per task the person has not skipped.

A skipped or expired task simply stops being listed; the calendar marks it CANCELLED.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks.calendar.model import CalendarItem
from onward.tasks.network.messages import KINDS, task_summary
from onward.tasks.store import Contact, NetworkTask


def network_calendar_items(session: Session, settings: Settings) -> list[CalendarItem]:
    """The open and done networking tasks as to-dos due on their day."""
    rows = session.execute(
        select(NetworkTask, Contact)
        .join(Contact, Contact.id == NetworkTask.contact_id)
        .where(NetworkTask.state.in_(("open", "done")))
        .order_by(NetworkTask.due, NetworkTask.id)
    )
    items = []
    for task, contact in rows:
        where = f" ({contact.company})" if contact.company else ""
        description = (
            f"{KINDS[task.kind].how}\n\n"
            f"Suggested message, to rewrite in your own voice:\n\n{task.message.rstrip()}\n\n"
            f"{contact.name}{where} is {task.stage}. When done: onward tasks done {task.id} "
            f"(--replied if they answered); not this week: onward tasks skip {task.id}."
        )
        done = task.state == "done"
        items.append(
            CalendarItem(
                key=f"network-task:{task.id}",
                kind="network_task",
                todo=True,
                summary=task_summary(task.kind, contact.name),
                description=description,
                due=task.due,
                status="COMPLETED" if done else "NEEDS-ACTION",
                completed_at=task.done_at if done else None,
                categories=("networking",),
            )
        )
    return items
