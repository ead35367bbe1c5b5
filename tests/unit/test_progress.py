"""Progress of long work: plain lines when the output is not a terminal, nothing for short
work."""

from __future__ import annotations

import io

from onward.deployments.progress import shown
from onward.tasks.progress import report


def test_plain_lines_for_long_work_only() -> None:
    out = io.StringIO()
    with shown(stream=out):
        for done in range(0, 3901, 100):
            report("messages", done, 3900)
        report("contacts", 12, 12)  # short work: no lines
    lines = out.getvalue().splitlines()
    assert lines[-1] == "messages: 3900 of 3900"
    assert 9 <= len(lines) <= 11
    assert all(line.startswith("messages: ") for line in lines)
