"""The inbox pass's side effects as Prefect tasks: the sync, and the rejections waiting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from typing import Any, TypedDict

from prefect import task
from prefect.cache_policies import NO_CACHE

from onward.tasks.classify.step import message_step
from onward.tasks.errors import MailboxConnectError, MailboxError, OnwardError, unreachable
from onward.tasks.mail.accounts import Account, open_backend
from onward.tasks.mail.sync import MailboxNotConnectedError, SyncReport, sync_once
from onward.tasks.rejections import load_rejection
from onward.tasks.runtime import app_store, transient
from onward.tasks.store import get_mailbox, pending_rejections


@contextmanager
def reachable() -> Iterator[None]:
    """A server that is down while syncing is unreachable, not a wrong --host or --port."""
    try:
        yield
    except MailboxConnectError as exc:
        raise unreachable(exc) from exc


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
def sync_mailbox(mailbox: str | None, since: str | None, config_file: str | None) -> SyncReport:
    """Fetch what is new, parse it, classify it, record it (exactly once: safe to retry)."""
    with app_store(config_file) as (settings, store):
        with store.unit_of_work() as session:
            row = get_mailbox(session, mailbox)
            if row is None:
                raise MailboxNotConnectedError(
                    "no mailbox is connected; run `onward connect` first"
                )
            account = Account.from_row(row, settings)
        try:
            with closing(open_backend(account, settings)) as backend, reachable():
                return sync_once(
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


class PendingRejection(TypedDict):
    """A rejection whose reactions have not started; what the flow needs to start them."""

    event_id: int
    title: str
    natural_key: str
    payload: dict[str, Any]
    # Set when the rejection could not even be loaded: recorded on it, nothing started.
    problem: str | None


@task(
    name="pending rejections",
    task_run_name="rejections waiting in {mailbox}",
    retries=3,
    retry_delay_seconds=[1, 5, 15],
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def pending_rejection_events(mailbox: str, config_file: str | None) -> list[PendingRejection]:
    """Rejections whose reactions were not started: new ones, and any a crash left behind."""
    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        row = get_mailbox(session, mailbox)
        if row is None:
            return []
        out: list[PendingRejection] = []
        for event_id in pending_rejections(session, row.id):
            try:
                with session.begin_nested():
                    rejection = load_rejection(session, event_id, settings)
            except OnwardError as exc:  # this one cannot be loaded: the others still go
                out.append(
                    {
                        "event_id": event_id,
                        "title": f"event {event_id}",
                        "natural_key": f"{row.name}|event-{event_id}",
                        "payload": {},
                        "problem": str(exc),
                    }
                )
                continue
            out.append(
                {
                    "event_id": event_id,
                    "title": rejection.title,
                    "natural_key": f"{row.name}|{rejection.message.key}",
                    "payload": rejection.payload,
                    "problem": None,
                }
            )
        return out


@task(
    name="reviews to ask",
    task_run_name="borderline rejections in {mailbox}",
    retries=3,
    retry_delay_seconds=[1, 5, 15],
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def unasked_reviews(mailbox: str, config_file: str | None) -> list[tuple[int, str]]:
    """Borderline rejections waiting for the person that have no question in the UI yet."""
    from onward.tasks.store import DomainEvent, waiting_reviews

    with app_store(config_file) as (settings, store), store.unit_of_work() as session:
        row = get_mailbox(session, mailbox)
        if row is None:
            return []
        out = []
        for event_id in waiting_reviews(session, row.id):
            if session.get_one(DomainEvent, event_id).review_run_id is None:
                out.append((event_id, load_rejection(session, event_id, settings).title))
        return out


@task(
    name="mailboxes to watch",
    retries=3,
    retry_delay_seconds=[1, 5, 15],
    retry_condition_fn=transient,
    cache_policy=NO_CACHE,
)
def mailboxes_to_watch(wanted: list[str] | None, config_file: str | None) -> list[str]:
    """``wanted`` (every connected mailbox when None or empty, oldest first); a name that
    is not connected raises, so a typo in prefect.yaml is not a silent gap."""
    from sqlalchemy import select

    from onward.tasks.store import Mailbox

    with app_store(config_file) as (_settings, store), store.unit_of_work() as session:
        connected = list(
            session.scalars(select(Mailbox.name).order_by(Mailbox.created_at, Mailbox.id))
        )
    if not wanted:
        if not connected:
            raise MailboxNotConnectedError("no mailbox is connected; run `onward connect` first")
        return connected
    missing = [name for name in wanted if name not in connected]
    if missing:
        raise MailboxNotConnectedError(
            f"not connected: {', '.join(missing)}; run `onward connect --name NAME` first"
        )
    return list(wanted)


def mailbox_name(mailbox: str | None, config_file: str | None) -> str:
    """``mailbox``, or the name of the last connected one when None."""
    if mailbox is not None:
        return mailbox
    with app_store(config_file) as (_settings, store), store.unit_of_work() as session:
        row = get_mailbox(session, None)
        if row is None:
            raise MailboxNotConnectedError("no mailbox is connected; run `onward connect` first")
        return row.name
