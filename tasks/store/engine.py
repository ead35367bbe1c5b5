"""The engine, Alembic migrations and the unit of work."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    """Engine for ``url``; SQLite gets WAL and a busy timeout so a CLI and a worker can share it."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            _private_file(path)  # SQLite gives its -wal and -shm files the same mode
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


# One engine per database URL for the life of the process (the last few URLs kept). Each
# engine has a dialect of its own, and SQLAlchemy's mappers cache compiled statements per
# dialect: an engine per unit of work (every task run of every pass) grew `onward run` by
# about 8 MB per 1,000 messages in tests/bench/soak.py. Store.close() still closes the
# pooled connections, so a closed store holds no file or server connection open.
KEEP_ENGINES = 8
_ENGINES: OrderedDict[str, Engine] = OrderedDict()
_ENGINES_LOCK = threading.Lock()


def shared_engine(url: str) -> Engine:
    """The process's engine for ``url``, made on first use."""
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(url, None) or make_engine(url)
        _ENGINES[url] = engine
        while len(_ENGINES) > KEEP_ENGINES:
            _url, oldest = _ENGINES.popitem(last=False)
            oldest.dispose()  # connections in use stay usable until given back
    return engine


def _private_file(path: Path) -> None:
    """Senders, subjects and drafts are the person's alone: the database file is 0600."""
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
            os.chmod(path, 0o600)


# The newest Alembic revision; tests check it matches the migrations folder. Knowing it
# here lets every command skip importing Alembic (a third of a second) when the schema is
# already current, which is nearly always.
SCHEMA_REVISION = "0006"


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
    cfg.set_main_option(
        "script_location", str(resources.files("onward.tasks.store") / "migrations")
    )
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
        engine = shared_engine(url)
        if upgrade:
            migrate(engine)
        return cls(engine, sessionmaker(engine, expire_on_commit=False))

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        # The engine is shared (see shared_engine): its pooled connections are closed, the
        # engine itself is kept for the next store on this URL.
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
