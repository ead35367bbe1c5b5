"""Small pieces the flows share: in-process runs and run names."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any


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
