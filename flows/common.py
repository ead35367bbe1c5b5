"""Small pieces the flows share: retry policy and run names."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from tasks.errors import MailboxConnectError, TransientMailboxError


def transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what a retry can fix: a dropped connection or an unreachable server."""
    try:
        state.result()
    except (TransientMailboxError, MailboxConnectError):
        return True
    except Exception:
        return False
    return False


def rejection_title(prefix: str, parameters: dict[str, Any]) -> str:
    title = parameters.get("title") or f"event {parameters.get('event_id')}"
    return f"{prefix}: {title}"
