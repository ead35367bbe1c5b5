"""Raw RFC 822 bytes to ``tasks.message.Message``, tolerant of the mail found in real inboxes.

Speed shapes the design (a sync parses thousands of messages). ``email.policy.default``
re-parses Content-Type with its full RFC 5322 grammar each time the parser asks for the
content type, which alone caps throughput below 1,000 messages/s, so:

* a message whose header block is regular and whose body is a single part has its
  headers split here and its body decoded directly;
* anything multipart or irregular goes through ``email.message_from_bytes`` with a
  raw-header compat32 policy, which also reports MIME defects;
* either way headers are decoded with ``email.header.decode_header`` and ``email.utils``,
  with explicit fallbacks for unknown charsets, raw 8-bit bytes and unparsable values.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.message
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.header import decode_header
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime
from html import unescape as html_unescape
from typing import NamedTuple

from tasks.errors import MalformedMessageError
from tasks.message import Address, Message

__all__ = [
    "decode_partial",
    "html_to_text",
    "message_key",
    "parse_message",
    "split_quoted",
    "unfold_header",
]


class _RawHeaderPolicy(Compat32):
    """compat32, but header values come back as the raw (surrogate-escaped) strings."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        # compat32 wraps values holding 8-bit bytes in Header objects whose str() loses
        # the bytes; keeping the raw string lets _header_text decode them properly.
        return value


_POLICY = _RawHeaderPolicy()

# Headers that classification and reply rules look at, besides any "x-onward-*".
_KEPT_HEADERS = frozenset(
    {
        "list-id",
        "list-unsubscribe",
        "precedence",
        "auto-submitted",
        "x-auto-response-suppress",
        "return-path",
        "x-mailer",
        "content-type",
    }
)

_MAX_DEPTH = 32
_MAX_PARTS = 500
_SAMPLE_BYTES = 1024

_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_WS_RE = re.compile(r"\s+")
_MSGID_RE = re.compile(r"<([^<>]+)>")
_BARE_ID_RE = re.compile(r"[^\s<>@]+@[^\s<>@]+")
_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_LEADING_BLANK_RE = re.compile(rb"[\r\n]*")
_NON_SPACE_RE = re.compile(rb"\S")
_SIMPLE_ADDR_RE = re.compile(
    r'[ \t]*(?:(?:"(?P<q>(?:[^"\\]|\\.)*)"|(?P<n>[^",<>()\\;:@\[\]]*?))[ \t]*'
    r"<(?P<a>[^<>\s\"(),;:\\]+)>|(?P<b>[^\s<>\"(),;:\\]+))[ \t]*"
)
_QUOTED_PAIR_RE = re.compile(r"\\(.)")
_HAS_SPACE_RE = re.compile(r"\s")
_FIELD_RE = re.compile(r"([\x21-\x39\x3b-\x7e]+):[ \t]*(.*)", re.DOTALL)
_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/=]+")
_QP_TAIL_RE = re.compile(rb"=(?:[0-9A-Fa-f]|\r)?\Z")


# --------------------------------------------------------------------------- helpers


def unfold_header(value: str) -> str:
    """Undo RFC 5322 folding and drop stray line breaks."""
    if "\n" not in value and "\r" not in value:
        return value
    value = _FOLD_RE.sub("", value)
    return value.replace("\r", "").replace("\n", " ")


def _normalise_space(value: str) -> str:
    return _WS_RE.sub(" ", value).strip()


