"""The cooldown: a few quiet days after a rejection, recorded once per rejection."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from onward.tasks.rejections import Rejection
from onward.tasks.store import Cooldown, utcnow

__all__ = ["record_cooldown", "utcnow"]


def record_cooldown(
    session: Session, rejection: Rejection, days: int, *, now: datetime | None = None
) -> Cooldown:
    """The cooldown for ``rejection``, created once: ``days`` whole days from today."""
    existing = session.scalars(
        select(Cooldown).where(Cooldown.ledger_id == rejection.ledger_id)
    ).first()
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
    session.add(cooldown)
    session.flush()
    return cooldown
