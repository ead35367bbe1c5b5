"""App data: SQLAlchemy 2 models per capability, the engine, Alembic migrations, repositories.

The database is the truth for what onward has seen and done.
"""

from onward.tasks.store.base import Base, UTCDateTime, utcnow
from onward.tasks.store.calendar import CalDavAccount, CalDavResource, CalendarEntry
from onward.tasks.store.engine import SCHEMA_REVISION, Store, make_engine, migrate, schema_revision
from onward.tasks.store.mail import DomainEvent, LedgerEntry, Mailbox
from onward.tasks.store.network import Contact, Interaction, NetworkTask
from onward.tasks.store.plan import Evaluation, FeedbackPoint, Goal
from onward.tasks.store.reactions import Cooldown, FeedbackRequest
from onward.tasks.store.repositories import (
    get_mailbox,
    insert_events,
    insert_ledger_rows,
    known_keys,
    ledger_counts,
    pending_rejections,
    waiting_reviews,
)

__all__ = [
    "SCHEMA_REVISION",
    "Base",
    "CalDavAccount",
    "CalDavResource",
    "CalendarEntry",
    "Contact",
    "Cooldown",
    "DomainEvent",
    "Evaluation",
    "FeedbackPoint",
    "FeedbackRequest",
    "Goal",
    "Interaction",
    "LedgerEntry",
    "Mailbox",
    "NetworkTask",
    "Store",
    "UTCDateTime",
    "get_mailbox",
    "insert_events",
    "insert_ledger_rows",
    "known_keys",
    "ledger_counts",
    "make_engine",
    "migrate",
    "pending_rejections",
    "schema_revision",
    "utcnow",
    "waiting_reviews",
]