def _codec_name(charset: str | None) -> str | None:
    """A Python codec name for a MIME charset, or None when there is no usable one."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    if not name:
        return None
    # Text labelled latin-1 is very often cp1252 in practice, and both agree wherever
    # the label is right.
    if name in ("iso-8859-1", "iso8859-1", "latin-1", "latin1", "iso_8859-1"):
        return "cp1252"
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    # "base64", "rot13" and friends are codecs but not text encodings.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _decode_bytes(data: bytes, charset: str | None, *, final: bool = True) -> tuple[str, bool]:
    """Decode body bytes; returns (text, used_fallback). ``final=False`` drops a cut tail."""
    codec = _codec_name(charset)
    fallback = charset is not None and bool(charset.strip()) and codec is None
    if codec == "ascii":
        # 8-bit text labelled us-ascii is mislabelled; guess like for unlabelled text.
        codec = None
    if codec is None or codec == "utf-8":
        try:
            return _incremental(data, "utf-8", "strict", final), fallback
        except UnicodeDecodeError:
            pass
        if codec is None and not fallback:
            # No charset at all and not utf-8: legacy Western mail is the likely case.
            return _incremental(data, "cp1252", "replace", final), False
        return _incremental(data, "utf-8", "replace", final), fallback
    try:
        return _incremental(data, codec, "replace", final), False
    except Exception:  # a broken codec must not stop parsing
        return _incremental(data, "utf-8", "replace", final), True


def _incremental(data: bytes, codec: str, errors: str, final: bool) -> str:
    if final:
        return data.decode(codec, errors)
    decoder = codecs.getincrementaldecoder(codec)(errors)
    text = decoder.decode(data, final=False)
    if not isinstance(text, str):  # pragma: no cover - guarded by _codec_name
        raise TypeError(codec)
    return text


def _b64decode(data: bytes) -> bytes:
    data = _B64_JUNK_RE.sub(b"", data)
    # Padding in the middle (concatenated chunks) or a cut end: decode what is whole.
    data = data[: len(data) - len(data) % 4]
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        out = bytearray()
        for start in range(0, len(data), 4):
            try:
                out += binascii.a2b_base64(data[start : start + 4])
            except (binascii.Error, ValueError):
                continue
        return bytes(out)


def _cte_decode(data: bytes, cte: str | None) -> bytes:
    kind = (cte or "").strip().lower()
    if kind == "base64":
        return _b64decode(data)
    if kind == "quoted-printable":
        return binascii.a2b_qp(_QP_TAIL_RE.sub(b"", data))
    return data


def decode_partial(data: bytes, *, cte: str | None, charset: str | None) -> str:
    """Decode a body part that may be cut at any byte; never raises."""
    try:
        text, _ = _decode_bytes(_cte_decode(data, cte), charset, final=False)
    except Exception:  # last resort: nothing about the input may raise
        return data.decode("utf-8", "replace")
    return text


def _header_text(raw: str, name: str, defects: list[str]) -> str:
    """Raw header value to text: 8-bit bytes decoded, folding undone, RFC 2047 not yet."""
    value = unfold_header(raw)
    if value.isascii():
        return value
    data = value.encode("utf-8", "surrogateescape")
    defects.append(f"8bit-header:{name}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _decode_words(value: str, name: str, defects: list[str]) -> str:
    """Decode RFC 2047 encoded words, surviving unknown charsets and bad encodings."""
    if "=?" not in value:
        return value
    try:
        chunks = decode_header(value)
    except Exception:
        defects.append(f"bad-encoded-word:{name}")
        return value
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None or charset == "unknown-8bit":
            # decode_header hands back unencoded runs as raw-unicode-escape bytes.
            out.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            text, fell_back = _decode_bytes(chunk, charset)
            if fell_back:
                defects.append(f"charset-fallback:{charset}")
            out.append(text)
    return "".join(out)


def _norm_msgid(value: str | None) -> str | None:
    if not value:
        return None
    found = _MSGID_RE.search(value)
    if found:
        inner = "".join(found.group(1).split())
        return f"<{inner}>" if inner else None
    bare = _BARE_ID_RE.search(value)
    return f"<{bare.group(0)}>" if bare else None


def _msgid_list(value: str) -> tuple[str, ...]:
    ids = ["".join(m.split()) for m in _MSGID_RE.findall(value)]
    if not ids:
        ids = _BARE_ID_RE.findall(value)
    seen: dict[str, None] = {}
    for raw_id in ids:
        if raw_id:
            seen.setdefault(f"<{raw_id}>", None)
    return tuple(seen)


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """Fast path for the common "Name <addr>, addr" shapes; None means use getaddresses."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    end = len(value)
    while True:
        m = _SIMPLE_ADDR_RE.match(value, pos)
        if m is None:
            return None
        quoted, plain, angle, bare = m.group("q", "n", "a", "b")
        if bare is not None:
            pairs.append(("", bare))
        else:
            name = quoted if quoted is not None else plain
            if "\\" in name:
                name = _QUOTED_PAIR_RE.sub(r"\1", name)
            pairs.append((name, angle))
        pos = m.end()
        if pos >= end:
            return pairs
        if value[pos] != ",":
            return None
        pos += 1


