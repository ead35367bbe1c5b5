"""The calendar's side effects as Prefect tasks: rebuild and write it, push it to CalDAV."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from onward.tasks.calendar import caldav_sync
from onward.tasks.calendar.publish import refresh, write_calendar_file
from onward.tasks.runtime import app_store, transient


@task(
    name="write calendar",
    task_run_name="write the calendar",
    retries=3,
    retry_delay_seconds=[1.0, 5.0, 15.0],
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def publish_calendar(config_file: str | None) -> Path:
    """Bring the entries in step with the database (the truth) and write the file:
    atomic, and safe to repeat (no change, no new SEQUENCE)."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        report = refresh(session, settings)
        path = write_calendar_file(session, settings)
    if report.added or report.changed or report.cancelled:
        get_run_logger().info(
            "calendar: %d new, %d changed, %d cancelled item(s) in %s",
            report.added,
            report.changed,
            report.cancelled,
            path,
        )
    return path


@task(
    name="push calendar to CalDAV",
    task_run_name="push the calendar to CalDAV",
    retries=4,
    retry_delay_seconds=[10.0, 30.0, 120.0, 300.0],
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def push_calendar(
    config_file: str | None, retry_unavailable: bool = False
) -> list[caldav_sync.PushReport]:
    """Every pending change into the person's CalDAV calendar. Idempotent (ETags and
    deterministic hrefs), so a retry after the server is back sends each change once.
    Every failure is recorded on the account for `onward status`; a server that is down
    fails the task (so it is retried) only with ``retry_unavailable`` — the reactions
    never wait for a calendar server, the calendar_sync flow does."""
    with app_store(config_file) as (settings, _store):
        reports = caldav_sync.push_all(settings, raise_unavailable=retry_unavailable)
    for report in reports:
        if report.error:
            get_run_logger().warning("CalDAV %s: %s", report.account, report.error)
        elif report.created or report.updated or report.adopted:
            get_run_logger().info(
                "CalDAV %s: %d created, %d updated, %d already there",
                report.account,
                report.created,
                report.updated,
                report.adopted,
            )
    return reports
