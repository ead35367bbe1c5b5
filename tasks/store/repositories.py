"""Repositories: small queries over the mail models. They take a session and never open one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from onward.tasks.events import REJECTION_DETECTED
from onward.tasks.store.base import utcnow
from onward.tasks.store.mail import DomainEvent, LedgerEntry, Mailbox


def get_mailbox(session: Session, name: str | None = None) -> Mailbox | None:
    """The mailbox called ``name``, or the only/most recent one when ``name`` is None."""
    query = select(Mailbox)
    if name is not None:
        query = query.where(Mailbox.name == name)
    else:
        query = query.order_by(Mailbox.created_at.desc(), Mailbox.id.desc())
    return session.scalars(query.limit(1)).first()


def known_keys(session: Session, mailbox_id: int, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    rows = session.scalars(
        select(LedgerEntry.key).where(
            LedgerEntry.mailbox_id == mailbox_id, LedgerEntry.key.in_(keys)
        )
    )
    return set(rows)


_LEDGER_COLUMNS = frozenset(c.name for c in LedgerEntry.__table__.columns)


def _insert_ignoring_duplicates(session: Session, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING (SQLite, PostgreSQL): the unique constraint decides."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert

    return insert(table).on_conflict_do_nothing()


def insert_ledger_rows(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert ledger rows in one statement, skipping keys already there; returns key -> id
    of the rows actually inserted."""
    if not rows:
        return {}
    now = utcnow()
    values = [
        {**{k: v for k, v in r.items() if k in _LEDGER_COLUMNS}, "recorded_at": now} for r in rows
    ]
    # Every row needs the same columns for one batched statement.
    columns = set().union(*(v.keys() for v in values))
    values = [{c: v.get(c) for c in columns} for v in values]
    stmt = _insert_ignoring_duplicates(session, LedgerEntry.__table__)
    result = session.execute(stmt.returning(LedgerEntry.id, LedgerEntry.key), values)
    return {key: ledger_id for ledger_id, key in result}


def insert_events(
    session: Session,
    mailbox_id: int,
    events: list[tuple[str, str, dict[str, Any]]],
    ledger_ids: dict[str, int],
) -> int:
    """Record (message key, kind, payload) events for newly inserted messages; once each."""
    values = [
        {
            "kind": kind,
            "mailbox_id": mailbox_id,
            "ledger_id": ledger_ids[key],
            "payload": payload,
            "created_at": utcnow(),
            # A borderline verdict waits for the person before anything happens.
            "review": "waiting" if payload.get("borderline") else None,
        }
        for key, kind, payload in events
        if key in ledger_ids
    ]
    if not values:
        return 0
    session.execute(_insert_ignoring_duplicates(session, DomainEvent.__table__), values)
    return len(values)


def pending_rejections(session: Session, mailbox_id: int | None = None) -> list[int]:
    """Rejection events whose reactions were not started yet (a crash, the API down), or
    failed and are due for another try; not those onward gave up on, and borderline ones
    only once the person confirmed them."""
    query = select(DomainEvent.id).where(
        DomainEvent.kind == REJECTION_DETECTED,
        DomainEvent.handled_at.is_(None),
        DomainEvent.failed_at.is_(None),
        or_(DomainEvent.retry_at.is_(None), DomainEvent.retry_at <= utcnow()),
        or_(DomainEvent.review.is_(None), DomainEvent.review == "confirmed"),
    )
    if mailbox_id is not None:
        query = query.where(DomainEvent.mailbox_id == mailbox_id)
    return list(session.scalars(query.order_by(DomainEvent.id)))


def ledger_counts(session: Session, mailbox_id: int) -> dict[str, int]:
    """Counts per status and per label, for ``onward status``."""
    counts: dict[str, int] = {"total": 0}
    for status, n in session.execute(
        select(LedgerEntry.status, func.count())
        .where(LedgerEntry.mailbox_id == mailbox_id)
        .group_by(LedgerEntry.status)
    ):
        counts[status] = n
        counts["total"] += n
    for label, n in session.execute(
        select(LedgerEntry.label, func.count())
        .where(LedgerEntry.mailbox_id == mailbox_id, LedgerEntry.label.is_not(None))
        .group_by(LedgerEntry.label)
    ):
        counts[f"label:{label}"] = n
    return counts


def waiting_reviews(session: Session, mailbox_id: int | None = None) -> list[int]:
    """Borderline rejections waiting for the person, oldest first."""
    query = select(DomainEvent.id).where(
        DomainEvent.kind == REJECTION_DETECTED, DomainEvent.review == "waiting"
    )
    if mailbox_id is not None:
        query = query.where(DomainEvent.mailbox_id == mailbox_id)
    return list(session.scalars(query.order_by(DomainEvent.id)))