def _addresses(values: Iterable[str], name: str, defects: list[str]) -> tuple[Address, ...]:
    out: list[Address] = []
    for value in values:
        if not value.strip():
            continue
        pairs = _simple_addresses(value)
        if pairs is None:
            try:
                pairs = getaddresses([value])
            except Exception:
                defects.append(f"bad-address:{name}")
                continue
        found = False
        junk = False
        for display, addr in pairs:
            addr = addr.strip()
            if not addr:
                continue
            if "@" not in addr or addr.startswith("@") or _HAS_SPACE_RE.search(addr):
                junk = True
                continue
            if display:
                display = _normalise_space(_decode_words(display, name, defects))
            out.append(Address(display, addr.lower()))
            found = True
        # "undisclosed-recipients:;" is an empty group, not a defect, even when mangled.
        if (junk or not found) and not (":" in value and ";" in value):
            defects.append(f"bad-address:{name}")
    return tuple(out)


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
    if value is None:
        return None
    if not value.strip():
        defects.append("bad-date")
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("bad-date")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def message_key(
    msg_id: str | None,
    *,
    date: str | None,
    from_: str | None,
    subject: str | None,
    body_sample: bytes | str = b"",
) -> str:
    """The ledger key: the normalised Message-ID, else a sha256 of stable raw fields.

    Pass the raw (still RFC 2047-encoded) Date, From and Subject values and the start of
    the body as fetched; only the first 1 KiB of the body counts, carriage returns ignored.
    """
    normalised = _norm_msgid(msg_id)
    if normalised:
        return normalised
    if isinstance(body_sample, str):
        body_sample = body_sample.encode("utf-8", "surrogateescape")
    digest = hashlib.sha256()
    for part in (date, from_, subject):
        digest.update(_normalise_space(unfold_header(part or "")).encode("utf-8", "replace"))
        digest.update(b"\x00")
    digest.update(body_sample[:_SAMPLE_BYTES].replace(b"\r", b""))
    return "sha256:" + digest.hexdigest()


# ----------------------------------------------------------------------- HTML to text

# str.find and one re.split instead of html.parser.HTMLParser: the parser runs Python
# code for every tag and attribute (over 1 ms for a table-heavy 3 KB rejection mail on
# a slow core), while mail HTML only needs one decision per tag: drop with its content,
# line break, or nothing. Attribute values containing ">" are the accepted casualty.
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
    """Readable text from HTML: no scripts/styles, line breaks at blocks; never raises."""
    try:
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
    except Exception:  # nothing in a mail may stop parsing; keep the raw text instead
        text = html
    text = _collapse(text, "  ", " ")
    text = _collapse(_collapse(text, " \n", "\n"), "\n ", "\n")
    return _collapse(text, "\n\n\n", "\n\n").strip()


# ----------------------------------------------------------------------- quote split

