"""The weekly networking round: which contacts get a task this week, what kind, when due.

``plan_picks`` is pure (candidates, free days and the rules in; picks out). ``run_round``
reads the database, calls it, and records the tasks: unique per (week, contact), and the
week's cap counts every task the week already has, so a repeated round changes nothing
and a skipped task is never made up for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onward.config.settings import WEEKDAYS, NetworkSettings, Settings
from onward.tasks.network.messages import (
    ASK_KINDS,
    KINDS,
    MessageContext,
    render_message,
    task_summary,
)
from onward.tasks.network.stages import Stage, stage_for
from onward.tasks.store import Contact, Cooldown, NetworkTask

_COLD = ("comment", "react", "congratulate")
_WARMING = ("share", "check_in")
_WARM = ("advice", "call", "ask")


def round_week(now: datetime, settings: Settings) -> date:
    """The round's date for ``now``: the configured round day on or before today, locally."""
    today = now.astimezone(settings.tz).date()
    target = WEEKDAYS.index(settings.network.round_day)
    return today - timedelta(days=(today.weekday() - target) % 7)


def round_cron(rules: NetworkSettings) -> str:
    """The weekly schedule as a cron string (minute hour * * weekday, Sunday = 0)."""
    weekday = (WEEKDAYS.index(rules.round_day) + 1) % 7
    return f"{rules.round_time.minute} {rules.round_time.hour} * * {weekday}"


def is_target(company: str | None, position: str | None, rules: NetworkSettings) -> bool:
    """At a target company (same name, case-insensitive) or in a target role (part of the
    title is enough)."""
    firm = (company or "").casefold().strip()
    title = (position or "").casefold()
    if firm and any(firm == c.casefold().strip() for c in rules.target_companies):
        return True
    return any(r.casefold().strip() and r.casefold().strip() in title for r in rules.target_roles)


def pick_kind(stage: Stage, tasks_at_stage: int, ever_tasked: bool, at_target_company: bool) -> str:
    """A task that fits the stage; the kinds rotate. Asks exist only for warm contacts."""
    if stage == "cold":
        if not ever_tasked:
            return "follow"
        # The first cold task was the follow: comment comes next, then the others.
        return _COLD[max(tasks_at_stage - 1, 0) % len(_COLD)]
    if stage == "warming":
        return _WARMING[tasks_at_stage % len(_WARMING)]
    kind = _WARM[tasks_at_stage % len(_WARM)]
    if kind == "ask":
        return "referral" if at_target_company else "ask_roles"
    return kind


@dataclass(frozen=True)
class Candidate:
    contact_id: int
    stage: Stage
    # The last day this contact was touched or given a task (any state), if ever.
    last_touched: date | None
    tasks_at_stage: int
    ever_tasked: bool
    target: bool
    at_target_company: bool


@dataclass(frozen=True)
class Pick:
    contact_id: int
    kind: str
    due: date


def free_days(
    week: date,
    today: date,
    not_before: date,
    cooldowns: list[tuple[datetime, datetime]],
    tz: ZoneInfo,
) -> list[date]:
    """Days of the round's week from today on that no cooldown touches."""
    days = []
    for offset in range(7):
        day = week + timedelta(days=offset)
        if day < today or day < not_before:
            continue
        start = datetime.combine(day, time(0), tz)
        end = datetime.combine(day + timedelta(days=1), time(0), tz)
        if any(s < end and e > start for s, e in cooldowns):
            continue
        days.append(day)
    return days


