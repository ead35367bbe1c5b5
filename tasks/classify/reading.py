"""Reading a message the way the rules do: normalised text, the rules' matches per
sentence, the scores they add up to, and the learned model's features."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import repeat

from onward.tasks.classify.evidence import drop_overlaps
from onward.tasks.classify.learned import SENTENCE_MARKS, Features, extract, message_words
from onward.tasks.classify.patterns import Hints
from onward.tasks.classify.rules import (
    Rules,
    _Compiled,
    _CompiledCancel,
    _CompiledRule,
    _RuleSet,
)
from onward.tasks.classify.verdict import (
    LABELS,
    Reason,
    Where,
)
from onward.tasks.mail.message import Message

# One-to-one character replacements, so offsets in the normalised text are offsets in
# the original: curly quotes and dashes written by mail clients become ASCII.
_NORMALISE: tuple[tuple[str, str], ...] = (
    ("\u2019", "'"),
    ("\u2018", "'"),
    ("\u02bc", "'"),
    ("\u201c", '"'),
    ("\u201d", '"'),
    ("\u2013", "-"),
    ("\u2014", "-"),
    ("\u2011", "-"),
    ("\u00a0", " "),
    ("\u202f", " "),
)
_SENTENCE_END = re.compile(
    rf"[{SENTENCE_MARKS}]+[\"')\]]*(?=\s)|\n[ \t]*\n|\n(?=[ \t]*(?:[-*•]|\d+[.)]) )"
)
_WORD_CACHE_SIZE = 200_000
_WORD = re.compile(r"[^\W_]{3,}")
_REPLY_SUBJECT = re.compile(r"^\s*(?:re|aw|sv|antw?)\s*:", re.IGNORECASE)


class _Words:
    """Which rule hint prefixes start a word of a lower-cased text, and where."""

    __slots__ = ("_counts", "_words_by_prefix", "lowered", "present")

    def __init__(self, lowered: str, compiled: _Compiled) -> None:
        self.lowered = lowered
        by_prefix: dict[str, list[str]] = {}
        hits, misses = compiled.word_hits, compiled.word_misses
        if len(hits) + len(misses) > _WORD_CACHE_SIZE:
            hits.clear()
            misses.clear()
        words = set(_WORD.findall(lowered))
        # Mail vocabulary repeats: which hint prefixes start a word is remembered, so
        # most words are settled by set operations in C.
        index = compiled.prefix_index
        for word in words.difference(misses):
            found = hits.get(word)
            if found is None:
                found = tuple(p for p in index.get(word[:3], ()) if word.startswith(p))
                if not found:
                    misses.add(word)
                    continue
                hits[word] = found
            for prefix in found:
                by_prefix.setdefault(prefix, []).append(word)
        self._words_by_prefix = by_prefix
        self.present = by_prefix.keys()
        self._counts: dict[frozenset[str], int] = {}

    def admitted(self, hints: Hints) -> list[frozenset[str]]:
        """For each alternative whose every set has a word here, its rarest set."""
        # Rules share hint sets; what one set finds in this text is settled once.
        counts = self._counts
        by_prefix = self._words_by_prefix
        out: list[frozenset[str]] = []
        for branch in hints:
            rarest: frozenset[str] | None = None
            fewest = 0
            for option in branch:
                n = counts.get(option)
                if n is None:
                    # How many distinct words here start with one of its prefixes (0: none).
                    n = counts[option] = sum(map(len, map(by_prefix.get, option, repeat(()))))
                if not n:
                    break
                if rarest is None or n < fewest:
                    rarest, fewest = option, n
            else:
                if rarest is not None:
                    out.append(rarest)
        return out

    def positions(self, option: frozenset[str]) -> list[int]:
        """Where words starting with a prefix in ``option`` occur (maybe inside words)."""
        found: list[int] = []
        lowered = self.lowered
        for prefix in option:
            for word in self._words_by_prefix.get(prefix, ()):
                pos = lowered.find(word)
                while pos >= 0:
                    found.append(pos)
                    pos = lowered.find(word, pos + 1)
        return found


class _Sentences:
    """Sentence bounds of one text, computed only when a rule first matches in it."""

    __slots__ = ("_ends", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._ends: list[int] | None = None

    def bounds(self, pos: int) -> tuple[int, int]:
        if self._ends is None:
            self._ends = [m.end() for m in _SENTENCE_END.finditer(self._text)]
        i = bisect.bisect_right(self._ends, pos)
        start = self._ends[i - 1] if i > 0 else 0
        end = self._ends[i] if i < len(self._ends) else len(self._text)
        return start, end


def _scan(
    where: Where,
    text: str,
    words: _Words,
    ruleset: _RuleSet,
    compiled: _Compiled,
) -> list[Reason]:
    if not text:
        return []
    rules, by_prefix, always = ruleset.rules, ruleset.by_prefix, ruleset.always
    lowered = words.lowered
    sentences = _Sentences(text)
    # Lower-casing can change the length of a few characters (e.g. "İ"); then positions
    # of words in the lowered text are not positions in the text and everything is read.
    aligned = len(lowered) == len(text)
    found: list[Reason] = []
    present = words.present
    # Only rules whose first hint set has a word here can match; find them by index.
    candidates = set(always)
    for prefix in present:
        candidates.update(by_prefix.get(prefix, ()))
    for i in sorted(candidates):
        cr = rules[i]
        if not cr.hints:
            spans = [(0, len(text))]
        else:
            admitted = words.admitted(cr.hints)
            if not admitted:
                continue
            if aligned:
                # Evidence lives within a sentence: read only around the words the rule
                # cannot match without.
                positions = [p for option in admitted for p in words.positions(option)]
                spans = _windows(positions, sentences)
            else:
                spans = [(0, len(text))]
        reason = _first_reason(where, text, cr, spans, sentences, compiled)
        if reason is not None:
            found.append(reason)
    return found


# How far before and after a required word a match can reach; longer "sentences" (lists,
# code, unpunctuated text) are only read this far around it. The rules' phrases are a few
# words long: at 200 instead, no verdict of 26,237 stored messages changes in any field,
# and long mail costs more to read.
_REACH = 120


def _windows(positions: Iterable[int], sentences: _Sentences) -> list[tuple[int, int]]:
    """Stretches to read: each position's sentence, at most _REACH either side, merged."""
    spans = sorted(
        {
            (max(s_start, p - _REACH), min(s_end, p + _REACH))
            for p in positions
            for s_start, s_end in (sentences.bounds(p),)
        }
    )
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _first_reason(
    where: Where,
    text: str,
    cr: _CompiledRule,
    spans: Iterable[tuple[int, int]],
    sentences: _Sentences,
    compiled: _Compiled,
) -> Reason | None:
    """The rule's first match that no context cancels; a rule counts once per field."""
    cancels = compiled.cancels_by_label.get(cr.rule.label, ())
    for span_start, span_end in spans:
        for m in cr.regex.finditer(text, span_start, span_end):
            s_start, s_end = sentences.bounds(m.start())
            sentence = text[s_start:s_end]
            if cr.requires is not None and not cr.requires.search(sentence):
                continue
            if any(u.search(sentence) for u in cr.unless):
                continue
            if any(_cancels(cc, text, s_start, s_end, m.start()) for cc in cancels):
                continue
            rule = cr.rule
            return Reason(m.group(0), rule.id, rule.label, rule.weight, where, m.start(), m.end())
    return None


