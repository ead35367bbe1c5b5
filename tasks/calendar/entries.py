"""Keep the published entries in step with the items the database implies.

``reconcile`` is the one place that decides UID, SEQUENCE and CANCELLED: a new item gets
an entry with SEQUENCE 0; an item whose visible content changed gets SEQUENCE + 1 and a
new change time; an item that is no longer implied is kept and marked CANCELLED (so
subscribed calendars remove it instead of keeping a stale copy); nothing changes when
nothing a person sees changed, however often it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from onward.tasks.calendar.model import CalendarItem
from onward.tasks.store import CalendarEntry, utcnow


@dataclass(frozen=True)
class Published:
    """An item as it is published: the item plus its entry's bookkeeping."""

    item: CalendarItem
    uid: str
    sequence: int
    created_at: datetime
    changed_at: datetime
    entry_id: int


@dataclass(frozen=True)
class ReconcileReport:
    added: int = 0
    changed: int = 0
    cancelled: int = 0


def reconcile(
    session: Session, items: Iterable[CalendarItem], *, now: datetime | None = None
) -> ReconcileReport:
    """Bring the entries table in line with ``items`` (the whole calendar)."""
    now = now or utcnow()
    wanted = {item.key: item for item in items}
    existing = {e.key: e for e in session.scalars(select(CalendarEntry))}
    added = changed = cancelled = 0
    for key, item in wanted.items():
        digest = item.visible_hash()
        entry = existing.get(key)
        if entry is None:
            session.add(
                CalendarEntry(
                    key=key,
                    uid=item.stable_uid,
                    kind=item.kind,
                    content_hash=digest,
                    sequence=0,
                    data=item.to_data(),
                    cancelled=False,
                    created_at=now,
                    changed_at=now,
                )
            )
            added += 1
        elif entry.content_hash != digest or entry.cancelled:
            entry.content_hash, entry.data, entry.cancelled = digest, item.to_data(), False
            entry.sequence += 1
            entry.changed_at = now
            changed += 1
    for key, entry in existing.items():
        if key not in wanted and not entry.cancelled:
            entry.cancelled = True
            entry.sequence += 1
            entry.changed_at = now
            cancelled += 1
    session.flush()
    return ReconcileReport(added, changed, cancelled)


def published(session: Session) -> list[Published]:
    """Every entry as it should be written now, cancelled ones with STATUS:CANCELLED."""
    out = []
    for entry in session.scalars(select(CalendarEntry).order_by(CalendarEntry.id)):
        item = CalendarItem.from_data(entry.data)
        if entry.cancelled:
            item = replace(item, status="CANCELLED", alarm_minutes=None)
        out.append(
            Published(item, entry.uid, entry.sequence, entry.created_at, entry.changed_at, entry.id)
        )
    return out
