"""How a contact warms up and cools down: cold → warming → warm, and back after silence.

Pure rules over a ``Contact`` row and the [network] settings; the callers record the
interaction that caused the change. ``touches`` counts engagements since the contact
last cooled; the stage follows from it:

- an engagement the person did (a task marked done, their reply in a job thread) adds one;
- a reply from the contact after such an engagement moves them up one stage at once;
  mail from them without an engagement of ours since their last reply adds one, no jump;
- an answer to a feedback request makes them warm;
- after ``cool_after_weeks`` without any interaction they drop one stage.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from onward.config.settings import NetworkSettings
from onward.tasks.store import Contact

Stage = Literal["cold", "warming", "warm"]
STAGES: tuple[Stage, ...] = ("cold", "warming", "warm")


def stage_for(touches: int, rules: NetworkSettings) -> Stage:
    if touches >= rules.touches_to_warm:
        return "warm"
    if touches >= rules.touches_to_warming:
        return "warming"
    return "cold"


def _threshold(stage: Stage, rules: NetworkSettings) -> int:
    return {"cold": 0, "warming": rules.touches_to_warming, "warm": rules.touches_to_warm}[stage]


def _set_touches(contact: Contact, touches: int, rules: NetworkSettings, at: datetime) -> None:
    before = contact.stage
    contact.touches = touches
    contact.stage = stage_for(touches, rules)
    if contact.stage != before:
        contact.stage_changed_at = at
    contact.updated_at = at


def _interacted(contact: Contact, at: datetime) -> None:
    if contact.last_interaction_at is None or at > contact.last_interaction_at:
        contact.last_interaction_at = at


def record_engagement(contact: Contact, rules: NetworkSettings, at: datetime) -> None:
    """The person engaged (commented, shared, wrote): one touch."""
    _set_touches(contact, contact.touches + 1, rules, at)
    if contact.last_touch_at is None or at > contact.last_touch_at:
        contact.last_touch_at = at
    _interacted(contact, at)


def is_reply(contact: Contact, at: datetime) -> bool:
    """True when the person engaged before ``at`` and the contact had not answered since."""
    touched = contact.last_touch_at
    if touched is None or touched > at:
        return False
    return contact.last_reply_at is None or contact.last_reply_at < touched


def record_reply(contact: Contact, rules: NetworkSettings, at: datetime) -> None:
    """The contact answered an engagement: up one stage (at least one touch)."""
    current = stage_for(contact.touches, rules)
    up = STAGES[min(STAGES.index(current) + 1, len(STAGES) - 1)]
    _set_touches(contact, max(contact.touches + 1, _threshold(up, rules)), rules, at)
    contact.last_reply_at = at
    _interacted(contact, at)


def record_mail(contact: Contact, rules: NetworkSettings, at: datetime) -> bool:
    """Mail from the contact: a reply when it answers an engagement, else one touch.
    Returns whether it counted as a reply."""
    if is_reply(contact, at):
        record_reply(contact, rules, at)
        return True
    _set_touches(contact, contact.touches + 1, rules, at)
    _interacted(contact, at)
    return False


def record_feedback_reply(contact: Contact, rules: NetworkSettings, at: datetime) -> None:
    """They answered a feedback request: a real conversation, so warm."""
    _set_touches(contact, max(contact.touches + 1, rules.touches_to_warm), rules, at)
    contact.last_reply_at = at
    _interacted(contact, at)


def cool_down(contact: Contact, rules: NetworkSettings, now: datetime) -> bool:
    """Drop one stage per ``cool_after_weeks`` of silence; True when the stage fell."""
    # Settings may have changed since the stage was stored.
    contact.stage = stage_for(contact.touches, rules)
    if contact.stage == "cold":
        return False
    silence = timedelta(weeks=rules.cool_after_weeks)
    since = max(contact.last_interaction_at or contact.stage_changed_at, contact.stage_changed_at)
    if now - since < silence:
        return False
    down = STAGES[STAGES.index(contact.stage) - 1]
    _set_touches(contact, _threshold(down, rules), rules, now)
    contact.stage_changed_at = now
    return True
