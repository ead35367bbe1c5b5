"""watch_inbox: one incremental pass over the watched folder, recorded in the ledger."""

from __future__ import annotations

import uuid
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from flows.common import app_store, transient
from tasks.accounts import Account, open_backend
from tasks.errors import MailboxError
from tasks.reactions import load_rejection, mark_started
from tasks.steps import message_step
from tasks.store import get_mailbox, pending_rejections
from tasks.sync import MailboxNotConnectedError, sync_once

REQUEST_FEEDBACK = "request_feedback/request-feedback"
COOLDOWN = "cooldown/cooldown"


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@task(
    name="sync mailbox",
    task_run_name="sync {mailbox}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def sync_mailbox(mailbox: str | None, since: str | None, config_file: str | None) -> dict[str, Any]:
    """Fetch what is new, parse it, hand it to the per-message step, record it."""
    with app_store(config_file) as (settings, store):
        with store.unit_of_work() as session:
            row = get_mailbox(session, mailbox)
            if row is None:
                raise MailboxNotConnectedError(
                    "no mailbox is connected; run `onward connect` first"
                )
            account = Account.from_row(row, settings)
        try:
            with closing(open_backend(account, settings)) as backend:
                report = sync_once(
                    store,
                    account.name,
                    backend,
                    since=parse_since(since),
                    handler=message_step(settings, account),
                    batch_size=settings.sync.batch_size,
                    max_text_bytes=settings.sync.max_text_bytes,
                )
        except MailboxError as exc:
            with store.unit_of_work() as session:
                failed = get_mailbox(session, account.name)
                if failed is not None:
                    failed.last_error = str(exc)
            raise
        return report.as_dict()


def _run_name() -> str:
    params = flow_run.parameters
    return f"watch {params.get('mailbox') or 'inbox'}"


@task(name="pending rejections", cache_policy=NO_CACHE)
def pending_rejection_events(mailbox: str, config_file: str | None) -> list[dict[str, Any]]:
    """Rejections whose reactions were not started: new ones, and any a crash left behind."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        row = get_mailbox(session, mailbox)
        if row is None:
            return []
        out = []
        for event_id in pending_rejections(session, row.id):
            rejection = load_rejection(session, event_id, settings)
            out.append(
                {
                    "event_id": event_id,
                    "title": rejection.title,
                    "natural_key": f"{row.name}|{rejection.message.key}",
                    "payload": rejection.payload,
                }
            )
        return out


@task(name="mark reactions started", cache_policy=NO_CACHE)
def mark_reactions_started(event_id: int, config_file: str | None) -> None:
    with app_store(config_file) as (_settings, store), store.unit_of_work() as session:
        mark_started(session, event_id)


def emit_rejection(item: dict[str, Any]) -> None:
    """``onward.rejection.detected`` for the UI and automations; the id is deterministic."""
    natural = item["natural_key"]
    payload = {k: v for k, v in item["payload"].items() if k != "reasons"}
    emit_event(
        event="onward.rejection.detected",
        resource={
            "prefect.resource.id": f"onward.rejection.{uuid.uuid5(uuid.NAMESPACE_URL, natural)}",
            "prefect.resource.name": item["title"],
        },
        payload=payload,
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"onward/rejection.detected/{natural}"),
    )


def start_reactions(item: dict[str, Any], reactions: str, config_file: str | None) -> None:
    """Draft and cooldown for one rejection.

    ``deployments``: as deployment runs with idempotency keys (the interval pass, work
    pools). ``worker``: right here as subflows, the cooldown's end as a scheduled
    deployment run (`onward run`'s IDLE passes: a flow-run process costs seconds of CPU,
    the draft is time-sensitive). ``inline``: here too, the end left for `onward run`
    (`onward sync --once`, the demo)."""
    from flows.cooldown import cooldown
    from flows.request_feedback import request_feedback

    params = {"event_id": item["event_id"], "config_file": config_file, "title": item["title"]}
    if reactions == "deployments":
        from prefect.deployments import run_deployment

        natural = uuid.uuid5(uuid.NAMESPACE_URL, item["natural_key"])
        for name, flow_name in (("feedback", REQUEST_FEEDBACK), ("cooldown", COOLDOWN)):
            run_deployment(
                flow_name,
                parameters=params,
                idempotency_key=f"onward-{name}-{natural}",
                timeout=0,
                as_subflow=False,
                tags=["onward", "rejection"],
            )
    else:
        request_feedback(**params)
        cooldown(**params, schedule_end=reactions == "worker")


@flow(name="watch_inbox", flow_run_name=_run_name, log_prints=False)
def watch_inbox(
    mailbox: str | None = None,
    since: str | None = None,
    config_file: str | None = None,
    reactions: str = "inline",
) -> dict[str, Any]:
    """Sync new mail into the ledger (``since``: ISO date backfill), then start the
    reactions to each rejection: ``inline``, ``worker``, as ``deployments`` runs, or
    ``none`` (see ``start_reactions``)."""
    logger = get_run_logger()
    report = sync_mailbox(mailbox, since, config_file)
    summary = describe(report)
    logger.info(summary)
    if reactions != "none":
        for item in pending_rejection_events(report["mailbox"], config_file):
            emit_rejection(item)
            start_reactions(item, reactions, config_file)
            mark_reactions_started(item["event_id"], config_file)
    if report["recorded"] or report["malformed"] or report["uidvalidity_changed"]:
        create_markdown_artifact(
            key="watch-inbox-summary",
            markdown=f"### Inbox pass\n\n{summary}\n\n" + _labels_table(report),
            description="What the last inbox pass found",
        )
    return report


def describe(report: dict[str, Any]) -> str:
    parts = [f"{report['recorded']} new message(s) recorded"]
    if report["already_known"]:
        parts.append(f"{report['already_known']} already known")
    if report["malformed"]:
        parts.append(f"{report['malformed']} malformed (recorded and skipped)")
    if report["failed"]:
        parts.append(f"{report['failed']} failed in the message step")
    if report["first_run"] and not report["seen"]:
        parts.append("first run: watching from now on (use --since DATE to backfill)")
    if report["uidvalidity_changed"]:
        parts.append("UIDVALIDITY changed: re-read mail since the watch started")
    labels: dict[str, int] = report.get("labels") or {}
    if labels.get("rejection"):
        parts.append(f"{labels['rejection']} rejection(s)")
    return f"{report['mailbox']}: " + ", ".join(parts)


def _labels_table(report: dict[str, Any]) -> str:
    labels: dict[str, int] = report.get("labels") or {}
    if not labels:
        return ""
    rows = "\n".join(f"| {label} | {n} |" for label, n in sorted(labels.items()))
    return f"| label | messages |\n|---|---|\n{rows}\n"