_ATTRIBUTION_START_RE = re.compile(
    r"^\s*(?:On|Am|Le|El|Il|Op|Em|Den|Dne|W dniu|På)\s", re.IGNORECASE
)
_ATTRIBUTION_RE = re.compile(
    r"^\s*(?:On|Am|Le|El|Il|Op|Em|Den|Dne|W dniu|På)\s.{0,400}?"
    r"\b(?:wrote|writes|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|escreveu|skrev|"
    r"napsal|napisał)\b[^\n]{0,200}?:\s*$",
    re.IGNORECASE | re.DOTALL,
)
_WROTE_LINE_RE = re.compile(
    r"\b(?:wrote|writes|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|escreveu|skrev)"
    r"\b[^\n]{0,120}:\s*$",
    re.IGNORECASE,
)
_ORIGINAL_RE = re.compile(
    r"^\s*-{2,}\s*(?:Original\s+Message|Ursprüngliche\s+Nachricht|Message\s+d'origine|"
    r"Mensaje\s+original|Messaggio\s+originale|Oorspronkelijk\s+bericht|"
    r"Originalmeddelande|Oprindelig\s+meddelelse|Opprinnelig\s+melding|"
    r"Alkuperäinen\s+viesti|Forwarded\s+message|Weitergeleitete\s+Nachricht|"
    r"Message\s+transféré|Mensaje\s+reenviado)\s*-*\s*$"
    r"|^\s*Begin\s+forwarded\s+message:\s*$",
    re.IGNORECASE,
)
_FROM_LINE_RE = re.compile(
    r"^\s*\*?(?:From|De|Von|Van|Da|Från|Fra|Od|Lähettäjä)\s*:\*?\s*\S", re.IGNORECASE
)
_SENT_LINE_RE = re.compile(
    r"^\s*\*?(?:Sent|Date|Envoyé|Gesendet|Datum|Enviado|Fecha|Inviato|Data|Verzonden|"
    r"Skickat|Sendt|Lähetetty|Odesláno|Wysłano|To|Subject|An|Betreff|À|Objet|Para|Asunto)"
    r"\s*:",
    re.IGNORECASE,
)
_HEADERISH_RE = re.compile(
    _FROM_LINE_RE.pattern + "|" + _SENT_LINE_RE.pattern + r"|^\s*\*?Cc\s*:", re.IGNORECASE
)
_SEPARATOR_RE = re.compile(r"^\s*_{8,}\s*$")
_SIGNATURE_RE = re.compile(r"^--[ \t]?$")
_CANDIDATE_RE = re.compile(
    r"[ \t]*(?:>|(?:On|Am|Le|El|Il|Op|Em|Den|Dne|W dniu|På)\s|--|_{8}|Begin\s|"
    r"\*?(?:From|De|Von|Van|Da|Från|Fra|Od|Lähettäjä)\s*:)",
    re.IGNORECASE,
)


def _next_nonblank(lines: list[str], start: int, limit: int) -> int | None:
    for i in range(start, min(len(lines), start + limit)):
        if lines[i].strip():
            return i
    return None


def _is_outlook_header(lines: list[str], i: int) -> bool:
    if not _FROM_LINE_RE.match(lines[i]):
        return False
    return any(_SENT_LINE_RE.match(line) for line in lines[i + 1 : i + 5])


def _attribution_end(lines: list[str], i: int) -> int | None:
    """Index of the last line of an "On <date>, <name> wrote:" header starting at line i."""
    if not _ATTRIBUTION_START_RE.match(lines[i]):
        return None
    joined = lines[i]
    # Clients wrap long attributions, so the header may run over up to three lines.
    for last in range(i, min(len(lines), i + 3)):
        if last > i:
            joined = joined + " " + lines[last].strip()
        if len(joined) > 500:
            return None
        if _ATTRIBUTION_RE.match(joined):
            return last
    return None


