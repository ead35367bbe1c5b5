"""Train the learned half of rejection detection from labelled mail (``onward train``).

Labelled JSONL rows are the examples (ambiguous rows left out); .mbox files are ordinary
mail, all of it "not a rejection". Every labelled row trains the model; ordinary mail
trains it when a listed hiring word lets it through, as only such mail is read. The
model's gate (``learn_gate``) is then the words it weighs towards a rejection that
rejections use far more than other mail. Each side carries the same total weight, so a
corpus with more ordinary mail than rejections does not teach the model that rejections
are rare.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from onward.tasks.classify.evaluate import ORDINARY, REJECTION, LabelledMessage, iter_labelled
from onward.tasks.classify.learned import Features, LinearModel, train
from onward.tasks.classify.reading import features_of, words_of
from onward.tasks.classify.rules import Rules, load_rules

# Ordinary mail counts for less than labelled job mail: it is plentiful and easy, and the
# hard negatives (interviews, offers, withdrawals) are what the model must learn apart.
ORDINARY_SHARE = 0.35


# The gate's learned half: a word the model weighs at least GATE_WEIGHT towards a
# rejection within a sentence, found in at least GATE_RATIO times as many labelled
# rejections as other labelled mail and in no ordinary mail it was trained on, makes mail
# worth reading even when no listed hiring word is in it ("fully staffed", a language the
# list lacks). Learnt from the training data, so leave-one-source-out measures it too.
# Words shorter than GATE_MIN_LENGTH ("и", "og", "tu") are in most mail of a language.
GATE_WEIGHT = 0.5
GATE_RATIO = 2
GATE_MIN_LENGTH = 3


@dataclass
class WordCounts:
    """In how many messages of each kind each word occurs, read by the gate or not."""

    rejections: Counter[str] = field(default_factory=Counter)
    others: Counter[str] = field(default_factory=Counter)  # labelled, not rejections
    ordinary: Counter[str] = field(default_factory=Counter)

    def __add__(self, other: WordCounts) -> WordCounts:
        return WordCounts(
            self.rejections + other.rejections,
            self.others + other.others,
            self.ordinary + other.ordinary,
        )

    def __sub__(self, other: WordCounts) -> WordCounts:
        return WordCounts(
            self.rejections - other.rejections,
            self.others - other.others,
            self.ordinary - other.ordinary,
        )


def learn_gate(model: LinearModel, counts: WordCounts) -> LinearModel:
    """``model`` with its gate (see GATE_WEIGHT): the single words it weighs towards a
    rejection within a sentence that rejections use far more than other mail."""
    rejections, others, ordinary = counts.rejections, counts.others, counts.ordinary
    gate = frozenset(
        f
        for f, v in model._sentence.items()
        if v >= GATE_WEIGHT
        and len(f) >= GATE_MIN_LENGTH
        and " " not in f
        and f[0] != "~"
        and not ordinary.get(f)
        and rejections[f] >= GATE_RATIO * others[f]
    )
    return replace(model, gate=gate)


def without_model(rules: Rules | None) -> Rules:
    rules = rules if rules is not None else load_rules()
    return replace(rules, model=None) if rules.model is not None else rules


Example = tuple[Features, bool, str]  # features, is a rejection, source


def read_examples(items: Iterable[LabelledMessage], rules: Rules) -> list[Example]:
    """(features, is a rejection, source) for each item the model learns from: all
    labelled job mail, and the ordinary mail the listed hiring words let through."""
    out: list[Example] = []
    for item in items:
        features = features_of(item.message, rules, read_all=item.truth != ORDINARY)
        if features is not None:
            out.append((features, item.truth == REJECTION, item.source))
    return out


def word_counts(items: Iterable[LabelledMessage], rules: Rules) -> dict[str, WordCounts]:
    """Per source, in how many rejections, other labelled mail and ordinary mail each word
    occurs (read by the gate or not): what the gate is learnt from."""
    out: dict[str, WordCounts] = {}
    for item in items:
        counts = out.setdefault(item.source, WordCounts())
        kind = (
            counts.ordinary
            if item.truth == ORDINARY
            else counts.rejections
            if item.truth == REJECTION
            else counts.others
        )
        kind.update(words_of(item.message, rules))
    return out


def weighted(rows: Sequence[Example]) -> list[tuple[Features, bool, float]]:
    """Each example with its weight: rejections 1 each, the same total on the other side,
    of which ordinary mail has ``ORDINARY_SHARE``."""
    positives = sum(1 for _, pos, _ in rows if pos) or 1
    labelled_neg = sum(1 for _, pos, s in rows if not pos and not _ordinary(s)) or 1
    ordinary = sum(1 for _, pos, s in rows if not pos and _ordinary(s)) or 1
    out: list[tuple[Features, bool, float]] = []
    for features, positive, source in rows:
        if positive:
            weight = 1.0
        elif _ordinary(source):
            weight = positives * ORDINARY_SHARE / ordinary
        else:
            weight = positives * (1 - ORDINARY_SHARE) / labelled_neg
        out.append((features, positive, weight))
    return out


def _ordinary(source: str) -> bool:
    return source.endswith(".mbox")


def fit(
    rows: Sequence[Example], counts: WordCounts, provenance: dict[str, Any] | None = None
) -> LinearModel:
    """A model of ``rows`` with its gate, learnt from ``counts``."""
    return learn_gate(train(weighted(rows), provenance=provenance), counts)


def train_from_files(paths: Sequence[Path], rules: Rules | None = None) -> LinearModel:
    """A model trained on every file in ``paths``, its provenance recorded in it."""
    rules = without_model(rules)
    items = list(iter_labelled(paths))
    rows = read_examples(items, rules)
    words = sum(word_counts(items, rules).values(), WordCounts())
    counts: Counter[tuple[str, str]] = Counter()
    for item in items:
        counts[(item.source, "ordinary" if item.truth == ORDINARY else item.truth)] += 1
    provenance: dict[str, Any] = {
        "trained": datetime.now(UTC).strftime("%Y-%m-%d"),
        "by": "onward train (onward.tasks.classify.train)",
        "sources": [
            {
                "file": path.name,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
                "rows": {
                    label: n for (source, label), n in sorted(counts.items()) if source == path.name
                },
            }
            for path in paths
        ],
        "examples_read": len(rows),
    }
    return fit(rows, words, provenance)
