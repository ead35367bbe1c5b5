"""Expected failures read as one line: onward's own errors (a server down, a folder that
does not exist) already say what happened and what to do, so the console drops their
tracebacks from Prefect's run logs. Anything else (a bug) keeps its traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from onward.tasks.errors import OnwardError


class _DropExpectedTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, OnwardError):
            record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def expected_errors_without_traceback() -> Iterator[None]:
    """For the console of `onward sync --once`: Prefect's handlers skip the traceback of
    an OnwardError (the message still names it)."""
    quiet = _DropExpectedTraceback()
    names = ["", *(n for n in logging.root.manager.loggerDict if n.startswith("prefect"))]
    handlers = {h for n in names for h in logging.getLogger(n).handlers}
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