def _block_start(lines: list[str], i: int) -> bool:
    """Whether line i opens unprefixed older mail (Outlook style) that runs to the end."""
    line = lines[i]
    if _ORIGINAL_RE.match(line):
        return True
    if _SEPARATOR_RE.match(line):
        nxt = _next_nonblank(lines, i + 1, 3)
        return nxt is not None and _FROM_LINE_RE.match(lines[nxt]) is not None
    return _is_outlook_header(lines, i)


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def split_quoted(text: str) -> tuple[str, str]:
    """Split text into (new text, quoted older mail); a trailing signature leaves new text.

    Lines quoted with ">" go to the quoted side wherever they are, so interleaved answers
    stay new text. A reply header ("On ... wrote:", "-----Original Message-----",
    Outlook's From:/Sent: block) followed by unprefixed text starts quoted mail that runs
    to the end.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    new: list[str] = []
    quoted: list[str] = []
    in_signature = False
    candidate = _CANDIDATE_RE.match
    i = 0
    count = len(lines)
    while i < count:
        line = lines[i]
        # One cheap match rules out almost every line before the costlier checks.
        if candidate(line):
            if _is_quote(line):
                quoted.append(line)
                i += 1
                continue
            last = _attribution_end(lines, i)
            if last is not None:
                nxt = _next_nonblank(lines, last + 1, 3)
                if nxt is not None and _is_quote(lines[nxt]):
                    quoted.extend(lines[i : last + 1])
                    i = last + 1
                    continue
                quoted.extend(lines[i:])
                break
            if _block_start(lines, i):
                # Bottom-posters keep the Outlook Express header above ">" quotes and
                # answer below them; only then is the rest not all quoted.
                end = i + 1
                while end < count and (not lines[end].strip() or _HEADERISH_RE.match(lines[end])):
                    end += 1
                if end < count and _is_quote(lines[end]):
                    quoted.extend(lines[i:end])
                    i = end
                    continue
                quoted.extend(lines[i:])
                break
            if _SIGNATURE_RE.match(line):
                in_signature = True
        if line.rstrip().endswith(":") and _WROTE_LINE_RE.search(line):
            nxt = _next_nonblank(lines, i + 1, 3)
            if nxt is not None and _is_quote(lines[nxt]):
                quoted.append(line)
                i += 1
                continue
        if not in_signature:
            new.append(line)
        i += 1
    return _trim_lines(new), _trim_lines(quoted)


def _trim_lines(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip("\n")


# --------------------------------------------------------------------- body selection


def _disposition(part: email.message.Message) -> str:
    value = part.get("content-disposition")
    if not value:
        return ""
    return str(value).split(";", 1)[0].strip().lower()


class _Leaf(NamedTuple):
    """A text part chosen as (part of) the body, still transfer-encoded."""

    subtype: str
    data: bytes
    cte: str
    charset: str | None


def _leaf(subtype: str, part: email.message.Message) -> _Leaf:
    # decode=True undoes the transfer encoding and, unlike decode=False, leaves 8-bit
    # bytes alone instead of decoding them with the declared charset.
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if not isinstance(data, bytes):
        data = b""
    return _Leaf(subtype, data, "", part.get_content_charset())


def _leaf_text(leaf: _Leaf, defects: list[str], limit: int) -> tuple[str, bool]:
    """Decoded text of a leaf, cut near ``limit`` characters; returns (text, truncated)."""
    data = _cte_decode(leaf.data, leaf.cte)
    truncated = False
    # No charset needs more than 4 bytes a character, so this keeps enough to fill limit.
    if len(data) > limit * 4:
        data = data[: limit * 4]
        truncated = True
    try:
        text, fell_back = _decode_bytes(data, leaf.charset, final=not truncated)
    except Exception:
        text, fell_back = data.decode("utf-8", "replace"), True
    if fell_back:
        defects.append(f"charset-fallback:{leaf.charset}")
    return text, truncated


def _find_body(
    part: email.message.Message, depth: int, budget: list[int]
) -> list[tuple[str, email.message.Message]]:
    """Text parts that make up the body, as (subtype, part); plain preferred in alternatives."""
    budget[0] -= 1
    if depth > _MAX_DEPTH or budget[0] < 0 or _disposition(part) == "attachment":
        return []
    ctype = part.get_content_type()
    maintype, _, subtype = ctype.partition("/")
    if maintype == "text":
        return [(subtype, part)] if subtype in ("plain", "html") else []
    if maintype != "multipart" or not part.is_multipart():
        return []
    children = part.get_payload()
    if not isinstance(children, list):
        return []
    found = [
        _find_body(child, depth + 1, budget)
        for child in children
        if isinstance(child, email.message.Message)
    ]
    found = [f for f in found if f]
    if not found:
        return []
    if subtype == "alternative":
        for wanted in ("plain", "html"):
            for candidate in found:
                if candidate[0][0] == wanted and _has_text(candidate):
                    return candidate
        return found[0]
    # multipart/mixed and friends: Apple Mail splits one body around inline images, so
    # consecutive parts of the first part's kind are joined.
    kind = found[0][0][0]
    return [item for group in found for item in group if item[0] == kind]


def _has_text(candidate: list[tuple[str, email.message.Message]]) -> bool:
    for _, part in candidate:
        payload = part.get_payload()
        if isinstance(payload, str) and payload.strip():
            return True
    return False


# -------------------------------------------------------------------------- messages


def _split_headers(raw: bytes) -> tuple[dict[str, list[str]], int] | None:
    """Headers and body offset of a message with a regular header block, else None.

    The email package spends most of its time on headers; a regular block (every line a
    field or a continuation, then a blank line) is split here instead, and anything
    irregular is left to the email package and its defect reporting.
    """
    end = _HEADER_END_RE.search(raw)
    if end is None:
        head_end = body_start = len(raw)
    else:
        head_end, body_start = end.start(), end.end()
    lines = raw[:head_end].decode("ascii", "surrogateescape").split("\n")
    if lines[0].startswith("From "):
        del lines[0]
    fields: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.endswith("\r"):
            line = line[:-1]
        first = line[:1]
        if first == " " or first == "\t":
            if not fields:
                return None
            fields[-1][1].append(line)
            continue
        match = _FIELD_RE.match(line)
        if match is None:
            return None
        fields.append((match.group(1).lower(), [match.group(2)]))
    headers: dict[str, list[str]] = {}
    for name, parts in fields:
        headers.setdefault(name, []).append("\n".join(parts))
    return headers, body_start


def _collect_defects(msg: email.message.Message, defects: list[str]) -> None:
    budget = _MAX_PARTS
    for part in msg.walk():
        for defect in part.defects:
            defects.append(type(defect).__name__)
        budget -= 1
        if budget <= 0:
            break


def _content_type(value: str | None) -> email.message.Message:
    """A bare message carrying only Content-Type, to reuse the email package's param parsing."""
    holder = email.message.Message(policy=_POLICY)
    if value is not None:
        holder["Content-Type"] = unfold_header(value)
    return holder


