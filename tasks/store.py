"""App data: SQLAlchemy 2 models, the engine, Alembic migrations and small repositories.

The database is the truth for what onward has seen and done. Idempotency lives here as
unique constraints: one ledger row per (mailbox, message key), one event per
(kind, message).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
)

from tasks.decide import REJECTION_DETECTED


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and gives them back aware, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Mailbox(Base):
    """A connected mailbox and its sync cursor. Never holds a secret, only where it is kept."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # "imap" | "maildir"
    address: Mapped[str | None] = mapped_column(String(320))
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(320))
    security: Mapped[str | None] = mapped_column(String(20))  # "tls" | "starttls" | "plain"
    auth: Mapped[str | None] = mapped_column(String(20))  # "password" | "xoauth2"
    secret_ref: Mapped[str | None] = mapped_column(String(500))
    ca_file: Mapped[str | None] = mapped_column(String(1000))
    path: Mapped[str | None] = mapped_column(String(1000))
    folder: Mapped[str] = mapped_column(String(500), default="INBOX")
    drafts_folder: Mapped[str | None] = mapped_column(String(500))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int | None] = mapped_column(BigInteger)
    watch_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """What the watch recorded for one message: handled, or malformed with the reason."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("mailbox_id", "key", name="uq_ledger_mailbox_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(998))
    message_id: Mapped[str | None] = mapped_column(String(998))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))  # "recorded" | "malformed" | "failed"
    error: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    from_addr: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str] | None] = mapped_column(JSON)
    label: Mapped[str | None] = mapped_column(String(40))
    confidence: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DomainEvent(Base):
    """Something that happened and that reactions consume (e.g. ``rejection.detected``)."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("kind", "ledger_id", name="uq_events_kind_ledger"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FeedbackRequest(Base):
    """The feedback-request draft for one rejection; ``state`` is what ``onward drafts`` shows.

    States: ``drafted`` (in Drafts, addressed), ``needs_recipient`` (in Drafts, To empty),
    ``sent`` (a reply to the rejection is in Sent), ``discarded`` (the person deleted it;
    onward does not recreate it).
    """

    __tablename__ = "feedback_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger.id", ondelete="CASCADE"), unique=True)
    marker: Mapped[str] = mapped_column(String(998))
    company: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    to_addr: Mapped[str | None] = mapped_column(String(320))
    to_name: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20))
    folder: Mapped[str | None] = mapped_column(String(500))
    draft_uid: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Cooldown(Base):
    """The quiet days after a rejection, and the scheduled "pick yourself up" run at its end."""

    __tablename__ = "cooldowns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger.id", ondelete="CASCADE"), unique=True)
    days: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    calendar_uid: Mapped[str] = mapped_column(String(300))
    end_run_id: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- engine and migrations -------------------------------------------------------------


def make_engine(url: str) -> Engine:
    """Engine for ``url``; SQLite gets WAL and a busy timeout so a CLI and a worker can share it."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


# The newest Alembic revision; tests check it matches the migrations folder. Knowing it
# here lets every command skip importing Alembic (a third of a second) when the schema is
# already current, which is nearly always.
SCHEMA_REVISION = "0002"


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    if schema_revision(engine) == SCHEMA_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("tasks") / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@dataclass
class Store:
    """The engine plus a session factory; one ``unit_of_work()`` per piece of work."""

    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> Store:
        engine = make_engine(url)
        if upgrade:
            migrate(engine)
        return cls(engine, sessionmaker(engine, expire_on_commit=False))

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


# --- repositories: they take a session and never open one -------------------------------


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
        }
        for key, kind, payload in events
        if key in ledger_ids
    ]
    if not values:
        return 0
    session.execute(_insert_ignoring_duplicates(session, DomainEvent.__table__), values)
    return len(values)


def pending_rejections(session: Session, mailbox_id: int | None = None) -> list[int]:
    """Rejection events whose reactions were not started yet (a crash, the API down)."""
    query = select(DomainEvent.id).where(
        DomainEvent.kind == REJECTION_DETECTED, DomainEvent.handled_at.is_(None)
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
