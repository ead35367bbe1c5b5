"""Where in the hiring process a rejection came, read from its text (``[stages]`` rules)."""

from __future__ import annotations

import re

from onward.tasks.classify.rules import _Compiled
from onward.tasks.classify.verdict import Stage

# How far before a stage word a "not reached" context is looked for, within its sentence.
_LOOK_BACK = 60
_SENTENCE_BREAK = re.compile(r"[.!?;\n]")
# A stage the candidate did not reach still says they reached the one before it: "we will
# not move you to the final round" came after interviews.
_REACHED_BEFORE: dict[str, Stage] = {
    "final": "interview",
    "interview": "applied",
    "screen": "applied",
}


def rejection_stage(subject: str, body: str, compiled: _Compiled) -> Stage:
    """The latest stage the text says was reached, or ``"unknown"``."""
    text = f"{subject}\n{body}"
    implied: Stage = "unknown"
    for name, regex in compiled.stages:  # latest first
        for m in regex.finditer(text):
            if not _not_reached(text, m.start(), compiled):
                return _latest(_AS_STAGE[name], implied)
            implied = _latest(_REACHED_BEFORE.get(name, "unknown"), implied)
    return implied


def _not_reached(text: str, at: int, compiled: _Compiled) -> bool:
    if compiled.stage_not_reached is None:
        return False
    before = text[max(0, at - _LOOK_BACK) : at]
    breaks = list(_SENTENCE_BREAK.finditer(before))
    if breaks:
        before = before[breaks[-1].end() :]
    return compiled.stage_not_reached.search(before) is not None


_AS_STAGE: dict[str, Stage] = {
    "applied": "applied",
    "screen": "screen",
    "interview": "interview",
    "final": "final",
}
_ORDER: dict[str, int] = {"unknown": -1, "applied": 0, "screen": 1, "interview": 2, "final": 3}


def _latest(a: Stage, b: Stage) -> Stage:
    return a if _ORDER[a] >= _ORDER[b] else b
