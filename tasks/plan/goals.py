"""The plan over the app database: what the planner needs, saving what it decided, and the
person's answers (done, skip, a self-evaluation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks.errors import ConfigError
from onward.tasks.events import REJECTION_DETECTED
from onward.tasks.plan.catalogue import CATALOGUE_FILE, load_catalogue
from onward.tasks.plan.planner import (
    ExistingGoal,
    FeedbackInput,
    Plan,
    PlanInputs,
    plan,
)
from onward.tasks.plan.profile import load_profile
from onward.tasks.store import (
    Cooldown,
    DomainEvent,
    Evaluation,
    FeedbackPoint,
    FeedbackRequest,
    Goal,
    Store,
    utcnow,
)

Outcome = Literal["done", "partly", "not_yet"]


def local_today(settings: Settings, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(settings.tz).date()


def gather(session: Session, settings: Settings, today: date) -> PlanInputs | None:
    """What the planner needs; None before the first cooldown has ended (no plan yet)."""
    tz = settings.tz
    cooldowns = session.scalars(select(Cooldown).order_by(Cooldown.starts_at)).all()
    ended = [c for c in cooldowns if c.ended_at is not None]
    if not ended:
        return None
    start = min(c.ends_at for c in ended).astimezone(tz).date()
    windows = [
        (c.starts_at.astimezone(tz).date(), c.ends_at.astimezone(tz).date() + timedelta(days=1))
        for c in cooldowns
        if c.ended_at is None or c.ends_at.astimezone(tz).date() >= today
    ]
    events = session.scalars(
        select(DomainEvent)
        .where(DomainEvent.kind == REJECTION_DETECTED)
        .where((DomainEvent.review.is_(None)) | (DomainEvent.review == "confirmed"))
        .order_by(DomainEvent.created_at.desc(), DomainEvent.id.desc())
    ).all()
    stages = [str((e.payload or {}).get("stage") or "unknown") for e in events]
    points = session.execute(
        select(FeedbackPoint, FeedbackRequest.company)
        .join(FeedbackRequest, FeedbackRequest.id == FeedbackPoint.request_id)
        .order_by(FeedbackPoint.ledger_id.desc(), FeedbackPoint.position)
    ).all()
    feedback = [FeedbackInput(p.id, company, p.quote, p.topic, p.kind) for p, company in points]
    existing = [
        ExistingGoal(g.key, g.due, g.status, g.missed, g.hours)
        for g in session.scalars(select(Goal))
    ]
    return PlanInputs(
        today=today,
        start=start,
        profile=load_profile(settings),
        stages=stages,
        feedback=feedback,
        existing=existing,
        cooldowns=windows,
    )


@dataclass(frozen=True)
class PlanningReport:
    started: bool
    added: int = 0
    moved: int = 0
    changed: int = 0
    dropped: int = 0
    notes: tuple[str, ...] = ()


def replan(session: Session, settings: Settings, today: date | None = None) -> PlanningReport:
    """Plan again from what the database holds and save it in place (idempotent)."""
    today = today or local_today(settings)
    inputs = gather(session, settings, today)
    if inputs is None:
        return PlanningReport(started=False)
    decided = plan(inputs, load_catalogue(settings.home / CATALOGUE_FILE))
    return _save(session, decided)


def _save(session: Session, decided: Plan) -> PlanningReport:
    now = utcnow()
    rows = {g.key: g for g in session.scalars(select(Goal))}
    added = moved = changed = 0
    for spec in decided.goals:
        row = rows.get(spec.key)
        if row is not None and row.status == "queued":
            row.status = "planned"
        if row is None:
            session.add(
                Goal(
                    key=spec.key,
                    kind=spec.kind,
                    title=spec.title,
                    why=spec.why,
                    description=spec.description,
                    source=spec.source,
                    quote=spec.quote,
                    hours=spec.hours,
                    due=spec.due,
                    status="planned",
                    missed=spec.missed,
                    created_at=now,
                    updated_at=now,
                )
            )
            added += 1
            continue
        before = (row.title, row.why, row.description, row.hours, row.due, row.missed)
        after = (spec.title, spec.why, spec.description, spec.hours, spec.due, spec.missed)
        if before != after:
            moved += row.due != spec.due
            changed += row.due == spec.due
            row.title, row.why, row.description = spec.title, spec.why, spec.description
            row.hours, row.due, row.missed, row.updated_at = spec.hours, spec.due, spec.missed, now
    for key in decided.dropped:
        rows[key].status, rows[key].updated_at = "dropped", now
    for key in decided.queued:
        rows[key].status, rows[key].updated_at = "queued", now
    session.flush()
    return PlanningReport(True, added, moved, changed, len(decided.dropped), tuple(decided.notes))


@dataclass(frozen=True)
class GoalRow:
    """One goal as `onward plan` shows it."""

    id: int
    title: str
    due: date
    status: str
    source: str
    why: str
    quote: str | None
    hours: float
    kind: str
    missed: int
    confidence: int | None


def shown_status(goal: Goal, today: date) -> str:
    if goal.status == "queued":
        return "later"
    return "overdue" if goal.status == "planned" and goal.due < today else goal.status


def list_goals(settings: Settings, *, include_finished: bool = True) -> list[GoalRow]:
    today = local_today(settings)
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        goals = session.scalars(
            select(Goal)
            .where(Goal.status.not_in(("dropped",)))
            .order_by(Goal.status == "queued", Goal.due, Goal.id)
        ).all()
        return [
            GoalRow(
                g.id,
                g.title,
                g.due,
                shown_status(g, today),
                g.source,
                g.why,
                g.quote,
                g.hours,
                g.kind,
                g.missed,
                g.confidence,
            )
            for g in goals
            if include_finished or g.status in ("planned", "queued", "partly")
        ]


def set_status(settings: Settings, goal_id: int, status: Literal["done", "skipped"]) -> GoalRow:
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        goal = session.get(Goal, goal_id)
        if goal is None or goal.status == "dropped":
            raise ConfigError(f"there is no goal {goal_id}; see `onward plan`")
        goal.status, goal.updated_at = status, utcnow()
        goal.done_at = utcnow() if status == "done" else None
    return next(g for g in list_goals(settings) if g.id == goal_id)


def refresh_plan(settings: Settings) -> PlanningReport:
    """Plan again and rebuild the calendar file (the CLI's way after a change; the worker
    runs the development_plan flow, which does the same as Prefect tasks)."""
    from onward.tasks.calendar.publish import refresh, write_calendar_file

    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        report = replan(session, settings)
        refresh(session, settings)
        write_calendar_file(session, settings)
    return report


def evaluate(
    settings: Settings,
    goal_id: int,
    outcome: Outcome,
    confidence: int | None = None,
    note: str | None = None,
) -> None:
    """One answer of the self-evaluation: done, partly (what is left stays, smaller) or not
    yet (it stays; when its day has passed the next planning moves it)."""
    if confidence is not None and not 1 <= confidence <= 5:
        raise ConfigError("confidence is a number from 1 (not at all) to 5 (very)")
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        goal = session.get(Goal, goal_id)
        if goal is None or goal.status == "dropped":
            raise ConfigError(f"there is no goal {goal_id}; see `onward plan`")
        session.add(Evaluation(goal_id=goal.id, outcome=outcome, confidence=confidence, note=note))
        goal.confidence, goal.note, goal.updated_at = confidence, note or goal.note, utcnow()
        if outcome == "done":
            goal.status, goal.done_at = "done", utcnow()
        elif outcome == "partly":
            goal.hours = max(0.5, round(goal.hours / 2, 1))  # what is left of it
