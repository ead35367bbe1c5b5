"""One calendar model for everything onward schedules.

Every capability describes its items as ``CalendarItem``s (cooldown blocks, plan goals,
the self-evaluation and the monthly review, networking to-dos). The calendar is a
projection of the app database: it can always be rebuilt from it, and the entries table
(``tasks/store/calendar.py``) only remembers what is needed to present changes well:
a stable UID per natural key, a SEQUENCE that rises when something a person sees
changes, and CANCELLED for items that went away.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Kind = Literal["cooldown", "goal", "evaluation", "review", "network_task"]
Status = Literal["CONFIRMED", "TENTATIVE", "CANCELLED", "NEEDS-ACTION", "COMPLETED"]

UID_DOMAIN = "onward"


@dataclass(frozen=True)
class CalendarItem:
    """One event (or to-do, ``todo=True``) as a person will see it.

    ``start``/``end``/``due`` are ``date`` values for all-day items (``end`` exclusive, as
    RFC 5545 has it) or aware datetimes for timed ones, which are written in the person's
    time zone so a weekly 18:00 stays at 18:00 local across daylight-saving changes.
    ``rrule`` is an RFC 5545 recurrence as a mapping (``{"FREQ": "WEEKLY", "BYDAY": "SU"}``).
    """

    key: str
    kind: Kind
    summary: str
    description: str = ""
    start: date | datetime | None = None
    end: date | datetime | None = None
    due: date | datetime | None = None
    todo: bool = False
    rrule: dict[str, Any] | None = None
    status: Status = "CONFIRMED"
    transparent: bool = False
    alarm_minutes: int | None = None
    completed_at: datetime | None = None
    categories: tuple[str, ...] = ()
    # Only for items that existed before this model (the cooldown blocks): their old UID.
    uid: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def stable_uid(self) -> str:
        if self.uid:
            return self.uid
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:24]
        return f"{self.kind}-{digest}@{UID_DOMAIN}"

    def visible_hash(self) -> str:
        """A digest of everything a person can see; SEQUENCE rises only when it changes."""
        data = asdict(self)
        data.pop("key")
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=_plain).encode()).hexdigest()

    def to_data(self) -> dict[str, Any]:
        """JSON-ready, so a removed item can still be written as CANCELLED later."""
        return json.loads(json.dumps(asdict(self), default=_plain))  # type: ignore[no-any-return]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> CalendarItem:
        values = dict(data)
        for name in ("start", "end", "due", "completed_at"):
            values[name] = _unplain(values.get(name))
        values["categories"] = tuple(values.get("categories") or ())
        return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    raise TypeError(f"not JSON: {value!r}")


def _unplain(value: Any) -> Any:
    if isinstance(value, dict):
        if "datetime" in value:
            return datetime.fromisoformat(value["datetime"])
        if "date" in value:
            return date.fromisoformat(value["date"])
    return value
