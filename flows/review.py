"""review_rejection: ask the person, in the Prefect UI, whether a borderline mail is a
rejection. The run is suspended (it holds no process while it waits) and renders as a
form; `onward review` answers the same question from the command line."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

from onward.flows.common import rejection_title
from onward.tasks import review
from onward.tasks.runtime import app_store


class ReviewAnswer(RunInput):
    """The form in the UI: is this a rejection of your application?"""

    is_rejection: bool = True
    note: str = ""


def _run_name() -> str:
    return rejection_title("is this a rejection?", flow_run.parameters)


@task(name="review state", task_run_name="look up review {event_id}", cache_policy=NO_CACHE)
def current_state(event_id: int, config_file: str | None) -> str | None:
    with app_store(config_file) as (settings, _store):
        return review.review_state(settings, event_id)


@task(name="describe for review", cache_policy=NO_CACHE)
def question(event_id: int, config_file: str | None) -> str:
    with app_store(config_file) as (_settings, store), store.unit_of_work() as session:
        from onward.tasks.store import DomainEvent

        item = review.describe(session, session.get_one(DomainEvent, event_id))
    evidence = "\n".join(f"- “{quote}”" for quote in item.evidence) or "- (no phrase kept)"
    return (
        f"### Is this a rejection? {item.title}\n\n"
        f"- **From:** {item.sender or 'unknown'}\n- **Subject:** {item.subject or ''}\n"
        f"- **onward's confidence:** {item.confidence:.2f} (not sure enough to act alone)\n\n"
        f"What made it think so:\n\n{evidence}\n\n"
        "Tick *is rejection* to draft the feedback request and start the cooldown; untick "
        "it to dismiss (nothing happens, and onward remembers your answer)."
    )


@task(name="record the answer", cache_policy=NO_CACHE)
def record_answer(event_id: int, answer: ReviewAnswer, config_file: str | None) -> str:
    with app_store(config_file) as (settings, _store):
        decision: review.Decision = "confirmed" if answer.is_rejection else "dismissed"
        return review.decide(settings, event_id, decision, answer.note or None).decision


@flow(name="review_rejection", flow_run_name=_run_name, log_prints=False, persist_result=True)
def review_rejection(
    event_id: int, config_file: str | None = None, title: str | None = None
) -> str:
    """Wait for the person's answer (in the UI, or `onward review`), then act on it."""
    from onward.flows.watch_inbox import react_to_confirmed

    state = current_state(event_id, config_file)
    if state == "waiting":
        answer = suspend_flow_run(
            wait_for_input=ReviewAnswer.with_initial_data(
                description=question(event_id, config_file), is_rejection=True
            ),
            key=f"review-{event_id}",
        )
        if answer is not None:
            state = record_answer(event_id, answer, config_file)
    if state == "confirmed":
        react_to_confirmed(event_id, title or f"rejection {event_id}", "worker", config_file)
    get_run_logger().info("review of %s: %s", title or event_id, state)
    return str(state)


def _confirmed_name() -> str:
    return rejection_title("rejection", flow_run.parameters)


@flow(name="confirmed_rejection", flow_run_name=_confirmed_name, log_prints=False)
def confirmed_rejection(event_id: int, title: str, config_file: str | None = None) -> bool:
    """The reactions to a rejection the person confirmed with `onward review confirm`,
    exactly as for one detected with certainty; True when they all started."""
    from onward.flows.watch_inbox import react_to_confirmed

    return react_to_confirmed(event_id, title, "inline", config_file)
