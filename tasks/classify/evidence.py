"""Evidence a person can read: one reason per stretch of text, strongest first."""

from __future__ import annotations

from collections.abc import Iterable

from onward.tasks.classify.verdict import Reason


def drop_overlaps(reasons: Iterable[Reason]) -> list[Reason]:
    """Reasons for one label whose spans overlap in one field count once: the strongest.

    Two rules that read the same words are one piece of evidence, not two; keeping both
    would double its weight and show the reader the same words twice.
    """
    kept: list[Reason] = []
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for reason in sorted(reasons, key=lambda r: (-abs(r.weight), r.where, r.start, r.rule)):
        if reason.where in ("subject", "body"):
            taken = spans.setdefault((reason.label, reason.where), [])
            if any(reason.start < end and start < reason.end for start, end in taken):
                continue
            taken.append((reason.start, reason.end))
        kept.append(reason)
    return kept


def ordered(reasons: Iterable[Reason]) -> list[Reason]:
    """Strongest first, then by where and position, so the decisive words lead."""
    return sorted(reasons, key=lambda r: (-r.weight, r.where, r.start))