def spread(days: list[date], n: int) -> list[date]:
    """``n`` due days spread over ``days`` (Monday, Wednesday, Friday for 3 of 7)."""
    if not days or n <= 0:
        return []
    n = min(n, len(days))
    return [days[(i * len(days)) // n] for i in range(n)]


def plan_picks(
    candidates: list[Candidate], days: list[date], slots: int, rules: NetworkSettings
) -> list[Pick]:
    """At most ``slots`` picks, one per contact, each at least ``min_days_between_touches``
    after that contact's last touch; targets first, then longest untouched."""
    order = sorted(
        candidates,
        key=lambda c: (not c.target, c.last_touched or date.min, c.contact_id),
    )
    open_slots = spread(days, slots)
    picks: list[Pick] = []
    spacing = timedelta(days=rules.min_days_between_touches)
    for candidate in order:
        if not open_slots:
            break
        for due in open_slots:
            if candidate.last_touched is None or due - candidate.last_touched >= spacing:
                kind = pick_kind(
                    candidate.stage,
                    candidate.tasks_at_stage,
                    candidate.ever_tasked,
                    candidate.at_target_company,
                )
                picks.append(Pick(candidate.contact_id, kind, due))
                open_slots.remove(due)
                break
    return sorted(picks, key=lambda p: (p.due, p.contact_id))


# --- the database side -------------------------------------------------------------------


@dataclass(frozen=True)
class TaskView:
    """A networking task as the person sees it (``onward tasks``, the round's summary)."""

    id: int
    week: date
    due: date
    kind: str
    summary: str
    how: str
    contact_id: int
    contact: str
    company: str | None
    stage: str
    state: str
    message: str


def task_view(task: NetworkTask, contact: Contact) -> TaskView:
    return TaskView(
        id=task.id,
        week=task.week,
        due=task.due,
        kind=task.kind,
        summary=task_summary(task.kind, contact.name),
        how=KINDS[task.kind].how,
        contact_id=contact.id,
        contact=contact.name,
        company=contact.company,
        stage=task.stage,
        state=task.state,
        message=task.message,
    )


@dataclass(frozen=True)
class RoundResult:
    week: date
    status: str  # "planned" | "waiting" | "paused"
    note: str
    created: list[TaskView]
    tasks: list[TaskView]  # every task of the week, created now or before
    expired: int


def week_tasks(session: Session, week: date) -> list[TaskView]:
    rows = session.execute(
        select(NetworkTask, Contact)
        .join(Contact, Contact.id == NetworkTask.contact_id)
        .where(NetworkTask.week == week)
        .order_by(NetworkTask.due, NetworkTask.id)
    )
    return [task_view(task, contact) for task, contact in rows]


def _expire_old(session: Session, week: date) -> int:
    old = session.scalars(
        select(NetworkTask).where(NetworkTask.week < week, NetworkTask.state == "open")
    ).all()
    for task in old:
        task.state = "expired"
    return len(old)


def _candidates(session: Session, settings: Settings, week: date) -> list[Candidate]:
    rules = settings.network
    tz = settings.tz
    last_due = dict(
        session.execute(
            select(NetworkTask.contact_id, func.max(NetworkTask.due)).group_by(
                NetworkTask.contact_id
            )
        ).all()
    )
    per_stage: Counter[tuple[int, str]] = Counter()
    for contact_id, stage, n in session.execute(
        select(NetworkTask.contact_id, NetworkTask.stage, func.count()).group_by(
            NetworkTask.contact_id, NetworkTask.stage
        )
    ):
        per_stage[(contact_id, stage)] = n
    this_week = set(session.scalars(select(NetworkTask.contact_id).where(NetworkTask.week == week)))
    out = []
    for contact in session.scalars(select(Contact).order_by(Contact.id)):
        if contact.id in this_week:
            continue
        stage = stage_for(contact.touches, rules)
        touched = [d for d in (last_due.get(contact.id),) if d is not None]
        if contact.last_touch_at is not None:
            touched.append(contact.last_touch_at.astimezone(tz).date())
        firm = (contact.company or "").casefold().strip()
        out.append(
            Candidate(
                contact_id=contact.id,
                stage=stage,
                last_touched=max(touched) if touched else None,
                tasks_at_stage=per_stage[(contact.id, stage)],
                ever_tasked=contact.id in last_due,
                target=is_target(contact.company, contact.position, rules),
                at_target_company=bool(firm)
                and any(firm == c.casefold().strip() for c in rules.target_companies),
            )
        )
    return out


def run_round(session: Session, settings: Settings, now: datetime) -> RoundResult:
    """This week's tasks, created once: none before the first cooldown has ended, none due
    inside a cooldown, at most ``tasks_per_week`` in all, none for a contact touched too
    recently."""
    rules = settings.network
    tz = settings.tz
    week = round_week(now, settings)
    expired = _expire_old(session, week)
    existing = week_tasks(session, week)

    def result(status: str, note: str, created: list[TaskView] | None = None) -> RoundResult:
        made = created or []
        return RoundResult(week, status, note, made, [*existing, *made], expired)

    if rules.tasks_per_week == 0:
        return result("paused", "tasks_per_week is 0: no networking tasks")
    first_end = session.scalar(select(func.min(Cooldown.ended_at)))
    if first_end is None or first_end > now:
        return result("waiting", "networking starts when your first cooldown is over")
    slots = rules.tasks_per_week - len(existing)
    if slots <= 0:
        return result("planned", f"this week already has its {len(existing)} tasks")
    cooldowns = [(c.starts_at, c.ends_at) for c in session.scalars(select(Cooldown))]
    days = free_days(
        week, now.astimezone(tz).date(), first_end.astimezone(tz).date(), cooldowns, tz
    )
    if not days:
        return result("planned", "no free day left this week (a cooldown or the week's end)")
    picks = plan_picks(_candidates(session, settings, week), days, slots, rules)
    if not picks:
        return result("planned", "nobody is due a touch this week (spacing or no contacts)")
    created = []
    for pick in picks:
        contact = session.get_one(Contact, pick.contact_id)
        stage = stage_for(contact.touches, rules)
        if pick.kind in ASK_KINDS and stage != "warm":  # the rule that matters most
            raise AssertionError(f"an ask for a {stage} contact: {pick}")
        message = render_message(
            pick.kind,
            MessageContext(
                contact_name=contact.name,
                company=contact.company,
                position=contact.position,
                stage=stage,
                target_role=rules.target_roles[0] if rules.target_roles else None,
                sender_name=settings.user.name or None,
            ),
            template_dirs=[settings.templates_dir],
        )
        task = NetworkTask(
            week=week,
            contact_id=contact.id,
            kind=pick.kind,
            stage=stage,
            due=pick.due,
            message=message,
            state="open",
            replied=False,
            created_at=now,
        )
        session.add(task)
        session.flush()
        created.append(task_view(task, contact))
    return result("planned", f"{len(created)} new task(s) for the week of {week:%d %b %Y}", created)
