"""calendar_sync: rebuild the calendar from the database and deliver it (file, CalDAV).

Run after every change by the flows that make one, and on an interval by `onward run`,
so a CalDAV server that was down gets its changes when it is back.
"""

from __future__ import annotations

from typing import TypedDict

from prefect import flow

from onward.tasks.calendar.actions import publish_calendar, push_calendar


class CalendarOutcome(TypedDict):
    file: str
    pushed: int
    errors: list[str]


@flow(name="calendar_sync", flow_run_name="calendar", log_prints=False)
def calendar_sync(config_file: str | None = None) -> CalendarOutcome:
    """Write the calendar file, then push what changed to each CalDAV account."""
    path = publish_calendar(config_file)
    reports = push_calendar(config_file, retry_unavailable=True)
    return {
        "file": str(path),
        "pushed": sum(r.created + r.updated for r in reports),
        "errors": [f"{r.account}: {r.error}" for r in reports if r.error],
    }
