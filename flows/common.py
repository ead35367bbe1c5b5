"""Small pieces the flows share: retry policy and run names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from config.settings import Settings, load_settings
from tasks.errors import MailboxConnectError, TransientMailboxError
from tasks.store import Store


@contextmanager
def app_store(config_file: str | None) -> Iterator[tuple[Settings, Store]]:
    """Settings and the app database for one flow or task run (each run is an entry point:
    served runs execute in their own process)."""
    settings = load_settings(Path(config_file) if config_file else None)
    store = Store.open(settings.database_url)
    try:
        yield settings, store
    finally:
        store.close()


def transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what a retry can fix: a dropped connection or an unreachable server."""
    try:
        state.result()
    except (TransientMailboxError, MailboxConnectError):
        return True
    except Exception:
        return False
    return False


def in_process() -> AbstractContextManager[object]:
    """Settings for flows run in this process (the CLI, the worker's IDLE passes).

    Prefect's flow-run heartbeats exist to find runs of a killed worker process; its
    heartbeat thread sleeps in 1-second steps and is joined at every flow run's end, which
    measured 0.95 s per flow run, three per rejection. Served runs in their own processes
    keep them.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def rejection_title(prefix: str, parameters: dict[str, Any]) -> str:
    title = parameters.get("title") or f"event {parameters.get('event_id')}"
    return f"{prefix}: {title}"
