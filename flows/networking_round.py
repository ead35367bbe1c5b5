"""networking_round: the weekly engagement tasks that warm contacts up gradually."""

from __future__ import annotations

from typing import TypedDict

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from onward.tasks.calendar.actions import publish_calendar
from onward.tasks.network.actions import plan_round, refresh_network


class RoundOutcome(TypedDict):
    week: str
    status: str
    created: list[int]
    tasks: int


@flow(name="networking_round", flow_run_name="networking round", log_prints=False)
def networking_round(config_file: str | None = None, now: str | None = None) -> RoundOutcome:
    """Refresh contacts from the mailbox, pick this week's tasks, put them in the calendar.

    ``now`` (ISO 8601 with a zone) runs the round as of that moment (tests, the demo).
    """
    logger = get_run_logger()
    refreshed = refresh_network(config_file, now)
    result = plan_round(config_file, now)
    publish_calendar(config_file)
    logger.info(
        "week of %s: %s (%d new contacts, %d interactions, %d cooled)",
        result.week.isoformat(),
        result.note,
        refreshed.gathered,
        refreshed.interactions,
        refreshed.cooled,
    )
    create_table_artifact(
        key=f"networking-round-{result.week.isoformat()}",
        table=[
            {
                "id": t.id,
                "due": t.due.strftime("%a %d %b"),
                "task": t.summary,
                "company": t.company or "",
                "stage": t.stage,
                "state": t.state,
            }
            for t in result.tasks
        ],
        description=f"Networking tasks for the week of {result.week:%d %b %Y}: {result.note}",
    )
    return {
        "week": result.week.isoformat(),
        "status": result.status,
        "created": [t.id for t in result.created],
        "tasks": len(result.tasks),
    }
