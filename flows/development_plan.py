"""development_plan: small dated goals from the profile, the rejection pattern and the
feedback hiring managers give; started when a cooldown ends, when feedback arrives, after
a self-evaluation and when the profile changes."""

from __future__ import annotations

from typing import TypedDict

from prefect import flow, get_run_logger

from onward.tasks.calendar.actions import publish_calendar, push_calendar
from onward.tasks.plan.actions import plan_goals, publish_plan_artifact


class PlanOutcome(TypedDict):
    started: bool
    added: int
    moved: int
    dropped: int


@flow(name="development_plan", flow_run_name="plan: {reason}", log_prints=False)
def development_plan(reason: str = "update", config_file: str | None = None) -> PlanOutcome:
    """Plan again, put the goals in the calendar, show the plan in the UI."""
    report = plan_goals(reason, config_file)
    logger = get_run_logger()
    if not report.started:
        logger.info("no plan yet: it starts when the first cooldown ends")
    else:
        publish_calendar(config_file)
        push_calendar(config_file)
        publish_plan_artifact(config_file)
        logger.info(
            "plan (%s): %d new goal(s), %d moved, %d dropped",
            reason,
            report.added,
            report.moved,
            report.dropped,
        )
        for note in report.notes:
            logger.info(note)
    return {
        "started": report.started,
        "added": report.added,
        "moved": report.moved,
        "dropped": report.dropped,
    }
