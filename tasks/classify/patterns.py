"""Reading rule patterns: case-insensitive regexes with flexible spaces, and the words
each must contain, so a message is only tested against rules whose words it has."""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet

from onward.tasks.errors import ConfigError


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
