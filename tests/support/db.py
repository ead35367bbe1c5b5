"""Database helpers the tests share."""

from __future__ import annotations

from onward.tasks.store import Mailbox, Store


def add_mailbox(store: Store, **fields: object) -> str:
    """Insert a mailbox row the way `onward connect` would; returns its name."""
    fields.setdefault("name", "test")
    with store.unit_of_work() as session:
        session.add(Mailbox(**fields))
    return str(fields["name"])
