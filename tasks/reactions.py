"""The Prefect tasks every reaction to a rejection shares: load it, mark it handled, and
the cooldown with its scheduled end. Each retries only what is safe to repeat."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from onward.tasks import cooldown as cooldowns
from onward.tasks import rejections
from onward.tasks.rejections import Rejection
from onward.tasks.runtime import app_store, transient
from onward.tasks.store import Cooldown

# Database writes here are idempotent (unique constraints, "if not already"), so a locked
# or dropped database is retried; anything else fails the run where a person can see it.
DB_RETRY_DELAYS = [1.0, 5.0, 15.0]

PICK_YOURSELF_UP = "pick_yourself_up/pick-yourself-up"


@task(
    name="load rejection",
    task_run_name="load rejection {event_id}",
    retries=3,
    retry_delay_seconds=DB_RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def load_rejection(event_id: int, config_file: str | None) -> Rejection:
    """The rejection behind event ``event_id``, with the mail of its thread."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        return rejections.load_rejection(session, event_id, settings)


@task(
    name="mark reactions started",
    task_run_name="mark {event_id} handled",
    retries=3,
    retry_delay_seconds=DB_RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def mark_reactions_started(event_id: int, config_file: str | None) -> None:
    with app_store(config_file) as (_settings, store), store.unit_of_work() as session:
        rejections.mark_started(session, event_id)


@task(
    name="record reaction failure",
    task_run_name="record that {event_id} failed",
    retries=3,
    retry_delay_seconds=DB_RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def record_reaction_failure(
    event_id: int, reason: str, retry_later: bool, config_file: str | None
) -> str:
    """Record the failure on the rejection: "retry" (tried again later) or "failed"."""
    with app_store(config_file) as (_settings, store), store.unit_of_work() as session:
        return rejections.record_failure(session, event_id, reason, transient=retry_later)


@dataclass(frozen=True)
class CooldownInfo:
    """A recorded cooldown: which, until when, and its scheduled end run if any."""

    cooldown_id: int
    ends_at: datetime
    end_run_id: str | None


@task(
    name="record cooldown",
    task_run_name="record cooldown for {rejection.title}",
    retries=3,
    retry_delay_seconds=DB_RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def record_cooldown(
    rejection: Rejection, config_file: str | None, ends_at: str | None = None
) -> CooldownInfo:
    """The cooldown for ``rejection``, created once. ``ends_at`` brings the end forward
    (the demo) while its end is not yet scheduled."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        row = cooldowns.record_cooldown(session, rejection, settings.reactions.cooldown_days)
        if ends_at and row.end_run_id is None:
            row.ends_at = datetime.fromisoformat(ends_at)
        return CooldownInfo(row.id, row.ends_at, row.end_run_id)


@task(
    name="schedule cooldown end",
    task_run_name="schedule the end of cooldown {cooldown_id}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    cache_policy=NO_CACHE,
)
def schedule_cooldown_end(cooldown_id: int, config_file: str | None, title: str) -> str | None:
    """The scheduled "pick yourself up" run; its idempotency key makes a retry (or a second
    worker) find the same run instead of adding one."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    with app_store(config_file) as (_settings, store):
        with store.unit_of_work() as session:
            row = session.get_one(Cooldown, cooldown_id)
            if row.end_run_id is not None or row.ended_at is not None:
                return row.end_run_id
            ends_at = row.ends_at
        run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync call, not the coroutine
            PICK_YOURSELF_UP,
            parameters={"cooldown_id": cooldown_id, "config_file": config_file, "title": title},
            scheduled_time=ends_at,
            idempotency_key=f"onward-cooldown-end-{cooldown_id}",
            timeout=0,
            as_subflow=False,
            tags=["onward", "cooldown"],
        )
        with store.unit_of_work() as session:
            session.get_one(Cooldown, cooldown_id).end_run_id = str(run.id)
        return str(run.id)


@task(
    name="record cooldown end",
    task_run_name="record the end of cooldown {cooldown_id}",
    retries=3,
    retry_delay_seconds=DB_RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def record_cooldown_end(cooldown_id: int, config_file: str | None) -> bool:
    """Mark the cooldown over; False when it already was (a repeated run)."""
    with app_store(config_file) as (_settings, store), store.unit_of_work() as session:
        row = session.get_one(Cooldown, cooldown_id)
        if row.ended_at is not None:
            return False
        row.ended_at = cooldowns.utcnow()
        return True