def _cancels(cc: _CompiledCancel, text: str, s_start: int, s_end: int, at: int) -> bool:
    if cc.cancel.scope == "before":
        return cc.regex.search(text, max(s_start, at - cc.cancel.window), at) is not None
    return cc.regex.search(text, s_start, s_end) is not None


def _body_to_read(message: Message, rules: Rules) -> str:
    return _opening_and_close(_text_to_read(message)[: rules.max_chars], rules)


def _opening_and_close(text: str, rules: Rules) -> str:
    """``text`` with all but its first ``head_chars`` and last ``tail_chars`` blanked
    (spaces between two paragraph breaks, so offsets stay offsets into ``text``): long
    mail says its decision where it opens or where it closes."""
    head, tail = rules.head_chars, rules.tail_chars
    if not head or len(text) <= head + tail + 4:
        return text
    gap = len(text) - head - tail
    return f"{text[:head]}\n\n{' ' * (gap - 4)}\n\n{text[len(text) - tail :]}"


def _normalise(text: str) -> str:
    if text.isascii():
        return text
    # str.replace per character beats str.translate with a mapping by an order of magnitude.
    for old, new in _NORMALISE:
        if old in text:
            text = text.replace(old, new)
    return text


def _text_to_read(message: Message) -> str:
    # Quoted older mail never counts; a message with nothing but quotes has nothing new.
    if message.new_text.strip() or message.quoted_text.strip():
        return message.new_text
    return message.text


