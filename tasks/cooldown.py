"""The cooldown: a few quiet days after a rejection, recorded once per rejection."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onward.tasks.races import RACES, log
from onward.tasks.rejections import Rejection
from onward.tasks.store import Cooldown, utcnow

__all__ = ["record_cooldown", "utcnow"]


def record_cooldown(
    session: Session, rejection: Rejection, days: int, *, now: datetime | None = None
) -> Cooldown:
    """The cooldown for ``rejection``, created once: ``days`` whole days from today."""
    existing = existing_cooldown(session, rejection.ledger_id)
    if existing is not None:
        return existing
    start = now or utcnow()
    cooldown = Cooldown(
        mailbox_id=rejection.mailbox_id,
        ledger_id=rejection.ledger_id,
        days=days,
        starts_at=start,
        ends_at=start + timedelta(days=days),
        calendar_uid=f"cooldown-{hashlib.sha1(rejection.marker.encode()).hexdigest()[:16]}@onward",
    )
    try:
        with session.begin_nested():
            session.add(cooldown)
    except IntegrityError:
        # Another worker recorded it first: the expected outcome of a race, not an error.
        log.info("%s: cooldown already recorded by another worker", rejection.title)
        RACES["cooldowns"] += 1
        return session.scalars(
            select(Cooldown).where(Cooldown.ledger_id == rejection.ledger_id)
        ).one()
    return cooldown


def existing_cooldown(session: Session, ledger_id: int) -> Cooldown | None:
    return session.scalars(select(Cooldown).where(Cooldown.ledger_id == ledger_id)).first()
