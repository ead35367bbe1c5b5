"""The learned half of rejection detection: a linear model over word n-grams.

The phrase rules say what they know; employers say no in endless wordings, so a logistic
regression over normalised word n-grams (with negation scope) and the rules' own scores
weighs the message. A rejection is said in a sentence, so the model reads the message
twice: as one bag of words (the context: a feedback reply, a withdrawal, an offer) and
sentence by sentence, adding the score of its most rejecting sentence (multiple-instance
learning: in training only that sentence learns from the message). It is trained from
labelled JSONL by ``onward train`` (``tasks/classify/train.py``) and shipped as JSON
beside the rules: no network, no dependency, pure Python. Every verdict it decides names
its evidence: that sentence, cut to its decisive words.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise, repeat
from pathlib import Path
from typing import Any, NamedTuple, cast

from onward.tasks.errors import ConfigError

MODEL_FORMAT = 1
# Words that put what follows them in a negation's scope ("not" + "proceed" reads
# differently from "proceed"); the scope ends at punctuation or after this many words.
NEGATIONS = frozenset(
    {"not", "no", "never", "unable", "cannot", "nor", "without", "neither", "unfortunately"}
)
NEGATION_REACH = 5
# Contractions the tokenizer splits so that "won't" and "will not" are the same words.
_CONTRACTIONS = {
    "won't": ("will", "not"),
    "can't": ("can", "not"),
    "shan't": ("shall", "not"),
    "cannot": ("can", "not"),
}
_SUFFIXES = {"n't": "not", "'re": "are", "'ve": "have", "'ll": "will", "'m": "am", "'d": "would"}
# Letters of the Latin, Greek and Cyrillic alphabets ("bewerbung", "søknad", "θέση",
# "кандидатура" are words, not fragments); as fast as [a-z], where \w-based classes cost
# half as much again.
_LETTER = "a-z\u00c0-\u024f\u0386\u0388-\u03ff\u1f00-\u1fff\u0400-\u04ff"
_TOKEN = re.compile(f"[{_LETTER}]+(?:'[{_LETTER}]+)?|\\d+")
# Marks that end a sentence for the rules and the model; U+037E is the Greek question mark
# (it looks like ";").
SENTENCE_MARKS = ".!?\u037e"
# Sentence ends: the rules' own notion, plus ";" and ":" and line breaks between short lines.
_BREAK = re.compile(rf"[{SENTENCE_MARKS};:]+(?=\s|$)|\n\s*\n|\n(?=\s*(?:[-*•>]|\d+[.)]))")
# A clause that gives a reason or a contrast starts a sentence of its own ("... other
# candidates because your system design answers were thin": the reason's interview words
# must not weigh on the decision). Found by its word alone, which the regex engine scans
# for fast; that a space comes before it is checked after.
_CLAUSE = re.compile(r"(?:because|but|however|although|though|since|as we)\b")
# Rejections are short; the model reads the start of long mail only (digests and threads
# gain nothing from being read to the end, and cost time).
_BODY_LIMIT = 3000
QUOTE_WORDS = 30


_STEM_SUFFIXES = ("ingly", "ings", "ing", "edly", "ed", "ies", "es", "ly", "s")


def _stem(word: str) -> str:
    """A light, deterministic suffix strip: "proceeding", "proceeded" and "proceed" meet."""
    if len(word) <= 4:
        return word
    for suffix in _STEM_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: -len(suffix)]
    return word


class Token(NamedTuple):
    word: str
    start: int
    end: int


# Token((w, a, b)) without NamedTuple's Python-level __new__: one per word read, so it shows.
_token = partial(tuple.__new__, Token)


def tokens(text: str) -> list[list[Token]]:
    """Sentences of normalised tokens of lower-cased ``text``, with offsets into it."""
    return [sentence_tokens(text, start, end) for start, end, _ in sentence_words(text)]


def sentence_tokens(text: str, start: int, end: int) -> list[Token]:
    """The normalised tokens of ``text[start:end]`` (one sentence), with offsets into
    ``text``: only the sentence quoted as evidence needs them."""
    found: list[Token] = []
    cache = _PARTS_CACHE
    _bound_caches()
    for m in _TOKEN.finditer(text, start, end):
        a, b = m.span()
        raw = m.group()
        parts = cache.get(raw)
        if parts is None:
            parts = cache[raw] = _parts(raw)
        found.extend([_token((w, a, b)) for w in parts])
    return found


_PARTS_CACHE: dict[str, tuple[str, ...]] = {}
_SINGLE_CACHE: dict[str, str] = {}
_CACHE_LIMIT = 200_000


def _bound_caches() -> None:
    # Every distinct raw word read is remembered (numbers, names, typos ...): a worker
    # that runs for months must not keep them all. Both go together, so a word known
    # to one is never missing from the other for good.
    if len(_PARTS_CACHE) > _CACHE_LIMIT or len(_SINGLE_CACHE) > _CACHE_LIMIT:
        _PARTS_CACHE.clear()
        _SINGLE_CACHE.clear()


def _parts(raw: str) -> tuple[str, ...]:
    """The normalised words of one raw token ("won't" is "will", "not")."""
    if raw[0].isdigit():
        return ("0",)
    parts: tuple[str, ...]
    if raw in _CONTRACTIONS:
        parts = _CONTRACTIONS[raw]
    elif "'" in raw:
        head, _, tail = raw.partition("'")
        ending = "'" + tail
        if raw.endswith("n't"):
            parts = (raw[:-3], "not")
        elif ending in _SUFFIXES:
            parts = (head, _SUFFIXES[ending])
        else:  # a possessive: "company's" is "company"
            parts = (head,)
    else:
        parts = (raw,)
    return tuple(_stem(p) for p in parts if p)


def sentence_words(text: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, normalised words) of each sentence of lower-cased ``text`` that has a
    word: what the model weighs for every message it reads. Offsets of single words are
    only needed for the one sentence quoted as evidence (``sentence_tokens``)."""
    single = _SINGLE_CACHE
    _bound_caches()
    findall = _TOKEN.findall
    sentences: list[tuple[int, int, list[str]]] = []
    start = 0
    bounds = [m.end() for m in _BREAK.finditer(text)]
    clauses = [a for m in _CLAUSE.finditer(text) if (a := m.start()) and text[a - 1].isspace()]
    if clauses:
        bounds = sorted(set(bounds).union(clauses))
    bounds.append(len(text))
    for end in bounds:
        if end <= start:
            continue
        raw = findall(text, start, end)
        begin, start = start, end
        if not raw:
            continue
        # Most words normalise to one word, settled by one dict lookup each in C; a
        # sentence with a word not seen yet, or a contraction, takes the long way.
        found = list(map(single.get, raw))
        if None not in found:
            words = cast(list[str], found)
        else:
            words = []
            for r in raw:
                parts = _PARTS_CACHE.get(r)
                if parts is None:
                    parts = _PARTS_CACHE[r] = _parts(r)
                if len(parts) == 1:
                    single[r] = parts[0]
                words.extend(parts)
            if not words:
                continue
        sentences.append((begin, end, words))
    return sentences


