"""Classifier rules as data: loaded from ``config/classifier.toml`` and the user's file,
validated, compiled once."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from onward.tasks.classify.learned import LinearModel, load_model
from onward.tasks.classify.patterns import Hints, _regex, _word_hints
from onward.tasks.classify.verdict import LABELS, Cancel, HeaderRule, LabelPolicy, Rule
from onward.tasks.errors import ConfigError


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
    # Of those, when there are more, only the first head_chars and the last tail_chars
    # (0: all of them).
    head_chars: int = 0
    tail_chars: int = 0
    confidence_scale: float = 1.5
    job_words: frozenset[str] = frozenset()
    # Words that make short mail worth reading though it names no job ("not gonna work
    # out, sorry"): only in mail whose text is at most ``short_mail_chars`` long.
    short_mail_words: frozenset[str] = frozenset()
    short_mail_chars: int = 1500
    # (stage, pattern) latest first, and the pattern that says a stage was not reached.
    stages: tuple[tuple[str, str], ...] = ()
    stage_not_reached: str | None = None
    # Words after which the learned model may not call a message a rejection on its own
    # (the candidate is the one deciding: a withdrawal, their own decline).
    model_veto: str | None = None
    model_veto_sentence: str | None = None
    # The learned half (``learned.py``): when present it decides rejection or not from
    # the words and the rules' scores; without it the rules decide alone.
    model: LinearModel | None = field(default=None, compare=False)
    # Rules the person wrote in their own rules file: what they say is their instruction,
    # which the model weighs but cannot overrule.
    own_rules: frozenset[str] = frozenset()
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
    # Whether any of the words starts a word of a text: None when there are no words.
    job_words: re.Pattern[str] | None
    short_mail_words: re.Pattern[str] | None
    stages: tuple[tuple[str, re.Pattern[str]], ...]
    stage_not_reached: re.Pattern[str] | None
    model_veto: re.Pattern[str] | None
    model_veto_sentence: re.Pattern[str] | None
    # Caches that only ever hold facts: word -> the hint prefixes it starts with, and
    # words that start with none.
    word_hits: dict[str, tuple[str, ...]]
    word_misses: set[str]


def word_starts(words: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern that finds any of ``words`` where a word starts ("role" in "a role", not
    in "controller"), or None for no words. The words share one trie of alternatives, so
    a text is read once, not once per word (the gate reads every message)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # the word ends here: whatever follows also matches

    def emit(node: dict[str, Any]) -> str:
        if "" in node:
            return ""
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items())]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return re.compile(r"(?<![^\W_])" + emit(trie)) if trie else None


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
        job_words=word_starts(rules.job_words),
        short_mail_words=word_starts(rules.short_mail_words),
        stages=tuple((name, _regex(p, f"stages.{name}")) for name, p in rules.stages),
        stage_not_reached=(
            _regex(rules.stage_not_reached, "stages.not_reached")
            if rules.stage_not_reached
            else None
        ),
        model_veto=_regex(rules.model_veto, "settings.model_veto") if rules.model_veto else None,
        model_veto_sentence=(
            _regex(rules.model_veto_sentence, "settings.model_veto_sentence")
            if rules.model_veto_sentence
            else None
        ),
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
    text = resources.files("onward.config").joinpath(DEFAULT_RULES_FILE).read_text(encoding="utf-8")
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
    "lexicon",
    "stages",
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
    merged["stages"] = {**base.get("stages", {}), **user.get("stages", {})}
    merged["lexicon"] = {**base.get("lexicon", {}), **user.get("lexicon", {})}
    for key in ("rule", "cancel", "header_rule"):
        by_id: dict[str, dict[str, Any]] = {r["id"]: dict(r) for r in base.get(key, [])}
        for entry in user.get(key, []):
            if "id" not in entry:
                raise ConfigError(f"{origin}: every [[{key}]] needs an id")
            by_id[entry["id"]] = {**by_id.get(entry["id"], {}), **entry}
        merged[key] = list(by_id.values())
    merged["own_rules"] = sorted(
        {e["id"] for key in ("rule", "header_rule") for e in user.get(key, [])}
    )
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


_SLOT = re.compile(r"\{([a-z_]+)\}")


def _expand(pattern: str, lexicon: Mapping[str, str], origin: str, depth: int = 0) -> str:
    """Replace each ``{name}`` with the lexicon's word class ``(?:...)``, recursively."""
    if depth > 5:
        raise ConfigError(f"classifier rule {origin}: [lexicon] entries nest too deeply")

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in lexicon:
            raise ConfigError(f"classifier rule {origin}: {{{name}}} is not in [lexicon]")
        return "(?:" + _expand(lexicon[name], lexicon, origin, depth + 1) + ")"

    return _SLOT.sub(one, pattern)