def parse_message(raw: bytes, *, max_text: int = 65536) -> Message:
    """Parse raw RFC 822 bytes into a Message; only unusable input raises."""
    lead = _LEADING_BLANK_RE.match(raw)
    if lead is not None and lead.end():
        # Some fetch paths prepend blank lines; the email package would see no headers.
        raw = raw[lead.end() :]
    if not raw or _NON_SPACE_RE.search(raw) is None:
        raise MalformedMessageError("empty message")

    defects: list[str] = []
    leaves: list[_Leaf] = []
    split = _split_headers(raw)
    msg: email.message.Message | None = None
    if split is not None:
        headers, body_start = split
        ctype_values = headers.get("content-type")
        holder = _content_type(ctype_values[0] if ctype_values else None)
        maintype, _, subtype = holder.get_content_type().partition("/")
        disposition = headers.get("content-disposition", [""])[0]
        if maintype in ("multipart", "message"):
            split = None
        elif (
            maintype == "text"
            and subtype in ("plain", "html")
            and disposition.split(";", 1)[0].strip().lower() != "attachment"
        ):
            cte = headers.get("content-transfer-encoding", [""])[0]
            charset = holder.get_content_charset()
            leaves.append(_Leaf(subtype, raw[body_start:], cte, charset))
    if split is None:
        try:
            msg = email.message_from_bytes(raw, policy=_POLICY)
        except Exception as exc:  # the feed parser is lenient; this is hopeless input
            raise MalformedMessageError(f"unparsable message: {exc}") from exc
        # One pass over the headers: Message.get() scans the whole list on every call.
        headers = {}
        for name, value in msg.items():
            headers.setdefault(name.lower(), []).append(str(value))
        body = _HEADER_END_RE.search(raw)
        body_start = body.end() if body else len(raw)
        leaves = [_leaf(kind, part) for kind, part in _find_body(msg, 0, [_MAX_PARTS])]
    if not headers:
        raise MalformedMessageError("no mail header at the start of the message")

    def header(name: str) -> str | None:
        values = headers.get(name)
        return _header_text(values[0], name, defects) if values else None

    def all_headers(name: str) -> list[str]:
        return [_header_text(v, name, defects) for v in headers.get(name, ())]

    raw_subject = header("subject")
    subject = _normalise_space(_decode_words(raw_subject or "", "subject", defects))
    raw_from = header("from")
    from_list = _addresses(all_headers("from"), "from", defects)
    sender_list = _addresses(all_headers("sender"), "sender", defects)

    message_id = _norm_msgid(header("message-id"))
    if message_id is None:
        defects.append("missing-message-id" if "message-id" not in headers else "bad-message-id")
    raw_date = header("date")
    in_reply_to_raw = header("in-reply-to")
    references_raw = header("references")

    kept: dict[str, str] = {}
    for lname, values in headers.items():
        if lname in _KEPT_HEADERS or lname.startswith("x-onward-"):
            text = _header_text(values[0], lname, defects)
            kept[lname] = _decode_words(text, lname, defects).strip()

    text, html_only, truncated = _best_text(leaves, defects, max_text)
    new_text, quoted_text = split_quoted(text)
    if msg is not None:
        _collect_defects(msg, defects)

    key = message_key(
        message_id,
        date=raw_date,
        from_=raw_from,
        subject=raw_subject,
        body_sample=raw[body_start : body_start + _SAMPLE_BYTES],
    )

    return Message(
        key=key,
        message_id=message_id,
        subject=subject,
        from_=from_list[0] if from_list else None,
        sender=sender_list[0] if sender_list else None,
        reply_to=_addresses(all_headers("reply-to"), "reply-to", defects),
        to=_addresses(all_headers("to"), "to", defects),
        cc=_addresses(all_headers("cc"), "cc", defects),
        date=_parse_date(raw_date, defects),
        in_reply_to=_norm_msgid(in_reply_to_raw),
        references=_msgid_list(references_raw) if references_raw else (),
        text=text,
        new_text=new_text,
        quoted_text=quoted_text,
        html_only=html_only,
        truncated=truncated,
        headers=kept,
        defects=tuple(dict.fromkeys(defects)),
    )


def _best_text(leaves: list[_Leaf], defects: list[str], max_text: int) -> tuple[str, bool, bool]:
    """(text, html_only, truncated) for the chosen body parts."""
    if not leaves:
        return "", False, False
    html_only = leaves[0].subtype == "html"
    chunks: list[str] = []
    truncated = False
    remaining = max_text
    for leaf in leaves:
        # HTML loses most of its size in conversion, so read more of it.
        limit = remaining * 8 if html_only else remaining
        chunk, cut = _leaf_text(leaf, defects, limit)
        truncated = truncated or cut
        if html_only:
            chunk = html_to_text(chunk)
        chunk = chunk.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
        chunks.append(chunk)
        remaining -= len(chunk)
        if remaining <= 0:
            break
    text = "\n".join(chunks)
    if len(text) > max_text:
        text = text[:max_text]
        truncated = True
    return text, html_only, truncated