def features_of_words(words: Sequence[str]) -> list[str]:
    """One sentence's features: unigrams, bigrams, and the words in a negation's scope
    (the same features as ``sentence_features``, without where they are)."""
    feats = list(words)
    feats += map(" ".join, pairwise(words))
    if not NEGATIONS.isdisjoint(words):
        scope = 0
        for w in words:
            if w in NEGATIONS:
                scope = NEGATION_REACH
            elif scope:
                feats.append("~" + w)
                scope -= 1
    return feats


def sentence_features(sentence: Sequence[Token]) -> list[tuple[str, int, int]]:
    """(feature, first token, last token) for one sentence: unigrams, bigrams, and the
    words in a negation's scope."""
    feats: list[tuple[str, int, int]] = []
    scope = 0
    previous = ""
    for i, tok in enumerate(sentence):
        w = tok.word
        feats.append((w, i, i))
        if previous:
            feats.append((f"{previous} {w}", i - 1, i))
        if scope and w not in NEGATIONS:
            feats.append((f"~{w}", i, i))
            scope -= 1
        if w in NEGATIONS:
            scope = NEGATION_REACH
        previous = w
    return feats


@dataclass(frozen=True, slots=True)
class Features:
    """A message's features: the text ones (binary) and the dense ones from the rules."""

    text: dict[str, None]  # an ordered set: the same message sums its weights in one order
    scale: float  # the value of each text feature: the bag of words has unit length
    dense: dict[str, float]
    # The lower-cased texts read, so the deciding sentence can be found again in them.
    read: dict[str, str]
    # Each sentence (field, start, end in that field's text) with its value and features;
    # their weights are the model's "t:" ones.
    by_sentence: list[tuple[str, int, int, float, list[str]]]