@dataclass(frozen=True, slots=True)
class _Reading:
    """What the rules make of a message, before any label is chosen."""

    raw_subject: str
    raw_body: str
    subject: str
    body: str
    lowered_subject: str
    lowered_body: str
    job_mail: bool
    reasons: list[Reason]
    scores: dict[str, float]
    is_reply: bool
    # Read only because of a word the model learnt (no listed hiring word): the mail may
    # not be job mail at all.
    learned_gate_only: bool = False

    def features(self) -> Features:
        return extract(
            self.lowered_subject, self.lowered_body, self.scores, {"reply": float(self.is_reply)}
        )


def _read(message: Message, rules: Rules, *, read_all: bool = False) -> _Reading:
    """What the rules make of ``message``; ``read_all`` reads it even if the gate would
    not (training: the model learns what makes mail worth reading from every labelled
    message)."""
    compiled = rules._compiled
    raw_subject = message.subject or ""
    raw_body = _body_to_read(message, rules)
    subject, body = _normalise(raw_subject), _normalise(raw_body)

    lowered_subject, lowered_body = subject.lower(), body.lower()
    # Mail without a single job word is ordinary mail: no rule could make it anything
    # but "other", so the rules are not even tried (most of an inbox, read in microseconds).
    both = f"{lowered_subject}\n{lowered_body}"
    job_mail = compiled.job_words is None or compiled.job_words.search(both) is not None
    if not job_mail and compiled.short_mail_words is not None:
        job_mail = (
            len(lowered_body) <= rules.short_mail_chars
            and compiled.short_mail_words.search(both) is not None
        )
    learned_gate_only = False
    if not job_mail and rules.model is not None:
        job_mail = learned_gate_only = rules.model.reads(lowered_subject, lowered_body)
    job_mail = job_mail or read_all
    reasons: list[Reason] = []
    if job_mail:
        reasons += _scan(
            "subject",
            subject,
            _Words(lowered_subject, compiled),
            compiled.subject_rules,
            compiled,
        )
        reasons += _scan(
            "body",
            body,
            _Words(lowered_body, compiled),
            compiled.body_rules,
            compiled,
        )
    if subject is not raw_subject or body is not raw_body:
        # Matching ran on straightened quotes; a person should see the words as written.
        raw = {"subject": raw_subject, "body": raw_body}
        reasons = [replace(r, phrase=raw[r.where][r.start : r.end]) for r in reasons]
    for header_rule, regex in compiled.header_rules:
        value = message.headers.get(header_rule.header)
        if value is None or (regex is not None and not regex.search(value)):
            continue
        reasons.append(
            Reason(
                value,
                header_rule.id,
                header_rule.label,
                header_rule.weight,
                "header",
                0,
                len(value),
            )
        )

    reasons = drop_overlaps(reasons)
    scores: dict[str, float] = dict.fromkeys(LABELS, 0.0)
    seen: set[str] = set()
    for reason in reasons:
        if reason.rule not in seen:  # a rule that matched in subject and body counts once
            seen.add(reason.rule)
            scores[reason.label] += reason.weight

    is_reply = bool(message.in_reply_to) or bool(_REPLY_SUBJECT.match(subject))
    return _Reading(
        raw_subject,
        raw_body,
        subject,
        body,
        lowered_subject,
        lowered_body,
        job_mail,
        reasons,
        scores,
        is_reply,
        learned_gate_only,
    )


def features_of(message: Message, rules: Rules, *, read_all: bool = False) -> Features | None:
    """The learned model's features of ``message`` (None for mail the gate does not let
    through, which the model never reads, unless ``read_all``); for training."""
    reading = _read(message, rules, read_all=read_all)
    return reading.features() if reading.job_mail else None


def words_of(message: Message, rules: Rules) -> set[str]:
    """The normalised words of ``message`` as far as the model reads it, read or not by
    the gate: what the gate's words are counted in."""
    subject = _normalise(message.subject or "").lower()
    body = _normalise(_body_to_read(message, rules)).lower()
    return message_words(subject, body)
