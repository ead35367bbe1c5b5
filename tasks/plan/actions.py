"""The plan's side effects as Prefect tasks: match feedback answers, plan again, and the
plan as a markdown artifact in the Prefect UI."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from onward.tasks.feedback.answers import Answered, match_answers
from onward.tasks.plan import goals
from onward.tasks.runtime import app_store, transient
from onward.tasks.store import get_mailbox

DB_RETRY = [1.0, 5.0, 15.0]


@task(
    name="match feedback answers",
    task_run_name="answers to feedback requests in {mailbox}",
    retries=3,
    retry_delay_seconds=DB_RETRY,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def find_feedback_answers(mailbox: str, config_file: str | None) -> list[Answered]:
    """Replies in the thread of a feedback request: the request is answered, its points kept."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        row = get_mailbox(session, mailbox)
        if row is None:
            return []
        mine = {a.lower() for a in settings.user.addresses}
        if row.address:
            mine.add(row.address.lower())
        return match_answers(session, row.id, mine)


@task(
    name="plan goals",
    task_run_name="plan the goals ({reason})",
    retries=3,
    retry_delay_seconds=DB_RETRY,
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def plan_goals(reason: str, config_file: str | None) -> goals.PlanningReport:
    """Plan again from the database and save it in place (idempotent)."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        return goals.replan(session, settings)


@task(name="publish plan", task_run_name="the plan in the Prefect UI", cache_policy=NO_CACHE)
def publish_plan_artifact(config_file: str | None) -> str:
    with app_store(config_file) as (settings, _store):
        rows = goals.list_goals(settings)
    markdown = plan_markdown(rows)
    create_markdown_artifact(
        key="development-plan", markdown=markdown, description="Your development plan"
    )
    return markdown


def plan_markdown(rows: list[goals.GoalRow]) -> str:
    if not rows:
        return "## Your development plan\n\nNo goals yet: the plan starts when a cooldown ends."
    lines = [
        "## Your development plan",
        "",
        "| # | goal | due | status | hours | why |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        why = row.why.replace("|", "/")
        lines.append(
            f"| {row.id} | {row.title} | {row.due:%a %d %b} | {row.status} | {row.hours:g} | "
            f"{why} |"
        )
    return "\n".join(lines)
