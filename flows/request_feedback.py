"""request_feedback: a threaded reply asking for feedback, saved to Drafts, once."""

from __future__ import annotations

from typing import TypedDict

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from onward.flows.common import Story, rejection_title
from onward.tasks.feedback.actions import (
    Problem,
    find_request,
    plan_draft,
    record_request,
    refresh_draft_state,
    save_draft,
)
from onward.tasks.feedback.request import DraftPlan
from onward.tasks.reactions import load_rejection
from onward.tasks.rejections import Rejection


class FeedbackOutcome(TypedDict):
    state: str
    created: bool
    folder: str | None
    # Why no draft was saved ("needs_attention"): the watch records it on the rejection.
    problem: str | None


def _run_name() -> str:
    return rejection_title("rejection", flow_run.parameters)


@flow(name="request_feedback", flow_run_name=_run_name, log_prints=False)
def request_feedback(
    event_id: int, config_file: str | None = None, title: str | None = None
) -> FeedbackOutcome:
    """Draft the feedback request for rejection event ``event_id`` (``title`` names the run)."""
    outcome, story = draft_feedback_request(event_id, config_file)
    if story is not None:
        story.tell()
    return outcome


def draft_feedback_request(
    event_id: int, config_file: str | None
) -> tuple[FeedbackOutcome, Story | None]:
    """The work of ``request_feedback`` as tasks of whichever flow calls it (the worker's
    inbox pass drafts without a flow run of its own), and the artifact to tell after."""
    logger = get_run_logger()
    rejection = load_rejection(event_id, config_file)
    existing = find_request(rejection, config_file)
    if existing is not None:
        state = refresh_draft_state(rejection, config_file)
        logger.info("%s: feedback request already %s; nothing to do", rejection.title, state)
        return {"state": state, "created": False, "folder": existing.folder, "problem": None}, None
    plan = plan_draft(rejection, config_file)
    if isinstance(plan, Problem):
        logger.warning("%s: no draft: %s", rejection.title, plan.reason)
        outcome: FeedbackOutcome = {
            "state": "needs_attention",
            "created": False,
            "folder": None,
            "problem": plan.reason,
        }
        return outcome, None
    ref = save_draft(plan, config_file)
    record_request(plan, ref, config_file)
    folder = ref.folder if ref else None
    logger.info("%s: draft saved to %s (%s)", rejection.title, folder or "Drafts", plan.state)
    story = Story(
        key=f"feedback-request-{rejection.ledger_id}",
        markdown=_story(rejection, plan, folder),
        description=f"Feedback request for {rejection.title}",
    )
    return {"state": plan.state, "created": True, "folder": folder, "problem": None}, story


def _story(rejection: Rejection, plan: DraftPlan, folder: str | None) -> str:
    reasons = rejection.payload.get("reasons") or []
    why = "\n".join(f"  - “{r['phrase']}” ({r['rule']})" for r in reasons[:5]) or "  - (none kept)"
    to = str(plan.to) if plan.to else f"nobody yet: **needs a recipient** ({plan.note})"
    sender = rejection.message.from_
    confidence = float(rejection.payload.get("confidence") or 0)
    lines = [
        f"## Rejection: {rejection.title}",
        "",
        f"- **From:** {sender or 'unknown'}",
        f"- **Subject:** {rejection.message.subject}",
        f"- **Judged a rejection** (confidence {confidence:.2f}) because of:",
        why,
        "",
        "### Feedback request draft",
        "",
        f"- **To:** {to}",
        f"- **Saved in:** {folder or 'Drafts'}: review and send it from your mail client;"
        " onward never sends mail.",
        "",
        "```",
        plan.body.strip(),
        "```",
    ]
    return "\n".join(lines)
