"""Decide what a job-search mail is (rejection, interview, offer, ...) and say why.

Pure and deterministic: phrase rules from ``config/classifier.toml`` (plus the user's own
rules file) are weighed per sentence of the subject and the message's *new* text, with
contexts that cancel them; no network, no model. The verdict carries the phrases that
decided, with their offsets, so a person can check it.
"""

from __future__ import annotations

import bisect
import email.utils
import math
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from tasks.errors import ConfigError
from tasks.message import Address, Message

LABELS: tuple[str, ...] = (
    "rejection",
    "interview",
    "assessment",
    "offer",
    "application_received",
    "recruiter_outreach",
    "job_alert",
    "feedback_reply",
    "other",
)
# On equal scores the earlier label wins: a missed "not a rejection" costs less than a
# "thanks for the feedback" draft sent in reply to an interview invitation.
_TIE_ORDER = {
    label: i
    for i, label in enumerate(
        (
            "offer",
            "interview",
            "assessment",
            "feedback_reply",
            "application_received",
            "recruiter_outreach",
            "job_alert",
            "other",
            "rejection",
        )
    )
}

Where = Literal["subject", "body", "from", "header"]
SenderKind = Literal["person", "no-reply", "ats", "unknown"]

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
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)|\n[ \t]*\n|\n(?=[ \t]*(?:[-*•]|\d+[.)]) )")
_WORD_CACHE_SIZE = 200_000
_WORD = re.compile(r"[^\W_]{3,}")
_REPLY_SUBJECT = re.compile(r"^\s*(?:re|aw|sv|antw?)\s*:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Reason:
    """One piece of evidence: ``text[start:end] == phrase`` in the field named by ``where``.

    For ``where == "body"`` the offsets are into the message's new text (``new_text``,
    or ``text`` when the message has no quoted part).
    """

    phrase: str
    rule: str
    label: str
    weight: float
    where: Where
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "phrase": self.phrase,
            "rule": self.rule,
            "label": self.label,
            "weight": self.weight,
            "where": self.where,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a message is, how sure we are, the evidence, and who and what it is about."""

    label: str
    confidence: float
    reasons: tuple[Reason, ...]
    company: str | None = None
    role: str | None = None
    contact_name: str | None = None
    contact_addr: str | None = None
    sender_kind: SenderKind = "unknown"
    ats: str | None = None

    @property
    def is_rejection(self) -> bool:
        return self.label == "rejection"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape ``onward classify`` prints, without the id)."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "reasons": [r.to_dict() for r in self.reasons],
            "company": self.company,
            "role": self.role,
            "contact": {
                "name": self.contact_name,
                "addr": self.contact_addr,
                "kind": self.sender_kind,
                "ats": self.ats,
            },
        }


# --------------------------------------------------------------------------------------
# Rules as data
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A weighted phrase for one label; see the header of ``config/classifier.toml``."""

    id: str
    label: str
    pattern: str
    weight: float
    where: Literal["body", "subject", "any"] = "body"
    unless: tuple[str, ...] = ()
    requires: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """A context that cancels evidence for some labels in the same sentence."""

    id: str
    labels: frozenset[str]
    pattern: str
    scope: Literal["before", "sentence"] = "sentence"
    window: int = 160


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """Evidence from a header: present (and matching ``pattern``) adds ``weight``."""

    id: str
    header: str
    label: str
    weight: float
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class LabelPolicy:
    min_score: float = 3.0
    requires_context: str | None = None
    requires_reply: bool = False
    # Labels this one beats whenever both reach their bar (a feedback reply often
    # repeats the rejection it follows up on).
    wins_over: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    regex: re.Pattern[str]
    hints: Hints
    unless: tuple[re.Pattern[str], ...]
    requires: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class _CompiledCancel:
    cancel: Cancel
    regex: re.Pattern[str]


@dataclass(frozen=True)
class Rules:
    """The classifier's whole configuration, validated and compiled once."""

    rules: tuple[Rule, ...]
    cancels: tuple[Cancel, ...] = ()
    header_rules: tuple[HeaderRule, ...] = ()
    labels: tuple[tuple[str, LabelPolicy], ...] = ()
    ats_domains: tuple[tuple[str, str], ...] = ()
    no_reply_pattern: str = r"^(?:.*no[-_.]?reply.*)$"
    freemail_domains: frozenset[str] = frozenset()
    max_chars: int = 20000
    confidence_scale: float = 1.5
    job_words: frozenset[str] = frozenset()
    _compiled: _Compiled = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Compiling here means every Rules object is checked as it is made, and
        # classify() never compiles a pattern per message.
        object.__setattr__(self, "_compiled", _compile(self))

    def policy(self, label: str) -> LabelPolicy:
        return self._compiled.policies.get(label, LabelPolicy())


@dataclass(frozen=True, slots=True)
class _RuleSet:
    """Compiled rules for one field, indexed by the prefixes of their first hint set."""

    rules: tuple[_CompiledRule, ...]
    by_prefix: Mapping[str, tuple[int, ...]]
    always: tuple[int, ...]

    @classmethod
    def of(cls, rules: Iterable[_CompiledRule]) -> _RuleSet:
        ordered = tuple(rules)
        by_prefix: dict[str, list[int]] = {}
        always: list[int] = []
        for i, cr in enumerate(ordered):
            if not cr.hints:
                always.append(i)
            for branch in cr.hints:
                for prefix in branch[0]:
                    by_prefix.setdefault(prefix, []).append(i)
        return cls(ordered, {k: tuple(v) for k, v in by_prefix.items()}, tuple(always))


@dataclass(frozen=True, slots=True)
class _Compiled:
    subject_rules: _RuleSet
    body_rules: _RuleSet
    cancels_by_label: Mapping[str, tuple[_CompiledCancel, ...]]
    header_rules: tuple[tuple[HeaderRule, re.Pattern[str] | None], ...]
    policies: Mapping[str, LabelPolicy]
    context: Mapping[str, re.Pattern[str]]
    ats: Mapping[str, str]
    no_reply: re.Pattern[str]
    prefix_index: Mapping[str, tuple[str, ...]]
    job_words: frozenset[str]
    # Caches that only ever hold facts: word -> the hint prefixes it starts with, and
    # words that start with none.
    word_hits: dict[str, tuple[str, ...]]
    word_misses: set[str]


def _regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(_spaces_to_whitespace(pattern), re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(
            f"classifier rule {where}: bad pattern ({exc}); fix it or disable it"
        ) from exc


def _spaces_to_whitespace(pattern: str) -> str:
    """A literal space outside a character class means "any run of whitespace"."""
    out: list[str] = []
    in_class = False
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif ch == "[":
            in_class = True
            out.append(ch)
        elif ch == "]":
            in_class = False
            out.append(ch)
        elif ch == " " and not in_class:
            out.append(r"\s+")
        else:
            out.append(ch)
    return "".join(out)


class _Node:
    """A parsed regex piece, kept only as far as needed to find required words."""

    __slots__ = ("branches", "kind", "min", "text", "word_start")

    def __init__(
        self,
        kind: str,
        text: str = "",
        branches: list[list[_Node]] | None = None,
        word_start: bool = False,
    ) -> None:
        # "lit" one character, "alt" a group, "wb" a word boundary, "ws" whitespace,
        # "other" anything else (classes, dots, optional pieces, lookarounds).
        self.kind = kind
        self.text = text
        self.branches = branches or []
        self.min = 1
        self.word_start = word_start


def _parse_alt(pattern: str, i: int, at_start: bool) -> tuple[list[list[_Node]], bool, int]:
    """Parse alternatives up to an unmatched ``)`` or the end.

    Returns the branches, whether every branch ends at a word boundary or whitespace, and
    the index reached. ``at_start`` says whether a word boundary comes right before.
    """
    branches: list[list[_Node]] = [[]]
    ends: list[bool] = []
    boundary = at_start  # a literal here would start a word
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        seq = branches[-1]
        node: _Node
        inner_end = False
        if ch == ")":
            break
        if ch == "|":
            ends.append(boundary)
            branches.append([])
            boundary = at_start
            i += 1
            continue
        if ch == "(":
            lookaround = pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i)
            if pattern.startswith("(?P<", i):
                i = pattern.index(">", i) + 1
            elif pattern.startswith("(?:", i):
                i += 3
            elif lookaround:
                i += 4 if pattern.startswith("(?<", i) else 3
            elif pattern.startswith("(?", i):  # inline flags match nothing
                i = pattern.index(")", i) + 1
                continue
            else:
                i += 1
            inner, inner_end, i = _parse_alt(pattern, i, boundary)
            i += 1
            if lookaround:  # zero width: the boundary state is unchanged
                continue
            node = _Node("alt", branches=inner)
        elif ch == "\\":
            esc = pattern[i + 1 : i + 2]
            node = _Node("wb" if esc == "b" else "ws" if esc == "s" else "other")
            i += 2
        elif ch == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            node = _Node("other")
            i = j + 1
        elif ch == " ":
            node = _Node("ws")
            i += 1
        elif ch in ".^$":
            node = _Node("other")
            i += 1
        else:
            node = _Node("lit", text=ch.lower(), word_start=boundary)
            i += 1
        minimum = 1
        if i < n and pattern[i] in "?*+{":
            q = pattern[i]
            if q == "{":
                close = pattern.find("}", i)
                low = pattern[i + 1 : close].split(",")[0].strip() if close > 0 else ""
                minimum = int(low) if low.isdigit() else 0
                i = close + 1 if close > 0 else i + 1
            else:
                minimum = 0 if q in "?*" else 1
                i += 1
            if i < n and pattern[i] in "?+":  # lazy or possessive
                i += 1
            if minimum > 0 and node.kind == "lit":
                # "s+" still needs one "s", but the run of literals ends after it.
                seq.append(node)
                node = _Node("other")
        if node.kind in ("wb", "ws"):
            boundary = minimum > 0 or boundary
        elif node.kind == "alt":
            boundary = inner_end and (minimum > 0 or boundary)
        else:
            boundary = False
        seq.append(node if minimum > 0 else _Node("other"))
    ends.append(boundary)
    return branches, all(ends), i


def _word_options(seq: list[_Node]) -> list[frozenset[str]]:
    """Sets of word prefixes, one of each set found at a word start in any match of seq."""
    options: list[frozenset[str]] = []
    run: list[_Node] = []
    for node in (*seq, _Node("other")):
        if node.kind == "lit":
            run.append(node)
            continue
        if run and run[0].word_start:
            word = "".join(n.text for n in run)
            word = re.split(r"[^0-9a-z]", word, maxsplit=1)[0]
            if len(word) >= 3:
                options.append(frozenset({word}))
        run = []
        if node.kind == "alt":
            found = _best_alt(node.branches)
            if found is not None:
                options.append(found)
    return options


def _best_alt(branches: list[list[_Node]]) -> frozenset[str] | None:
    out: set[str] = set()
    for branch in branches:
        options = _word_options(branch)
        if not options:
            return None
        out |= max(options, key=_selectivity)
    return frozenset(out)


def _selectivity(option: AbstractSet[str]) -> tuple[int, int]:
    return min(map(len, option)), -len(option)


Hints = tuple[tuple[frozenset[str], ...], ...]


def _word_hints(pattern: str) -> Hints:
    """Word prefixes a match must contain, for a cheap pre-check before the regex.

    One entry per top-level alternative; an alternative needs one prefix from each of its
    sets. An empty tuple means nothing was found and the regex always runs (always safe).
    """
    try:
        branches, _, _ = _parse_alt(pattern, 0, False)
    except ValueError:
        return ()
    out: list[tuple[frozenset[str], ...]] = []
    for branch in branches:
        options = sorted(_word_options(branch), key=_selectivity, reverse=True)
        if not options:
            return ()
        out.append(tuple(dict.fromkeys(options)))
    return tuple(out)


class _Words:
    """Which rule hint prefixes start a word of a lower-cased text, and where."""

    __slots__ = ("_words_by_prefix", "lowered", "present")

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

    def admitted(self, hints: Hints) -> list[frozenset[str]]:
        """For each alternative whose every set has a word here, its rarest set."""
        present = self.present
        by_prefix = self._words_by_prefix
        out: list[frozenset[str]] = []
        for branch in hints:
            if all(not option.isdisjoint(present) for option in branch):
                # The set with the fewest distinct words here: the fewest places to read.
                out.append(min(branch, key=lambda o: sum(len(by_prefix.get(p, ())) for p in o)))
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


def _prefix_index(rules: Iterable[_CompiledRule]) -> dict[str, tuple[str, ...]]:
    """Hint prefixes keyed by their first three letters (every hint has at least three)."""
    index: dict[str, set[str]] = {}
    for cr in rules:
        for branch in cr.hints:
            for option in branch:
                for prefix in option:
                    index.setdefault(prefix[:3], set()).add(prefix)
    return {k: tuple(sorted(v)) for k, v in index.items()}


def _compile(rules: Rules) -> _Compiled:
    subject: list[_CompiledRule] = []
    body: list[_CompiledRule] = []
    for rule in rules.rules:
        if rule.label not in LABELS:
            raise ConfigError(f"classifier rule {rule.id}: unknown label {rule.label!r}")
        compiled = _CompiledRule(
            rule=rule,
            regex=_regex(rule.pattern, rule.id),
            hints=_word_hints(rule.pattern),
            unless=tuple(_regex(p, rule.id) for p in rule.unless),
            requires=_regex(rule.requires, rule.id) if rule.requires else None,
        )
        if rule.where in ("subject", "any"):
            subject.append(compiled)
        if rule.where in ("body", "any"):
            body.append(compiled)
    cancels: dict[str, list[_CompiledCancel]] = {}
    for cancel in rules.cancels:
        cc = _CompiledCancel(cancel, _regex(cancel.pattern, cancel.id))
        for label in cancel.labels:
            cancels.setdefault(label, []).append(cc)
    policies = dict(rules.labels)
    context = {
        label: _regex(p.requires_context, f"labels.{label}")
        for label, p in policies.items()
        if p.requires_context
    }
    headers = tuple((h, _regex(h.pattern, h.id) if h.pattern else None) for h in rules.header_rules)
    return _Compiled(
        subject_rules=_RuleSet.of(subject),
        body_rules=_RuleSet.of(body),
        cancels_by_label={k: tuple(v) for k, v in cancels.items()},
        header_rules=headers,
        policies=policies,
        context=context,
        ats={d.lower().lstrip("."): name for d, name in rules.ats_domains},
        no_reply=_regex(rules.no_reply_pattern, "settings.no_reply_pattern"),
        prefix_index=_prefix_index((*subject, *body)),
        job_words=rules.job_words,
        word_hits={},
        word_misses=set(),
    )


DEFAULT_RULES_FILE = "classifier.toml"
_default_rules: Rules | None = None


def load_rules(user_file: Path | None = None) -> Rules:
    """The packaged rules, merged with a user's rules file when one is given.

    The packaged rules are read and compiled once per process; a user file is read on
    every call (callers keep the result).
    """
    global _default_rules
    if user_file is None and _default_rules is not None:
        return _default_rules
    text = resources.files("config").joinpath(DEFAULT_RULES_FILE).read_text(encoding="utf-8")
    data = _parse_toml(text, "the packaged classifier rules")
    if user_file is not None:
        try:
            user_text = Path(user_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read classifier rules {user_file}: {exc.strerror}") from exc
        data = _merge(data, _parse_toml(user_text, str(user_file)), str(user_file))
    rules = _rules_from_data(data)
    if user_file is None:
        _default_rules = rules
    return rules


def _parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from exc


_TOP_KEYS = {
    "settings",
    "labels",
    "cancel",
    "header_rule",
    "ats_domains",
    "rule",
    "weights",
    "disable",
}


def _merge(base: dict[str, Any], user: dict[str, Any], origin: str) -> dict[str, Any]:
    """Apply a user's rules file on top of the defaults: add, replace, re-weight, disable."""
    unknown = set(user) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{origin}: unknown section(s) {', '.join(sorted(unknown))}")
    merged = dict(base)
    merged["settings"] = {**base.get("settings", {}), **user.get("settings", {})}
    labels = {k: dict(v) for k, v in base.get("labels", {}).items()}
    for label, policy in user.get("labels", {}).items():
        labels[label] = {**labels.get(label, {}), **policy}
    merged["labels"] = labels
    merged["ats_domains"] = {**base.get("ats_domains", {}), **user.get("ats_domains", {})}
    for key in ("rule", "cancel", "header_rule"):
        by_id: dict[str, dict[str, Any]] = {r["id"]: dict(r) for r in base.get(key, [])}
        for entry in user.get(key, []):
            if "id" not in entry:
                raise ConfigError(f"{origin}: every [[{key}]] needs an id")
            by_id[entry["id"]] = {**by_id.get(entry["id"], {}), **entry}
        merged[key] = list(by_id.values())
    rule_ids = {r["id"] for r in merged["rule"]} | {h["id"] for h in merged["header_rule"]}
    for rule_id, weight in user.get("weights", {}).items():
        if rule_id not in rule_ids:
            raise ConfigError(f"{origin}: [weights] names unknown rule {rule_id!r}")
        for entry in (*merged["rule"], *merged["header_rule"]):
            if entry["id"] == rule_id:
                entry["weight"] = float(weight)
    disabled = set(user.get("disable", []))
    all_ids = rule_ids | {c["id"] for c in merged["cancel"]}
    if disabled - all_ids:
        raise ConfigError(f"{origin}: disable names unknown rule(s) {sorted(disabled - all_ids)}")
    for key in ("rule", "cancel", "header_rule"):
        merged[key] = [r for r in merged[key] if r["id"] not in disabled]
    return merged


def _rules_from_data(data: Mapping[str, Any]) -> Rules:
    try:
        settings = data.get("settings", {})
        rules = tuple(
            Rule(
                id=r["id"],
                label=r["label"],
                pattern=r["pattern"],
                weight=float(r["weight"]),
                where=r.get("where", "body"),
                unless=tuple(r.get("unless", ())),
                requires=r.get("requires"),
            )
            for r in data.get("rule", [])
        )
        cancels = tuple(
            Cancel(
                id=c["id"],
                labels=frozenset(c["labels"]),
                pattern=c["pattern"],
                scope=c.get("scope", "sentence"),
                window=int(c.get("window", 160)),
            )
            for c in data.get("cancel", [])
        )
        headers = tuple(
            HeaderRule(
                id=h["id"],
                header=h["header"].lower(),
                label=h["label"],
                weight=float(h["weight"]),
                pattern=h.get("pattern"),
            )
            for h in data.get("header_rule", [])
        )
        labels = tuple(
            (
                label,
                LabelPolicy(
                    min_score=float(p.get("min_score", 3.0)),
                    requires_context=p.get("requires_context"),
                    requires_reply=bool(p.get("requires_reply", False)),
                    wins_over=frozenset(p.get("wins_over", ())),
                ),
            )
            for label, p in sorted(data.get("labels", {}).items())
        )
    except KeyError as exc:
        raise ConfigError(f"classifier rules: an entry lacks the field {exc}") from exc
    for rule in rules:
        if rule.where not in ("body", "subject", "any"):
            raise ConfigError(f"classifier rule {rule.id}: where must be body, subject or any")
    for label, _ in labels:
        if label not in LABELS:
            raise ConfigError(f"classifier rules: unknown label [labels.{label}]")
    return Rules(
        rules=rules,
        cancels=cancels,
        header_rules=headers,
        labels=labels,
        ats_domains=tuple(sorted(data.get("ats_domains", {}).items())),
        no_reply_pattern=settings.get("no_reply_pattern", Rules.no_reply_pattern),
        freemail_domains=frozenset(d.lower() for d in settings.get("freemail_domains", ())),
        max_chars=int(settings.get("max_chars", 20000)),
        confidence_scale=float(settings.get("confidence_scale", 1.5)),
        job_words=frozenset(w.lower() for w in settings.get("job_words", ())),
    )


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------


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
# code, unpunctuated text) are only read this far around it.
_REACH = 200


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


def _starts_word(lowered: str, word: str) -> bool:
    """Whether ``word`` occurs at the start of a word ("role" in "a role", not "controller")."""
    at = lowered.find(word)
    while at >= 0:
        if at == 0 or not lowered[at - 1].isalnum():
            return True
        at = lowered.find(word, at + 1)
    return False


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


def classify(
    message: Message,
    *,
    rules: Rules | None = None,
    user_addresses: Collection[str] = (),
) -> Verdict:
    """Label one message with its evidence; the same message and rules give the same verdict."""
    rules = rules if rules is not None else load_rules()
    compiled = rules._compiled
    raw_subject = message.subject or ""
    raw_body = _text_to_read(message)[: rules.max_chars]
    subject, body = _normalise(raw_subject), _normalise(raw_body)

    lowered_subject, lowered_body = subject.lower(), body.lower()
    # Mail without a single job word is ordinary mail: no rule could make it anything
    # but "other", so the rules are not even tried (most of an inbox, read in microseconds).
    both = f"{lowered_subject}\n{lowered_body}"
    job_mail = not compiled.job_words or any(_starts_word(both, w) for w in compiled.job_words)
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

    scores: dict[str, float] = dict.fromkeys(LABELS, 0.0)
    seen: set[str] = set()
    for reason in reasons:
        if reason.rule not in seen:  # a rule that matched in subject and body counts once
            seen.add(reason.rule)
            scores[reason.label] += reason.weight

    is_reply = bool(message.in_reply_to) or bool(_REPLY_SUBJECT.match(subject))
    from_user = _from_user(message, user_addresses)
    eligible: list[str] = []
    for label in LABELS:
        policy = compiled.policies.get(label, LabelPolicy())
        if scores[label] < policy.min_score:
            continue
        if policy.requires_reply and not is_reply:
            continue
        context = compiled.context.get(label)
        if context is not None and not (context.search(body) or context.search(subject)):
            continue
        if label == "rejection" and from_user is not None:
            continue
        eligible.append(label)

    beaten = {
        lost for lb in eligible for lost in compiled.policies.get(lb, LabelPolicy()).wins_over
    }
    contenders = [lb for lb in eligible if lb not in beaten] or eligible
    label = max(contenders, key=lambda lb: (scores[lb], -_TIE_ORDER[lb]), default="other")
    confidence = _confidence(label, scores, compiled, rules.confidence_scale)

    chosen = [r for r in reasons if r.label == label]
    runner_up = max(
        (lb for lb in LABELS if lb != label and scores[lb] > 0),
        key=lambda lb: (scores[lb], -_TIE_ORDER[lb]),
        default=None,
    )
    against = [r for r in reasons if r.label == runner_up]
    if from_user is not None:
        chosen.insert(0, Reason(from_user, "from.user", label, 0.0, "from", 0, len(from_user)))
    ordered = sorted(chosen, key=lambda r: (-r.weight, r.where, r.start)) + sorted(
        against, key=lambda r: (-r.weight, r.where, r.start)
    )

    sender = _sender(message, compiled)
    # Company and role only matter for job mail; skipping them keeps ordinary mail cheap.
    company, role = (
        _extract_company_role(subject, body, message, sender, rules)
        if label != "other"
        else (None, None)
    )
    return Verdict(
        label=label,
        confidence=confidence,
        reasons=tuple(ordered[:10]),
        company=company,
        role=role,
        contact_name=sender.contact_name or _signature_name(body, sender.kind),
        contact_addr=sender.contact_addr,
        sender_kind=sender.kind,
        ats=sender.ats,
    )


def _confidence(
    label: str, scores: Mapping[str, float], compiled: _Compiled, scale: float
) -> float:
    """A calibrated-ish confidence from how far the winner clears its bar and its rivals."""

    def sigmoid(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    if (
        label == "other"
        and scores["other"] < compiled.policies.get("other", LabelPolicy()).min_score
    ):
        # Nothing won: the closer any label came to its bar, the less sure "other" is.
        gap = min(
            compiled.policies.get(lb, LabelPolicy()).min_score - scores[lb]
            for lb in LABELS
            if lb != "other"
        )
        value = sigmoid((gap + 0.5) / scale)
    else:
        top = scores[label]
        rival = max((s for lb, s in scores.items() if lb != label), default=0.0)
        bar = compiled.policies.get(label, LabelPolicy()).min_score
        value = sigmoid(min(top - bar + 1.0, top - rival) / scale)
    return round(min(max(value, 0.01), 0.99), 3)


def _from_user(message: Message, user_addresses: Collection[str]) -> str | None:
    if not user_addresses or message.from_ is None:
        return None
    mine = {a.strip().lower() for a in user_addresses}
    return message.from_.addr if message.from_.addr.lower() in mine else None


# --------------------------------------------------------------------------------------
# Sender and extraction
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sender:
    kind: SenderKind
    ats: str | None
    contact_name: str | None
    contact_addr: str | None
    display: str


def _ats_for(domain: str, ats: Mapping[str, str]) -> str | None:
    parts = domain.lower().split(".")
    for i in range(len(parts) - 1):
        name = ats.get(".".join(parts[i:]))
        if name is not None:
            return name
    return None


def _sender(message: Message, compiled: _Compiled) -> _Sender:
    sender = message.from_
    if sender is None or not sender.addr:
        return _Sender("unknown", None, None, None, "")
    local, _, domain = sender.addr.lower().partition("@")
    ats = _ats_for(domain, compiled.ats)
    no_reply = bool(compiled.no_reply.match(local))
    kind: SenderKind = "ats" if ats else ("no-reply" if no_reply else "person")
    # Replies go to a human: Reply-To first, then From unless nobody reads it.
    addr: str | None = None
    for candidate in (*message.reply_to, sender):
        c_local = candidate.addr.lower().partition("@")[0]
        if candidate.addr and not compiled.no_reply.match(c_local):
            addr = candidate.addr
            break
    name = sender.name.strip().strip('"') or None
    if name is not None and (kind != "person" or _looks_like_team(name)):
        name = None
    return _Sender(kind, ats, name, addr, sender.name)


_TEAM_WORDS = re.compile(
    r"\b(?:team|recruit\w*|talent|careers?|jobs?|hiring|hr|human resources|people|"
    r"notifications?|no-?reply|acquisition|staffing|via)\b",
    re.IGNORECASE,
)


def _looks_like_team(name: str) -> bool:
    return bool(_TEAM_WORDS.search(name)) or "@" in name


_NAME_WORD = r"[A-Z][\w&'’.-]*"
_ORG = rf"(?:{_NAME_WORD}|\[[^\]\n]{{1,40}}\]|\{{\{{?[^}}\n]{{1,40}}\}}?\}}|&|of|and|the|de|for)"
_TEAM = (
    r"(?:[Rr]ecruiting|[Rr]ecruitment|[Tt]alent [Aa]cquisition|[Hh]iring|HR|[Pp]eople|"
    r"[Cc]areers|[Hh]uman [Rr]esources)"
)
_COMPANY_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.MULTILINE)
    for p in (
        # "the Analyst position at Acme", "an opening with Acme"
        rf"\b(?:position|role|opening|opportunity|job|internship|vacancy) (?:at|with) "
        rf"(?P<company>{_ORG}(?: {_ORG}){{0,5}})",
        # "your application to Acme", "interest in Acme", "joining Acme"
        rf"\b(?:[Aa]pplication|[Aa]pplying|[Aa]pplied|[Ii]nterest|[Ii]nterview(?:ing)?|"
        rf"[Cc]areer|[Ee]mployment|[Jj]oin(?:ing)?) (?:to|with|at|in) (?:the )?"
        rf"(?P<company>{_ORG}(?: {_ORG}){{0,5}})",
        # "The Acme Recruiting Team"
        rf"\b[Tt]he (?P<company>{_ORG}(?: {_ORG}){{0,4}}) {_TEAM} [Tt]eam\b",
        # a sign-off line or display name "Acme Talent Acquisition"
        rf"^(?P<company>{_NAME_WORD}(?: {_ORG}){{0,4}}) {_TEAM}(?: [Tt]eam)?\s*$",
    )
)
_ROLE = r"(?P<role>[A-Z0-9\[{(][^\n.,;:!?]{1,80}?)"
_ROLE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        rf"\b(?:the|our|your|an?) {_ROLE} (?:position|role|opening|internship|vacancy)\b",
        rf"\b(?:position|role|post|profile) of {_ROLE}(?= (?:at|with|in|for|on)\b|[.,;\n]|$)",
        rf"\b(?:for|to) (?:the )?{_ROLE} (?:position|role|opening|job)\b",
    )
)
_ROLE_WORD_AFTER = re.compile(
    r"\s+(?:position|role|opening|job|vacancy|internship|program|team\b)", re.IGNORECASE
)
_STOP_COMPANY = {"the", "a", "an", "our", "your", "us", "you", "this", "we", "it", "my", "them"}
_ROLE_STOP = re.compile(
    r"^(?:the|our|this|that|a|an|your|open|available|following|same)\b", re.IGNORECASE
)


