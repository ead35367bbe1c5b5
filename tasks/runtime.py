"""What every Prefect task needs to act: settings and the app database, and a retry rule.

Each flow or task run is an entry point (served runs execute in their own process), so a
task opens what it needs from ``config_file`` rather than receiving a connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onward.config.settings import Settings, load_settings
from onward.tasks.errors import (
    MailboxConnectError,
    MailboxUnreachableError,
    OnwardError,
    TransientError,
)
from onward.tasks.store import Store

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State, TaskRun
    from prefect.tasks import Task


@contextmanager
def app_store(config_file: str | None) -> Iterator[tuple[Settings, Store]]:
    """Settings and the app database for one flow or task run."""
    settings = load_settings(Path(config_file) if config_file else None)
    with Store.open(settings.database_url) as store:
        yield settings, store


def transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what a retry can fix: a dropped connection, an unreachable server, a
    database that is locked or restarting."""
    from sqlalchemy.exc import OperationalError

    try:
        state.result()
    except MailboxUnreachableError:
        return False  # a server that is down: the next pass tries again, not this one
    except (TransientError, MailboxConnectError, OperationalError):
        return True
    except Exception:
        return False
    return False


def explain_failure(exc: BaseException) -> tuple[str, bool]:
    """(a sentence for the person, whether a later retry may succeed) for a failed reaction."""
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, TransientError | MailboxConnectError):
        return str(exc), True
    if isinstance(exc, OperationalError):
        return f"the database was unavailable ({type(exc.orig).__name__})", True
    if isinstance(exc, OnwardError):
        return str(exc), False
    text = " ".join(str(exc).split())[:300]
    return (
        f"onward failed on this rejection ({type(exc).__name__}: {text}); please report it"
        " with `onward status --json`, then `onward drafts --retry` tries again",
        False,
    )
