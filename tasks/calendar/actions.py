"""Publishing the calendar as a Prefect task."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from onward.tasks.calendar.ics import write_calendar
from onward.tasks.runtime import app_store, transient


@task(
    name="write calendar",
    retries=3,
    retry_delay_seconds=[1, 5, 15],
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def publish_calendar(config_file: str | None) -> Path:
    """Rebuild the calendar file from the database (the truth); atomic, safe to repeat."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        write_calendar(session, settings.calendar_file)
        return settings.calendar_file