def _clean(value: str) -> str | None:
    value = re.split(r"[.!?]\s", value, maxsplit=1)[0]  # never run into the next sentence
    value = value.strip(" \t\"'.,;:-!")
    while value.endswith((" and", " of", " the", " for", " &")):
        value = value.rsplit(" ", 1)[0]
    if not value or value.lower() in _STOP_COMPANY or len(value) > 80:
        return None
    return value


def _extract_company_role(
    subject: str, body: str, message: Message, sender: _Sender, rules: Rules
) -> tuple[str | None, str | None]:
    head = body[:4000]
    tail = body[-1500:]
    company: str | None = None
    for text in (subject, head, tail):
        for pattern in _COMPANY_PATTERNS:
            for m in pattern.finditer(text):
                # "interest in the Data Analyst role": a role, not a company.
                if _ROLE_WORD_AFTER.match(text, m.end()):
                    continue
                company = _clean(m.group("company"))
                if company:
                    break
            if company:
                break
        if company:
            break
    if company is None and sender.display:
        signed = _COMPANY_PATTERNS[3].match(sender.display.strip().strip('"'))
        if signed:
            company = _clean(signed.group("company"))
    if company is None and message.from_ is not None and sender.kind == "person":
        domain = message.from_.addr.lower().partition("@")[2]
        if (
            domain
            and domain not in rules.freemail_domains
            and not _ats_for(domain, rules._compiled.ats)
        ):
            parts = domain.split(".")
            company = parts[-2].capitalize() if len(parts) >= 2 else None
    role: str | None = None
    for text in (subject, head):
        for pattern in _ROLE_PATTERNS:
            for m in pattern.finditer(text):
                candidate = _clean(m.group("role"))
                if candidate and not _ROLE_STOP.match(candidate) and len(candidate.split()) <= 9:
                    role = candidate
                    break
            if role:
                break
        if role:
            break
    return company, role


