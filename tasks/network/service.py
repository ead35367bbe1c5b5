"""What the ``tasks`` and ``contacts`` commands do: one function each, a dataclass back.

Each opens the app database from settings for one unit of work. ``now`` is for tests and
the demo; bad input (an unknown task id, an unreadable file) is a ConfigError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks import progress
from onward.tasks.errors import ConfigError
from onward.tasks.network import stages
from onward.tasks.network.contacts import ImportReport, merge_contacts, refresh_contacts
from onward.tasks.network.imports import read_contacts_file
from onward.tasks.network.rounds import TaskView, round_week, task_view, week_tasks
from onward.tasks.store import Contact, Interaction, NetworkTask, Store, utcnow


@dataclass(frozen=True)
class TaskList:
    week: date
    tasks: list[TaskView]


@dataclass(frozen=True)
class TaskOutcome:
    task: TaskView
    stage_before: str
    stage_after: str
    note: str


@dataclass(frozen=True)
class ContactView:
    id: int
    name: str
    email: str | None
    company: str | None
    position: str | None
    profile_url: str | None
    source: str
    stage: str
    touches: int
    last_interaction_at: datetime | None


@dataclass(frozen=True)
class ContactList:
    contacts: list[ContactView]
    stages: dict[str, int]


def import_contacts(settings: Settings, path: Path, *, now: datetime | None = None) -> ImportReport:
    """Import a LinkedIn export, vCard file or CSV; re-imports merge, bad rows are listed."""
    parsed = read_contacts_file(path)
    progress.report("contacts", 0, len(parsed.contacts))
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        added, merged = merge_contacts(session, parsed.contacts, parsed.format, now=now)
    progress.report("contacts", len(parsed.contacts), len(parsed.contacts))
    return ImportReport(str(path), parsed.format, added, merged, parsed.problems)


def list_tasks(settings: Settings, *, now: datetime | None = None) -> TaskList:
    """This week's networking tasks (skipped ones included, with their state)."""
    week = round_week(now or utcnow(), settings)
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        return TaskList(week, week_tasks(session, week))


def _task(session: Session, task_id: int) -> tuple[NetworkTask, Contact]:
    task = session.get(NetworkTask, task_id)
    if task is None:
        raise ConfigError(f"no networking task {task_id}; `onward tasks` lists this week's")
    return task, session.get_one(Contact, task.contact_id)


def complete_task(
    settings: Settings, task_id: int, *, replied: bool = False, now: datetime | None = None
) -> TaskOutcome:
    """Record that the person did task ``task_id`` (and that the contact answered, with
    ``replied``): the engagement counts towards the contact's stage, once."""
    at = now or utcnow()
    rules = settings.network
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        task, contact = _task(session, task_id)
        before = contact.stage
        notes = []
        if task.state == "done":
            notes.append("already recorded as done")
        else:
            task.state, task.done_at = "done", at
            stages.record_engagement(contact, rules, at)
            session.add(
                Interaction(
                    contact_id=contact.id, kind="engagement", task_id=task.id, occurred_at=at
                )
            )
            notes.append("engagement recorded")
        if replied and not task.replied:
            task.replied = True
            stages.record_reply(contact, rules, at)
            session.add(
                Interaction(contact_id=contact.id, kind="reply", task_id=task.id, occurred_at=at)
            )
            notes.append("their reply recorded")
        session.flush()
        return TaskOutcome(task_view(task, contact), before, contact.stage, "; ".join(notes))


def skip_task(settings: Settings, task_id: int, *, now: datetime | None = None) -> TaskOutcome:
    """Skip task ``task_id``: nothing is recorded for the contact and nothing is made up
    for next week."""
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        task, contact = _task(session, task_id)
        if task.state == "done":
            raise ConfigError(f"task {task_id} is already done; it cannot be skipped")
        note = "already skipped" if task.state == "skipped" else "skipped"
        task.state = "skipped"
        return TaskOutcome(task_view(task, contact), contact.stage, contact.stage, note)


def list_contacts(settings: Settings, *, now: datetime | None = None) -> ContactList:
    """Every contact with its stage, after reading new mail from them and applying silence."""
    at = now or utcnow()
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        refresh_contacts(session, settings, at)
        rows = session.scalars(select(Contact).order_by(Contact.name, Contact.id)).all()
        views = [
            ContactView(
                id=c.id,
                name=c.name,
                email=c.email,
                company=c.company,
                position=c.position,
                profile_url=c.profile_url,
                source=c.source,
                stage=c.stage,
                touches=c.touches,
                last_interaction_at=c.last_interaction_at,
            )
            for c in rows
        ]
    counts: dict[str, int] = {
        stage: sum(v.stage == stage for v in views) for stage in stages.STAGES
    }
    return ContactList(views, counts)
