"""watch_inbox: one incremental pass over the watched folder, then the reactions to each
rejection it found (or that a crash left unstarted)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Completed

from onward.flows.common import Story, tell_all
from onward.tasks.calendar.actions import publish_calendar, push_calendar
from onward.tasks.errors import OnwardError
from onward.tasks.feedback.answers import Answered
from onward.tasks.mail.actions import (
    PendingRejection,
    mailbox_name,
    mailboxes_to_watch,
    pending_rejection_events,
    sync_mailbox,
    unasked_reviews,
)
from onward.tasks.mail.sync import SyncReport
from onward.tasks.mail.watch_slot import watch_slot
from onward.tasks.plan.actions import find_feedback_answers
from onward.tasks.reactions import mark_reactions_started, record_reaction_failure
from onward.tasks.runtime import explain_failure

REQUEST_FEEDBACK = "request_feedback/request-feedback"
COOLDOWN = "cooldown/cooldown"

# How the reactions to a rejection run:
#   inline       here, as tasks of this run; the cooldown's end is left for `onward run`
#                (`onward sync --once`, the demo, `onward run`'s IDLE passes, where its
#                catch-up thread schedules the ends off the path of the next draft);
#   worker       here, as tasks of this run, the cooldown's end a scheduled deployment
#                run (a confirmed borderline rejection);
#   deployments  as deployment runs with idempotency keys (the interval pass, work pools);
#                the pass holds the mailbox's watch slot (tasks/mail/watch_slot.py);
#   none         not at all (only record).
ReactionMode = Literal["inline", "worker", "deployments", "none"]


def _run_name() -> str:
    return f"watch {flow_run.parameters.get('mailbox') or 'inbox'}"


@flow(name="watch_inbox", flow_run_name=_run_name, log_prints=False)
def watch_inbox(
    mailbox: str | None = None,
    since: str | None = None,
    config_file: str | None = None,
    reactions: ReactionMode = "inline",
    ask_in_ui: bool = False,
) -> SyncReport:
    """Sync new mail into the ledger (``since``: ISO date backfill), then start the
    reactions to each rejection (see ``ReactionMode``). ``ask_in_ui``: borderline ones get a
    question in the Prefect UI (where deployments are served: `onward run`, work pools).

    A pass that runs as a deployment run (``reactions="deployments"``: work-pool workers,
    the interval run) holds the mailbox's watch slot, a Prefect global concurrency limit:
    when another worker holds it, the run does nothing and ends Completed, quietly."""
    if reactions != "deployments":
        return _watch(mailbox, since, config_file, reactions, ask_in_ui)
    name = mailbox_name(mailbox, config_file)
    with watch_slot(name) as held:
        if held:
            return _watch(name, since, config_file, reactions, ask_in_ui)
    busy = SyncReport(mailbox=name, busy=True)
    summary = describe(busy)
    get_run_logger().info(summary)
    return Completed(message=summary, data=busy)  # type: ignore[return-value]  # the run's result


@flow(name="watch_mailboxes", flow_run_name="watch the mailboxes", log_prints=False)
def watch_mailboxes(
    mailboxes: list[str] | None = None, since: str | None = None, config_file: str | None = None
) -> list[str]:
    """The work pool's watch: one pass over each connected mailbox (or those named), each
    with its own cursor and under its own watch slot. Concurrent runs share the mailboxes
    out between them: each skips the ones another is watching. One mailbox failing does not
    stop the others; the run fails at the end when any did."""
    summaries: list[str] = []
    failed: list[str] = []
    for name in mailboxes_to_watch(mailboxes, config_file):
        try:
            report = watch_inbox(
                mailbox=name, since=since, config_file=config_file, reactions="deployments"
            )
        except Exception as exc:
            get_run_logger().warning("%s: the pass failed (%s)", name, exc)
            failed.append(name)
            continue
        summaries.append(describe(report))
    if failed:
        raise WatchFailedError(f"the pass failed for {', '.join(failed)} (see its run)")
    return summaries


class WatchFailedError(OnwardError):
    """The pass over one or more mailboxes failed."""


def _watch(
    mailbox: str | None,
    since: str | None,
    config_file: str | None,
    reactions: ReactionMode,
    ask_in_ui: bool,
) -> SyncReport:
    report = sync_mailbox(mailbox, since, config_file)
    if reactions != "none":
        report.attention += react_all(
            pending_rejection_events(report.mailbox, config_file), reactions, config_file
        )
        answers = find_feedback_answers(report.mailbox, config_file)
        for answer in answers:
            announce_feedback(answer)
        if answers:
            from onward.flows.development_plan import development_plan

            who = ", ".join(a.company or "a hiring manager" for a in answers)
            development_plan(reason=f"feedback from {who}", config_file=config_file)
    if ask_in_ui or reactions in ("worker", "deployments"):
        # Borderline rejections: a suspended run per question, a form in the Prefect UI.
        for event_id, title in unasked_reviews(report.mailbox, config_file):
            ask_in_the_ui(event_id, title, config_file)
    summary = describe(report)
    get_run_logger().info(summary)
    if report.recorded or report.malformed or report.uidvalidity_changed:
        create_markdown_artifact(
            key="watch-inbox-summary",
            markdown=f"### Inbox pass\n\n{summary}\n\n" + _labels_table(report),
            description="What the last inbox pass found",
        )
    return report


def react(item: PendingRejection, mode: ReactionMode, config_file: str | None) -> bool:
    """Announce one rejection and start its reactions (see ``react_all``); True when every
    reaction started."""
    return react_all([item], mode, config_file) == 0


def react_all(items: list[PendingRejection], mode: ReactionMode, config_file: str | None) -> int:
    """Start the reactions to each rejection, each isolated from the others: a failure is
    recorded on its rejection (retried later or given up, with a reason a person can act
    on) and the pass goes on. Every draft comes first: the time-sensitive part of each
    rejection does not wait for the cooldowns (and their calendar work) of the ones before
    it, nor for any artifact. Returns how many rejections need attention."""
    stories: list[Story] = []
    failures: dict[int, list[tuple[str, bool]]] = {}
    for item in items:
        if item["problem"]:
            record_reaction_failure(item["event_id"], item["problem"], False, config_file)
            continue
        try:
            announce_rejection(item)
        except Exception as exc:  # visibility only: the app database is the record
            get_run_logger().warning("%s: event not emitted (%s)", item["title"], exc)
        failures[item["event_id"]] = start_reactions(
            item, mode, config_file, ("feedback",), stories
        )
    started = [item for item in items if item["event_id"] in failures]
    for item in started:
        failures[item["event_id"]] += start_reactions(
            item, mode, config_file, ("cooldown",), stories
        )
    if mode != "deployments" and started:
        refresh_calendar(config_file)
    attention = len(items) - len(started)
    for item in started:
        failed = failures[item["event_id"]]
        if not failed:
            mark_reactions_started(item["event_id"], config_file)
            continue
        attention += 1
        reasons = "; ".join(reason for reason, _ in failed)
        retry_later = all(transient for _, transient in failed)
        outcome = record_reaction_failure(item["event_id"], reasons, retry_later, config_file)
        when = "tried again later" if outcome == "retry" else "needs your attention"
        get_run_logger().warning("%s: %s (%s)", item["title"], reasons, when)
    tell_all(stories)
    return attention


def refresh_calendar(config_file: str | None) -> None:
    """The calendar file and CalDAV, once for every cooldown a pass recorded. A failure
    here fails no reaction: each cooldown is in the app database, and calendar_sync
    rewrites the calendar from it within minutes."""
    try:
        publish_calendar(config_file)
        push_calendar(config_file)
    except Exception as exc:
        reason, _ = explain_failure(exc)
        get_run_logger().warning("calendar not updated now (%s); calendar_sync will", reason)


# An event's payload is capped (Prefect refuses events over its size limit); the app
# database keeps the whole record.
EVENT_TEXT_LIMIT = 300


def _capped(value: Any) -> Any:
    if isinstance(value, str):
        return value[:EVENT_TEXT_LIMIT]
    if isinstance(value, list | tuple):
        return [_capped(v) for v in value[:10]]
    if isinstance(value, dict):
        return {str(k)[:60]: _capped(v) for k, v in list(value.items())[:30]}
    return value


def announce_rejection(item: PendingRejection) -> None:
    """``onward.rejection.detected`` for the UI and automations; the id is deterministic."""
    natural = item["natural_key"]
    payload = _capped({k: v for k, v in item["payload"].items() if k != "reasons"})
    emit_event(
        event="onward.rejection.detected",
        resource={
            "prefect.resource.id": f"onward.rejection.{uuid.uuid5(uuid.NAMESPACE_URL, natural)}",
            "prefect.resource.name": item["title"][:EVENT_TEXT_LIMIT],
        },
        payload=payload,
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"onward/rejection.detected/{natural}"),
    )


def start_reactions(
    item: PendingRejection,
    mode: ReactionMode,
    config_file: str | None,
    parts: tuple[str, ...],
    stories: list[Story],
) -> list[tuple[str, bool]]:
    """The draft and the cooldown (``parts``) for one rejection, the way ``mode`` says;
    each runs even when the other fails. In this process they are tasks of the calling
    flow: the draft waits for no flow run of its own (see ``Story``); the calendar is left
    to the caller. Returns the failures as (reason, worth retrying later)."""
    from onward.flows.cooldown import begin_cooldown
    from onward.flows.request_feedback import draft_feedback_request

    event_id, title = item["event_id"], item["title"]
    failures: list[tuple[str, bool]] = []
    if mode == "deployments":
        from prefect.deployments import run_deployment

        natural = uuid.uuid5(uuid.NAMESPACE_URL, item["natural_key"])
        params = {"event_id": event_id, "config_file": config_file, "title": title}
        for name, deployment in (("feedback", REQUEST_FEEDBACK), ("cooldown", COOLDOWN)):
            if name not in parts:
                continue
            try:
                run_deployment(
                    deployment,
                    parameters=params,
                    idempotency_key=f"onward-{name}-{natural}",
                    timeout=0,
                    as_subflow=False,
                    tags=["onward", "rejection"],
                )
            except Exception as exc:
                failures.append(_failure(f"starting the {name} run", exc))
        return failures
    if "feedback" in parts:
        try:
            outcome, story = draft_feedback_request(event_id, config_file)
        except Exception as exc:
            failures.append(_failure("the feedback request", exc))
        else:
            stories += [story] if story else []
            if outcome["problem"]:
                failures.append((f"no feedback request drafted: {outcome['problem']}", False))
    if "cooldown" in parts:
        try:
            _, story = begin_cooldown(event_id, config_file, schedule_end=mode == "worker")
        except Exception as exc:
            failures.append(_failure("the cooldown", exc))
        else:
            stories.append(story)
    return failures


def _failure(what: str, exc: BaseException) -> tuple[str, bool]:
    reason, retry_later = explain_failure(exc)
    return f"{what} failed: {reason}", retry_later


def announce_feedback(answer: Answered) -> None:
    """``onward.feedback.received``: a hiring manager answered a feedback request."""
    natural = f"feedback/{answer.request_id}/{answer.ledger_id}"
    emit_event(
        event="onward.feedback.received",
        resource={
            "prefect.resource.id": f"onward.feedback.{answer.request_id}",
            "prefect.resource.name": answer.company or "feedback",
        },
        payload={"points": answer.points, "company": answer.company},
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"onward/{natural}"),
    )


def react_to_confirmed(
    event_id: int, title: str, mode: ReactionMode, config_file: str | None
) -> bool:
    """The reactions to one rejection the person confirmed (see `onward review`), exactly
    as for one detected with certainty."""
    item: PendingRejection = {
        "event_id": event_id,
        "title": title,
        "natural_key": f"event-{event_id}",
        "payload": {},
        "problem": None,
    }
    return react(item, mode, config_file)  # marks it handled when all started


REVIEW_REJECTION = "review_rejection/review-rejection"


def ask_in_the_ui(event_id: int, title: str, config_file: str | None) -> None:
    """A review_rejection run that suspends with a form; its key makes it one per rejection."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    from onward.tasks.review import record_review_run
    from onward.tasks.runtime import app_store

    run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync call
        REVIEW_REJECTION,
        parameters={"event_id": event_id, "config_file": config_file, "title": title},
        idempotency_key=f"onward-review-{event_id}",
        timeout=0,
        as_subflow=False,
        tags=["onward", "review"],
    )
    with app_store(config_file) as (settings, _store):
        record_review_run(settings, event_id, str(run.id))


def describe(report: SyncReport) -> str:
    """One line a person can read: what the pass found."""
    if report.busy:
        return f"another worker is watching {report.mailbox}"
    parts = [f"{report.recorded} new message(s) recorded"]
    if report.already_known:
        parts.append(f"{report.already_known} already known")
    if report.malformed:
        parts.append(f"{report.malformed} malformed (recorded and skipped)")
    if report.failed:
        parts.append(f"{report.failed} failed in the message step")
    if report.attention:
        parts.append(f"{report.attention} rejection(s) need attention (see onward drafts)")
    if report.first_run and not report.seen:
        parts.append("first run: watching from now on (use --since DATE to backfill)")
    if report.uidvalidity_changed:
        parts.append("the folder was renumbered: re-read mail since the watch started")
    if report.labels.get("rejection"):
        parts.append(f"{report.labels['rejection']} rejection(s)")
    return f"{report.mailbox}: " + ", ".join(parts)


def _labels_table(report: SyncReport) -> str:
    if not report.labels:
        return ""
    rows = "\n".join(f"| {label} | {n} |" for label, n in sorted(report.labels.items()))
    return f"| label | messages |\n|---|---|\n{rows}\n"