_SIGN_OFF = re.compile(
    r"^[ \t]*(?:best|kind|warm|warmest)?[ \t]*(?:regards|wishes|sincerely|thanks|thank you|cheers|"
    r"best|yours(?: sincerely| truly)?|respectfully|all the best)[ \t]*[,.!]?[ \t]*\n+[ \t]*"
    r"(?P<name>[A-Z][a-zA-Z'’-]+(?: [A-Z][a-zA-Z'’.-]+){0,2})[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


def _signature_name(body: str, kind: SenderKind) -> str | None:
    """The name under the sign-off, when a person signed the mail."""
    for m in _SIGN_OFF.finditer(body[-1500:]):
        name = m.group("name").strip()
        if name[0].isupper() and not _looks_like_team(name) and name.lower() not in _STOP_COMPANY:
            return name
    return None


# --------------------------------------------------------------------------------------
# Convenience for rows without a raw message (JSONL, tests)
# --------------------------------------------------------------------------------------


def message_from_text(
    subject: str | None,
    sender: str | None,
    body: str,
    *,
    key: str = "",
    headers: Mapping[str, str] | None = None,
    in_reply_to: str | None = None,
) -> Message:
    """A Message built from plain fields, with quoted older mail split off the body."""
    from tasks.parse import split_quoted

    from_: Address | None = None
    if sender:
        name, addr = email.utils.parseaddr(sender)
        if addr or name:
            from_ = Address(name=name, addr=addr.lower())
    new_text, quoted = split_quoted(body)
    return Message(
        key=key,
        message_id=None,
        subject=subject or "",
        from_=from_,
        text=body,
        new_text=new_text,
        quoted_text=quoted,
        in_reply_to=in_reply_to,
        headers=dict(headers or {}),
    )


def classify_text(
    subject: str | None,
    sender: str | None,
    body: str,
    *,
    key: str = "",
    rules: Rules | None = None,
    user_addresses: Collection[str] = (),
    headers: Mapping[str, str] | None = None,
) -> Verdict:
    """``classify`` for a subject, a From line and a body, as in a JSONL row."""
    message = message_from_text(subject, sender, body, key=key, headers=headers)
    return classify(message, rules=rules, user_addresses=user_addresses)
