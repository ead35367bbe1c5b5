"""cooldown: a few quiet days after a rejection, then "pick yourself up" as a scheduled run."""

from __future__ import annotations

from typing import TypedDict

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from onward.flows.common import Story, rejection_title
from onward.tasks.calendar.actions import publish_calendar, push_calendar
from onward.tasks.reactions import (
    load_rejection,
    record_cooldown,
    record_cooldown_end,
    schedule_cooldown_end,
)


class CooldownOutcome(TypedDict):
    cooldown_id: int
    ends_at: str
    end_run: str | None


class CooldownEnd(TypedDict):
    cooldown_id: int
    ended: bool


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
) -> CooldownOutcome:
    """Record the cooldown, block it in the calendar, schedule its end as a Prefect run.

    ``schedule_end=False`` (``onward sync --once``) only records it: ``onward run`` then
    schedules the end. ``ends_at`` brings the end forward (the demo).
    """
    outcome, story = begin_cooldown(event_id, config_file, schedule_end, ends_at)
    publish_calendar(config_file)
    push_calendar(config_file)
    story.tell()
    return outcome


def begin_cooldown(
    event_id: int,
    config_file: str | None,
    schedule_end: bool = True,
    ends_at: str | None = None,
) -> tuple[CooldownOutcome, Story]:
    """The work of ``cooldown`` but the calendar, as tasks of whichever flow calls it: a
    pass that records several cooldowns writes the calendar once, after all of them."""
    rejection = load_rejection(event_id, config_file)
    info = record_cooldown(rejection, config_file, ends_at)
    end_run = info.end_run_id
    if schedule_end:
        end_run = schedule_cooldown_end(info.cooldown_id, config_file, rejection.title)
    end = info.ends_at
    get_run_logger().info(
        "%s: cooldown until %s", rejection.title, end.isoformat(timespec="minutes")
    )
    story = Story(
        key=f"cooldown-{rejection.ledger_id}",
        markdown=(
            f"## Cooldown: {rejection.title}\n\nNothing is asked of you until "
            f"**{end:%A %d %B, %H:%M} UTC**. The block is in your calendar "
            "(the calendar file, the feed `onward run` serves, and CalDAV when connected)."
        ),
        description=f"Cooldown for {rejection.title}",
    )
    outcome: CooldownOutcome = {
        "cooldown_id": info.cooldown_id,
        "ends_at": end.isoformat(),
        "end_run": end_run,
    }
    return outcome, story


@flow(name="pick_yourself_up", flow_run_name=_end_name, log_prints=False)
def pick_yourself_up(
    cooldown_id: int, config_file: str | None = None, title: str | None = None
) -> CooldownEnd:
    """The cooldown is over: pick yourself up. The development plan (goals, the weekly
    self-evaluation) and this week's networking tasks start, in your calendar."""
    from onward.flows.development_plan import development_plan
    from onward.flows.networking_round import networking_round

    first = record_cooldown_end(cooldown_id, config_file)
    get_run_logger().info("cooldown %s over%s", cooldown_id, "" if first else " (already recorded)")
    development_plan(reason="a cooldown ended", config_file=config_file)
    networking_round(config_file=config_file)
    return {"cooldown_id": cooldown_id, "ended": first}
