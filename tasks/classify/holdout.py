"""Leave-one-source-out: how the classifier does on a source nothing was fitted to.

With the learned model (the default), each source (one file: labelled JSONL or ordinary
mail in .mbox) is held out in turn: a model is trained on every *other* source and the
held-out one is scored with it, at the review band's lower edge (the line between "not a
rejection" and "ask the person"). Ordinary mail's false alarms are counted the same way,
each mbox while it is held out.

Without a model (``[settings] model = "none"``), what is fitted is the rejection bar
(``[labels.rejection] min_score``): it is fitted on every other labelled source (highest
recall with precision at least ``MIN_PRECISION``, the higher bar on ties). The hand-written
rules were written with the development sources in view, which neither mode can undo.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from onward.tasks.classify.evaluate import (
    ORDINARY,
    REJECTION,
    LabelledMessage,
    Miss,
    Report,
    format_miss,
    iter_labelled,
)
from onward.tasks.classify.rules import Rules, load_rules
from onward.tasks.classify.scoring import classify
from onward.tasks.classify.verdict import REVIEW_BAND, LabelPolicy

if TYPE_CHECKING:
    from onward.tasks.classify.train import Example, WordCounts

MIN_PRECISION = 0.98
BARS: tuple[float, ...] = tuple(x / 4 for x in range(8, 21))  # 2.0 .. 5.0


@dataclass(frozen=True, slots=True)
class Fold:
    """One held-out source: the bar fitted without it and how it scored."""

    source: str
    bar: float
    rows: int
    rejections: int
    tp: int
    fp: int
    fn: int
    ordinary_false_alarms: int
    # What the fold got wrong (the learned model's folds; the bar-only folds keep none).
    mistakes: tuple[Miss, ...] = ()

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def with_bar(rules: Rules, bar: float) -> Rules:
    """The same rules with another rejection bar."""
    policies = dict(rules.labels)
    policies["rejection"] = replace(policies.get("rejection", LabelPolicy()), min_score=bar)
    return replace(rules, labels=tuple(sorted(policies.items())))


def _predict(items: Iterable[LabelledMessage], rules: Rules, mine: tuple[str, ...]) -> list[bool]:
    return [classify(i.message, rules=rules, user_addresses=mine).is_rejection for i in items]


def _counts(items: Sequence[LabelledMessage], said: Sequence[bool]) -> tuple[int, int, int]:
    tp = sum(1 for i, s in zip(items, said, strict=True) if s and i.truth == REJECTION)
    fp = sum(1 for i, s in zip(items, said, strict=True) if s and i.truth != REJECTION)
    fn = sum(1 for i, s in zip(items, said, strict=True) if not s and i.truth == REJECTION)
    return tp, fp, fn


def fit_bar(
    items: Sequence[LabelledMessage],
    predictions: dict[float, list[bool]],
) -> float:
    """The bar with the best recall at ``MIN_PRECISION`` on ``items`` (higher on ties)."""
    best: tuple[float, float, float] | None = None
    for bar, said in predictions.items():
        tp, fp, fn = _counts(items, said)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        key = (1.0 if precision >= MIN_PRECISION else 0.0, recall + precision / 1000, bar)
        if best is None or key > best:
            best = key
    return best[2] if best is not None else BARS[0]


def leave_one_source_out(
    paths: Sequence[Path],
    *,
    rules: Rules | None = None,
    user_addresses: Iterable[str] = (),
    review_band: tuple[float, float] = REVIEW_BAND,
    jobs: int = 1,
) -> list[Fold]:
    """One fold per source in ``paths``; .mbox files are ordinary mail. ``jobs``: folds
    trained at once, each in its own process (the learned model; Linux)."""
    rules = rules if rules is not None else load_rules()
    if rules.model is not None:
        return _learned_folds(paths, rules, tuple(user_addresses), review_band, jobs)
    mine = tuple(user_addresses)
    items = list(iter_labelled(paths))
    labelled = [i for i in items if i.truth != ORDINARY]
    ordinary = [i for i in items if i.truth == ORDINARY]
    variants = {bar: with_bar(rules, bar) for bar in BARS}
    # Every labelled message under every bar, once; folds pick their rows from it.
    said = {bar: _predict(labelled, r, mine) for bar, r in variants.items()}
    ordinary_alarms: dict[float, int] = {}
    folds: list[Fold] = []
    for source in sorted({i.source for i in labelled}):
        train = [k for k, i in enumerate(labelled) if i.source != source]
        test = [k for k, i in enumerate(labelled) if i.source == source]
        bar = fit_bar(
            [labelled[k] for k in train],
            {b: [s[k] for k in train] for b, s in said.items()},
        )
        held = [labelled[k] for k in test]
        tp, fp, fn = _counts(held, [said[bar][k] for k in test])
        if bar not in ordinary_alarms:
            ordinary_alarms[bar] = sum(_predict(ordinary, variants[bar], mine))
        folds.append(
            Fold(
                source=source,
                bar=bar,
                rows=len(held),
                rejections=sum(1 for i in held if i.truth == REJECTION),
                tp=tp,
                fp=fp,
                fn=fn,
                ordinary_false_alarms=ordinary_alarms[bar],
            )
        )
    return folds


def _learned_folds(
    paths: Sequence[Path],
    rules: Rules,
    mine: tuple[str, ...],
    band: tuple[float, float],
    jobs: int = 1,
) -> list[Fold]:
    from onward.tasks.classify.train import read_examples, without_model, word_counts

    base = without_model(rules)
    items = list(iter_labelled(paths))
    rows = read_examples(items, base)
    sources = sorted({i.source for i in items}, key=lambda s: (s.endswith(".mbox"), s))
    work = _FoldWork(items, rows, word_counts(items, base), base, mine, band)
    if jobs <= 1 or not sys.platform.startswith("linux"):
        return [work.fold(source) for source in sources]
    # Forked workers share the extracted features (copy-on-write) instead of each
    # reading every message again: the work is set before the pool forks.
    global _WORK
    _WORK = work
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            return list(pool.map(_fold_in_worker, sources))
    finally:
        _WORK = None


@dataclass(frozen=True)
class _FoldWork:
    items: list[LabelledMessage]
    rows: list[Example]
    # Per source, its word counts: the held-out one's must not shape the gate.
    counts: dict[str, WordCounts]
    base: Rules
    mine: tuple[str, ...]
    band: tuple[float, float]
    total: WordCounts = field(init=False)

    def __post_init__(self) -> None:
        # Summed once; each fold takes its held-out source's counts away.
        from onward.tasks.classify.train import WordCounts

        object.__setattr__(self, "total", sum(self.counts.values(), WordCounts()))

    def fold(self, source: str) -> Fold:
        from onward.tasks.classify.train import fit

        words = self.total - self.counts[source]
        model = fit([r for r in self.rows if r[2] != source], words)
        fold_rules = replace(self.base, model=model)
        held = [i for i in self.items if i.source == source]
        report = Report()
        for item in held:
            report.add(
                item,
                classify(
                    item.message, rules=fold_rules, user_addresses=self.mine, review_band=self.band
                ),
            )
        ordinary = source.endswith(".mbox")
        return Fold(
            source=source,
            bar=self.band[0],
            rows=len(held),
            rejections=sum(1 for i in held if i.truth == REJECTION),
            tp=report.tp,
            fp=report.fp,
            fn=report.fn,
            ordinary_false_alarms=report.fp if ordinary else 0,
            mistakes=tuple(report.mistakes),
        )


_WORK: _FoldWork | None = None


def _fold_in_worker(source: str) -> Fold:
    assert _WORK is not None, "set before the pool forked"
    return _WORK.fold(source)


def format_folds(
    folds: Sequence[Fold], ordinary_rows: int, *, learned: bool = False, show_mistakes: int = 0
) -> str:
    """The folds as a table for a terminal; then, with ``show_mistakes``, up to that many
    of each fold's mistakes."""
    width = max([len(f.source) for f in folds] + [6])
    lines = [
        f"{'held-out source':<{width}}  {'rows':>5} {'rej.':>5} {'precision':>9} {'recall':>7} "
        f"{'false alarms':>12} {'bar':>5} {'ordinary FA':>11}"
    ]
    for f in folds:
        lines.append(
            f"{f.source:<{width}}  {f.rows:>5} {f.rejections:>5} {f.precision:>9.3f} "
            f"{f.recall:>7.3f} {f.fp:>12} {f.bar:>5.2f} {f.ordinary_false_alarms:>11}"
        )
    tp, fp, fn = (sum(f.tp for f in folds), sum(f.fp for f in folds), sum(f.fn for f in folds))
    lines.append(
        f"{'all folds':<{width}}  {sum(f.rows for f in folds):>5} {tp + fn:>5} "
        f"{tp / (tp + fp) if tp + fp else 1.0:>9.3f} {tp / (tp + fn) if tp + fn else 1.0:>7.3f} "
        f"{fp:>12}"
    )
    if learned:
        alarms = sum(f.ordinary_false_alarms for f in folds)
        lines.append(
            f"ordinary mail: {alarms} of {ordinary_rows} taken for a rejection, each mbox "
            "scored by a model trained without it"
        )
        lines.append(
            "fitted without the held-out source: the learned model (see "
            "onward.tasks.classify.holdout); the rules are hand-written; the line is "
            f"the review band's lower edge ({folds[0].bar:.2f})"
        )
    else:
        lines += _bar_footer(folds, ordinary_rows)
    if show_mistakes and not learned:
        lines.append("(folds that fit only the bar keep no list of mistakes)")
    for f in folds:
        if show_mistakes and f.mistakes:
            lines += ["", f"{f.source}: {len(f.mistakes)} mistakes"]
            lines += [f"  {format_miss(m)}" for m in f.mistakes[:show_mistakes]]
            if len(f.mistakes) > show_mistakes:
                lines.append(f"  ... {len(f.mistakes) - show_mistakes} more (--json lists all)")
    return "\n".join(lines)


def _bar_footer(folds: Sequence[Fold], ordinary_rows: int) -> list[str]:
    lines = []
    if ordinary_rows:
        worst = max((f.ordinary_false_alarms for f in folds), default=0)
        lines.append(
            f"ordinary mail: at most {worst} of {ordinary_rows} taken for a rejection "
            "under any fold's bar (never used for fitting)"
        )
    lines.append(
        "fitted without the held-out source: the rejection bar only; the rules are "
        "hand-written (see onward.tasks.classify.holdout)"
    )
    return lines
