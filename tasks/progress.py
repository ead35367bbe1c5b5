"""Progress of long work (a backfill of thousands of messages, a big import), reported to
whoever listens: the command line draws a bar on a terminal, plain lines otherwise.

Long work calls ``report``; nothing listens unless a command installs a sink with
``reporting``, so flows and tests pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Sink = Callable[[str, int, int], None]  # (what, done, total)
_sinks: list[Sink] = []


def report(what: str, done: int, total: int) -> None:
    for sink in _sinks:
        sink(what, done, total)


@contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    _sinks.append(sink)
    try:
        yield
    finally:
        _sinks.remove(sink)