def _lexicon(data: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, entry in data.get("lexicon", {}).items():
        words = [entry] if isinstance(entry, str) else list(entry)
        if not re.fullmatch(r"[a-z_]+", name) or not all(isinstance(w, str) for w in words):
            raise ConfigError(f"[lexicon] {name!r}: a lower-case name and a list of patterns")
        out[name] = "|".join(words)
    return out


def _rules_from_data(data: Mapping[str, Any]) -> Rules:
    lexicon = _lexicon(data)
    try:
        settings = data.get("settings", {})
        rules = tuple(
            Rule(
                id=r["id"],
                label=r["label"],
                pattern=_expand(r["pattern"], lexicon, r["id"]),
                weight=float(r["weight"]),
                where=r.get("where", "body"),
                unless=tuple(_expand(u, lexicon, r["id"]) for u in r.get("unless", ())),
                requires=_expand(r["requires"], lexicon, r["id"]) if r.get("requires") else None,
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
    stage_data = dict(data.get("stages", {}))
    not_reached = stage_data.pop("not_reached", None)
    unknown_stages = set(stage_data) - set(_STAGE_ORDER)
    if unknown_stages:
        raise ConfigError(f"[stages]: unknown stage(s) {', '.join(sorted(unknown_stages))}")
    stages = tuple((name, stage_data[name]) for name in _STAGE_ORDER if name in stage_data)
    return Rules(
        rules=rules,
        cancels=cancels,
        header_rules=headers,
        labels=labels,
        ats_domains=tuple(sorted(data.get("ats_domains", {}).items())),
        no_reply_pattern=settings.get("no_reply_pattern", Rules.no_reply_pattern),
        freemail_domains=frozenset(d.lower() for d in settings.get("freemail_domains", ())),
        max_chars=int(settings.get("max_chars", 20000)),
        head_chars=_non_negative(settings, "head_chars"),
        tail_chars=_non_negative(settings, "tail_chars"),
        confidence_scale=float(settings.get("confidence_scale", 1.5)),
        job_words=frozenset(w.lower() for w in settings.get("job_words", ())),
        short_mail_words=frozenset(w.lower() for w in settings.get("short_mail_words", ())),
        short_mail_chars=int(settings.get("short_mail_chars", 1500)),
        stages=stages,
        stage_not_reached=not_reached,
        model_veto=(
            _expand(settings["model_veto"], lexicon, "settings.model_veto")
            if settings.get("model_veto")
            else None
        ),
        model_veto_sentence=(
            _expand(settings["model_veto_sentence"], lexicon, "settings.model_veto_sentence")
            if settings.get("model_veto_sentence")
            else None
        ),
        model=None if settings.get("model") == "none" else load_model(),
        own_rules=frozenset(data.get("own_rules", ())),
    )


# Latest first: the furthest stage a rejection's text says the candidate reached wins.
_STAGE_ORDER = ("final", "interview", "screen", "applied")


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------


def _non_negative(settings: Mapping[str, Any], key: str) -> int:
    value = settings.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(
            f"classifier settings: {key} must be a whole number of characters, 0 or more "
            f"(got {value!r})"
        )
    return value
