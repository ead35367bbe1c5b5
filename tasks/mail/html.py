"""HTML mail to readable text, fast and without a dependency."""

from __future__ import annotations

import re
from html import unescape as html_unescape

_INVISIBLE = ("!--", "script", "style", "title", "head", "noscript", "template", "svg", "textarea")
_TAG_NAME_ENDS = frozenset({" ", ">", "/", "\t", "\n", "\r", "\f", ""})
_PARAGRAPH_TAGS = "p h1 h2 h3 h4 h5 h6 table blockquote ul ol dl pre"
_BLOCK_TAGS = (
    "br div li tr dt dd hr section article header footer nav aside address figure "
    "figcaption form fieldset main center caption option"
)
_BREAKS: dict[str, str] = dict.fromkeys(_BLOCK_TAGS.split(), "\n")
_BREAKS.update(dict.fromkeys(_PARAGRAPH_TAGS.split(), "\n\n"))
_BREAKS.update({"td": " ", "th": " "})
_BREAKS.update({"/" + tag: brk for tag, brk in _BREAKS.items() if tag != "br"})
# Splits into text, tag name ("p", "/p"), text, ...; comments and doctypes are gone by then.
_TAG_SPLIT_RE = re.compile(r"<(/?[A-Za-z][A-Za-z0-9:-]*)[^<>]*>?|<[!?/][^<>]*>?")
_WS_TABLE = dict.fromkeys(map(ord, "\t\r\n\f\v\xa0"), " ") | {0x200B: None}
_ENTITY_WS_TABLE = dict.fromkeys(map(ord, "\t\r\f\v\xa0"), " ") | {0x200B: None}


class _Finder:
    """str.find over lower-cased HTML that remembers misses, keeping broken HTML linear."""

    def __init__(self, lower: str) -> None:
        self.lower = lower
        self.missing: set[str] = set()

    def find(self, needle: str, start: int) -> int:
        if needle in self.missing:
            return -1
        at = self.lower.find(needle, start)
        if at < 0:
            self.missing.add(needle)
        return at

    def find_tag(self, name: str, start: int) -> int:
        """Index of the next "<name" that really is that tag (not "<header" for "<head")."""
        needle = "<" + name
        size = len(needle)
        while True:
            at = self.find(needle, start)
            if at < 0 or self.lower[at + size : at + size + 1] in _TAG_NAME_ENDS:
                return at
            start = at + 1

    def next_start(self, name: str, start: int) -> int:
        return self.find("<!--", start) if name == "!--" else self.find_tag(name, start)

    def skip(self, name: str, at: int) -> int:
        """Index just after the element (or comment) that starts at ``at``."""
        end = len(self.lower)
        if name == "!--":
            close = self.find("-->", at + 4)
            return close + 3 if close >= 0 else end
        tag_end = self.find(">", at)
        if tag_end < 0:
            return end
        if name == "head":
            # An unclosed <head> ends where <body> starts; without either, keep the rest.
            close = self.find("</head", at)
            body = self.find_tag("body", at)
            if body >= 0 and (close < 0 or body < close):
                return body
            if close < 0:
                return tag_end + 1
        elif self.lower[tag_end - 1] == "/":
            return tag_end + 1
        else:
            close = self.find("</" + name, at)
            if close < 0:
                return end
        close_end = self.find(">", close)
        return close_end + 1 if close_end >= 0 else end


def _drop_invisible(html: str) -> str:
    """Remove comments and elements whose content is never text (script, style, head)."""
    finder = _Finder(html.lower())
    nexts = {name: finder.next_start(name, 0) for name in _INVISIBLE}
    kept: list[str] = []
    pos = 0
    while True:
        for name, at in list(nexts.items()):
            if 0 <= at < pos:
                nexts[name] = finder.next_start(name, pos)
        live = [(at, name) for name, at in nexts.items() if at >= 0]
        if not live:
            break
        at, name = min(live)
        kept.append(html[pos:at])
        pos = finder.skip(name, at)
    kept.append(html[pos:])
    return "".join(kept)


def _collapse(text: str, double: str, single: str) -> str:
    while double in text:
        text = text.replace(double, single)
    return text


def html_to_text(html: str) -> str:
    """Readable text from HTML: no scripts/styles, line breaks at blocks."""
    pieces = _TAG_SPLIT_RE.split(_drop_invisible(html).translate(_WS_TABLE))
    breaks = _BREAKS
    out: list[str] = []
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            out.append(piece)
        elif piece:
            brk = breaks.get(piece.lower())
            if brk:
                out.append(brk)
    text = "".join(out)
    if "&" in text:
        # Entities may produce spaces of their own (&nbsp;, &#10;) but not breaks.
        text = html_unescape(text).translate(_ENTITY_WS_TABLE)
    text = _collapse(text, "  ", " ")
    text = _collapse(_collapse(text, " \n", "\n"), "\n ", "\n")
    return _collapse(text, "\n\n\n", "\n\n").strip()


# ----------------------------------------------------------------------- quote split
