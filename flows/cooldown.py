"""cooldown: a few quiet days after a rejection, then "pick yourself up" as a scheduled run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run

from flows.common import app_store, rejection_title
from tasks.reactions import load_rejection, record_cooldown, write_calendar
from tasks.store import Cooldown, Store, utcnow

PICK_YOURSELF_UP = "pick_yourself_up/pick-yourself-up"


def _cooldown_name() -> str:
    return rejection_title("cooldown", flow_run.parameters)


def _end_name() -> str:
    return rejection_title("pick yourself up", flow_run.parameters)


@flow(name="cooldown", flow_run_name=_cooldown_name, log_prints=False)
def cooldown(
    event_id: int,
    config_file: str | None = None,
    title: str | None = None,
    schedule_end: bool = True,
    ends_at: str | None = None,
) -> dict[str, Any]:
    """Record the cooldown, block it in the calendar, schedule its end as a Prefect run.

    ``schedule_end=False`` (``onward sync --once``) only records it: ``onward run`` then
    schedules the end. ``ends_at`` brings the end forward (the demo).
    """
    logger = get_run_logger()
    with app_store(config_file) as (settings, store):
        with store.unit_of_work() as session:
            rejection = load_rejection(session, event_id, settings)
            row = record_cooldown(session, rejection, settings.reactions.cooldown_days)
            if ends_at and row.end_run_id is None:
                row.ends_at = datetime.fromisoformat(ends_at)
            cooldown_id, end = row.id, row.ends_at
            write_calendar(session, settings.calendar_file)
        scheduled = (
            schedule_cooldown_end(store, cooldown_id, config_file, rejection.title)
            if schedule_end
            else None
        )
        logger.info("%s: cooldown until %s", rejection.title, end.isoformat(timespec="minutes"))
        create_markdown_artifact(
            key=f"cooldown-{rejection.ledger_id}",
            markdown=(
                f"## Cooldown: {rejection.title}\n\nNothing is asked of you until "
                f"**{end:%A %d %B, %H:%M} UTC**. The block is in `{settings.calendar_file}`."
            ),
            description=f"Cooldown for {rejection.title}",
        )
        return {"cooldown_id": cooldown_id, "ends_at": end.isoformat(), "end_run": scheduled}


def schedule_cooldown_end(
    store: Store, cooldown_id: int, config_file: str | None, title: str
) -> str | None:
    """Create the scheduled "pick yourself up" run; the idempotency key makes it one run."""
    from prefect.deployments import run_deployment

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


@flow(name="pick_yourself_up", flow_run_name=_end_name, log_prints=False)
def pick_yourself_up(
    cooldown_id: int, config_file: str | None = None, title: str | None = None
) -> dict[str, Any]:
    """The cooldown is over: start what follows (the development plan and networking flows
    join here as they arrive; for now the end is recorded)."""
    logger = get_run_logger()
    with app_store(config_file) as (_settings, store):
        with store.unit_of_work() as session:
            row = session.get_one(Cooldown, cooldown_id)
            first = row.ended_at is None
            if first:
                row.ended_at = utcnow()
        logger.info("cooldown %s over%s", cooldown_id, "" if first else " (already recorded)")
        return {"cooldown_id": cooldown_id, "ended": first}