def extract(
    subject: str, body: str, rule_scores: Mapping[str, float], extra: Mapping[str, float]
) -> Features:
    """Features of one message; ``subject`` and ``body`` lower-cased and normalised."""
    every: list[str] = []
    by_sentence: list[tuple[str, int, int, float, list[str]]] = []
    read = {"subject": subject, "body": body[:_BODY_LIMIT]}
    for where, prefix in (("subject", "s:"), ("body", "")):
        for start, end, words in sentence_words(read[where]):
            feats = features_of_words(words)
            # Each sentence also stands alone, scaled by its own length: one decisive
            # sentence weighs the same in a long mail as in a short one.
            by_sentence.append((where, start, end, len(feats) ** -0.5, feats))
            every += [prefix + f for f in feats] if prefix else feats
    text = dict.fromkeys(every)
    # The message as a bag of words: long mail has more words, not more evidence, so the
    # bag has unit length.
    scale = max(len(text), 1) ** -0.5
    dense = {f"rule:{label}": min(score, 8.0) / 4.0 for label, score in rule_scores.items()}
    dense.update(extra)
    return Features(text, scale, dense, read, by_sentence)


@dataclass(frozen=True)
class LinearModel:
    """Weights of a logistic regression; ``provenance`` says what it was trained on."""

    weights: Mapping[str, float]
    bias: float
    provenance: Mapping[str, Any] = field(default_factory=dict)
    # Words that make mail worth reading on their own (see ``train.learn_gate``).
    gate: frozenset[str] = frozenset()
    _sentence: dict[str, float] = field(init=False, repr=False, compare=False)
    # Raw words known to normalise to a gate word, and known not to.
    _gate_raw: tuple[set[str], set[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Sentence weights by their bare feature: no "t:" string is built per word read.
        sentence = {f[2:]: v for f, v in self.weights.items() if f.startswith("t:")}
        object.__setattr__(self, "_sentence", sentence)
        object.__setattr__(self, "_gate_raw", (set(), set()))

    def reads(self, subject: str, body: str) -> bool:
        """Whether a gate word is among the words of lower-cased ``subject`` and ``body``
        (as far as the model reads it)."""
        if not self.gate:
            return False
        raw = set(_TOKEN.findall(subject))
        raw.update(_TOKEN.findall(body, 0, _BODY_LIMIT))
        hits, misses = self._gate_raw
        if not raw.isdisjoint(hits):
            return True
        _bound_caches()
        if len(hits) + len(misses) > _CACHE_LIMIT:
            hits.clear()
            misses.clear()
        # Mail vocabulary repeats: most words are settled by the set difference, in C.
        found = False
        for word in raw.difference(misses):
            parts = _PARTS_CACHE.get(word)
            if parts is None:
                parts = _PARTS_CACHE[word] = _parts(word)
            if self.gate.isdisjoint(parts):
                misses.add(word)
            else:
                hits.add(word)
                found = True
        return found

    def _context_margin(self, features: Features) -> float:
        """The bias plus what the bag of words and the rules' scores weigh."""
        w = self.weights
        get = w.get
        # map() over dict.get with a default keeps the per-feature loop in C.
        total = self.bias + features.scale * sum(map(get, features.text, repeat(0.0)))
        for feat, x in features.dense.items():
            total += get(feat, 0.0) * x
        return total

    def _best_sentence(self, features: Features) -> tuple[float, int]:
        """The score and index of the sentence that most says "rejection"."""
        get = self._sentence.get
        best, at = 0.0, -1
        for i, (_, _, _, x, feats) in enumerate(features.by_sentence):
            score = x * sum(map(get, feats, repeat(0.0)))
            if at < 0 or score > best:
                best, at = score, i
        return best, at

    def score(self, features: Features) -> tuple[float, int]:
        """The probability of a rejection, and the index in ``features.by_sentence`` of
        the sentence that decided it (-1 for none), for ``evidence``."""
        best, at = self._best_sentence(features)
        return _sigmoid(self._context_margin(features) + best), at

    def probability(self, features: Features) -> float:
        return self.score(features)[0]

    def evidence(self, features: Features, at: int | None = None) -> tuple[str, int, int] | None:
        """(field, start, end) of the sentence that decided (``at`` from ``score``): the
        one whose words push hardest towards a rejection, read whole (a person judges a
        sentence, not three n-grams), at most ``QUOTE_WORDS`` words around its strongest
        features."""
        if at is None:
            at = self._best_sentence(features)[1]
        if at < 0:
            return None
        where, start, end, _, _ = features.by_sentence[at]
        sentence = sentence_tokens(features.read[where], start, end)
        first, last = 0, len(sentence) - 1
        if last - first >= QUOTE_WORDS:
            feats = sentence_features(sentence)
            strongest = max(feats, key=lambda f: self._sentence.get(f[0], 0.0))
            first = max(0, min(strongest[1] - QUOTE_WORDS // 2, last - QUOTE_WORDS + 1))
            last = first + QUOTE_WORDS - 1
        return where, sentence[first].start, sentence[last].end

    def to_json(self) -> str:
        data = {
            "format": MODEL_FORMAT,
            "bias": round(self.bias, 6),
            "provenance": dict(self.provenance),
            "weights": {k: round(v, 5) for k, v in sorted(self.weights.items())},
        }
        if self.gate:
            data["gate"] = sorted(self.gate)
        return json.dumps(data, indent=0, ensure_ascii=False, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str) -> LinearModel:
        try:
            data = json.loads(text)
            if data.get("format") != MODEL_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {MODEL_FORMAT}")
            weights = {str(k): float(v) for k, v in data["weights"].items()}
            gate = frozenset(str(w) for w in data.get("gate") or ())
            return cls(weights, float(data["bias"]), dict(data.get("provenance") or {}), gate)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{origin}: not a classifier model ({exc})") from exc


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


MODEL_FILE = "classifier_model.json"


def load_model(path: Path | None = None) -> LinearModel | None:
    """The packaged model (or the one at ``path``); None when there is none."""
    from importlib import resources

    if path is not None:
        try:
            return LinearModel.from_json(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise ConfigError(f"cannot read classifier model {path}: {exc.strerror}") from exc
    packaged = resources.files("onward.config").joinpath(MODEL_FILE)
    if not packaged.is_file():
        return None
    return LinearModel.from_json(packaged.read_text(encoding="utf-8"), "the packaged model")


def train(
    examples: Iterable[tuple[Features, bool, float]],
    *,
    epochs: int = 30,
    l2: float = 1e-4,
    rate: float = 0.5,
    min_count: int = 2,
    provenance: Mapping[str, Any] | None = None,
) -> LinearModel:
    """Logistic regression by AdaGrad over (features, is rejection, weight) examples; the
    order is fixed, so the same data gives the same model. Text features seen in fewer
    than ``min_count`` messages are dropped (they would only memorise)."""
    data = list(examples)
    counts: dict[str, int] = {}
    for feats, _, _ in data:
        for f in feats.text:
            counts[f] = counts.get(f, 0) + 1
        for f in {"t:" + f for *_, sf in feats.by_sentence for f in sf}:
            counts[f] = counts.get(f, 0) + 1
    # (message features, sentences (value, features), label, weight)
    rows: list[tuple[list[tuple[str, float]], list[tuple[float, list[str]]], float, float]] = []
    for feats, positive, weight in data:
        x = [(f, feats.scale) for f in feats.text if counts[f] >= min_count]
        x += [(f, v) for f, v in feats.dense.items() if v]
        sents = [
            (sx, [t for f in sf if counts.get(t := "t:" + f, 0) >= min_count])
            for _, _, _, sx, sf in feats.by_sentence
        ]
        rows.append((x, sents, 1.0 if positive else 0.0, weight))
    w: dict[str, float] = {}
    g2: dict[str, float] = {}
    bias, bias_g2 = 0.0, 0.0

    def step(f: str, g: float) -> None:
        old = w.get(f, 0.0)
        g += l2 * old
        acc = g2.get(f, 0.0) + g * g
        g2[f] = acc
        w[f] = old - rate * g / math.sqrt(acc + 1e-8)

    for _ in range(epochs):
        for x, sents, y, weight in rows:
            z = bias + sum(w.get(f, 0.0) * v for f, v in x)
            # Multiple instances: the message is as much a rejection as its most
            # rejecting sentence; only that sentence learns from this message.
            best, best_at = 0.0, -1
            for i, (sx, sf) in enumerate(sents):
                score = sx * sum(w.get(f, 0.0) for f in sf)
                if best_at < 0 or score > best:
                    best, best_at = score, i
            grad = (_sigmoid(z + best) - y) * weight
            bias_g2 += grad * grad
            bias -= rate * grad / math.sqrt(bias_g2 + 1e-8)
            for f, v in x:
                step(f, grad * v)
            if best_at >= 0:
                sx, sf = sents[best_at]
                for f in sf:
                    step(f, grad * sx)
    kept = {f: v for f, v in w.items() if abs(v) >= 1e-3}
    return LinearModel(kept, bias, dict(provenance or {}))


def message_words(subject: str, body: str) -> set[str]:
    """The normalised words of lower-cased ``subject`` and ``body``, as far as the model
    reads: what ``train.WordCounts`` counts."""
    return {
        w
        for text in (subject, body[:_BODY_LIMIT])
        for _, _, words in sentence_words(text)
        for w in words
    }
