"""Schema and repositories on SQLite and PostgreSQL."""

from __future__ import annotations

from importlib import resources

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import select

from onward.tasks.store import (
    SCHEMA_REVISION,
    DomainEvent,
    Mailbox,
    Store,
    insert_events,
    insert_ledger_rows,
    schema_revision,
)
from tests.support.db import add_mailbox


def test_schema_revision_constant_is_alembic_head() -> None:
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("onward.tasks.store") / "migrations")
    )
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_REVISION


def test_migrated_database_is_at_head(store: Store) -> None:
    assert schema_revision(store.engine) == SCHEMA_REVISION


def test_migrations_match_the_models(store: Store) -> None:
    # A model changed without a migration (or the other way round) shows up here, on
    # SQLite and on PostgreSQL.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from onward.tasks.store import Base

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_ledger_and_events_are_unique(store: Store) -> None:
    add_mailbox(store, kind="maildir", path="/nowhere")
    with store.unit_of_work() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    rows = [{"mailbox_id": mailbox_id, "key": "<a@x>", "status": "recorded"}]
    with store.unit_of_work() as session:
        first = insert_ledger_rows(session, rows)
        assert list(first) == ["<a@x>"]
        events = [("<a@x>", "rejection.detected", {"n": 1})]
        assert insert_events(session, mailbox_id, events, first) == 1
    with store.unit_of_work() as session:
        assert insert_ledger_rows(session, rows) == {}
        insert_events(session, mailbox_id, [("<a@x>", "rejection.detected", {"n": 2})], first)
    with store.unit_of_work() as session:
        payloads = session.scalars(select(DomainEvent.payload)).all()
    assert payloads == [{"n": 1}]
