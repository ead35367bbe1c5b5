"""Progress for people: a bar on a terminal (rich, installed with Prefect), a few plain lines
when the output goes to a file or a pipe."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from onward.tasks.progress import reporting

# Below this much work a bar only flickers.
MIN_TOTAL = 500


@contextmanager
def shown(*, stream: Any = None) -> Iterator[None]:
    out = stream or sys.stderr
    if out.isatty():
        with _bar(out) as sink, reporting(sink):
            yield
        return
    with reporting(_lines(out)):
        yield


@contextmanager
def _bar(out: Any) -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    tasks: dict[str, Any] = {}
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=out),
        transient=True,
    )

    def sink(what: str, done: int, total: int) -> None:
        if total < MIN_TOTAL:
            return
        if what not in tasks:
            tasks[what] = bar.add_task(what, total=total)
        bar.update(tasks[what], completed=done, total=total)

    with bar:
        yield sink


def _lines(out: Any) -> Any:
    """About ten lines for a long job, none for a short one."""
    last: dict[str, int] = {}

    def sink(what: str, done: int, total: int) -> None:
        if total < MIN_TOTAL:
            return
        step = max(1, total // 10)
        if done == total or done - last.get(what, 0) >= step:
            last[what] = done
            print(f"{what}: {done} of {total}", file=out, flush=True)

    return sink
