"""The networking round's side effects as Prefect tasks. Both write the app database
idempotently (unique constraints, per-contact scan marks), so both retry."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from onward.tasks.network.contacts import RefreshReport, refresh_contacts
from onward.tasks.network.rounds import RoundResult, run_round
from onward.tasks.runtime import app_store, transient
from onward.tasks.store import utcnow

DB_RETRY_DELAYS = [1.0, 5.0, 15.0]


def _when(now: str | None) -> datetime:
    return datetime.fromisoformat(now) if now else utcnow()


@task(
    name="refresh contacts",
    task_run_name="read the mailbox for contacts and their replies",
    retries=3,
    retry_delay_seconds=DB_RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def refresh_network(config_file: str | None, now: str | None = None) -> RefreshReport:
    """New contacts from job mail, mail from known contacts, cooling after silence."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        return refresh_contacts(session, settings, _when(now))


@task(
    name="plan networking round",
    task_run_name="pick this week's networking tasks",
    retries=3,
    retry_delay_seconds=DB_RETRY_DELAYS,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def plan_round(config_file: str | None, now: str | None = None) -> RoundResult:
    """This week's tasks, created once per (week, contact)."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        return run_round(session, settings, _when(now))
