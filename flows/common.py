"""Small pieces the flows share: in-process runs, run names and deferred artifacts."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Story:
    """A markdown artifact told after the work it describes.

    Creating an artifact is a synchronous API call, and a local server on SQLite answers
    some calls with 503 and a 2-second retry; a pass tells its stories after every draft
    is saved so that no draft waits for one.
    """

    key: str
    markdown: str
    description: str

    def tell(self) -> None:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(key=self.key, markdown=self.markdown, description=self.description)


def tell_all(stories: list[Story]) -> None:
    """Each story; one the API refuses is logged, not raised (the app database keeps the
    record, the artifact only shows it)."""
    from prefect import get_run_logger

    for story in stories:
        try:
            story.tell()
        except Exception as exc:
            get_run_logger().warning("artifact %s not created (%s)", story.key, exc)
