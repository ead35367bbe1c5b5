"""request_feedback: a threaded reply asking for feedback, saved to Drafts, once."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from config.settings import Settings
from flows.common import app_store, rejection_title, transient
from tasks.reactions import (
    DraftPlan,
    Rejection,
    existing_request,
    load_rejection,
    open_draft_store,
    plan_feedback_request,
    record_request,
    refresh_state,
    save_draft,
)
from tasks.store import Mailbox, Store


@task(
    name="save draft",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def save_draft_task(plan: DraftPlan, settings: Settings, folder: str | None) -> tuple[str, Any]:
    """Search Drafts for the marker, APPEND only when absent: safe to retry."""
    return save_draft(plan, settings, folder)


def _run_name() -> str:
    return rejection_title("rejection", flow_run.parameters)


@flow(name="request_feedback", flow_run_name=_run_name, log_prints=False)
def request_feedback(
    event_id: int, config_file: str | None = None, title: str | None = None
) -> dict[str, Any]:
    """Draft the feedback request for rejection event ``event_id`` (``title`` names the run)."""
    logger = get_run_logger()
    with app_store(config_file) as (settings, store):
        with store.unit_of_work() as session:
            rejection = load_rejection(session, event_id, settings)
            request = existing_request(session, rejection.ledger_id)
            previous = (request.state, request.folder, request.draft_uid) if request else None
            drafts_folder = session.get_one(Mailbox, rejection.mailbox_id).drafts_folder
        if previous is not None:
            state = _refresh(rejection, settings, drafts_folder, store)
            logger.info("%s: feedback request already %s; nothing to do", rejection.title, state)
            return {"state": state, "created": False}
        plan = plan_feedback_request(rejection, settings)
        state, ref = save_draft_task(plan, settings, drafts_folder)
        with store.unit_of_work() as session:
            record_request(session, plan, state, ref)
        folder = ref.folder if ref else drafts_folder
        logger.info("%s: draft saved to %s (%s)", rejection.title, folder, state)
        create_markdown_artifact(
            key=f"feedback-request-{rejection.ledger_id}",
            markdown=_story(rejection, plan, folder),
            description=f"Feedback request for {rejection.title}",
        )
        return {"state": state, "created": True, "folder": folder}


def _refresh(rejection: Rejection, settings: Settings, folder: str | None, store: Store) -> str:
    """The person may have sent or deleted the draft since: record it, never recreate it."""
    with store.unit_of_work() as session:
        request = existing_request(session, rejection.ledger_id)
        assert request is not None
        with open_draft_store(rejection.account, settings, folder) as drafts:
            request.state = refresh_state(request, rejection, drafts)
        return request.state


def _story(rejection: Rejection, plan: DraftPlan, folder: str | None) -> str:
    reasons = rejection.payload.get("reasons") or []
    why = "\n".join(f"  - “{r['phrase']}” ({r['rule']})" for r in reasons[:5]) or "  - (none kept)"
    to = str(plan.to) if plan.to else "nobody yet: **needs a recipient** (no person found)"
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
