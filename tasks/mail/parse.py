"""Raw RFC 822 bytes to a ``Message``, tolerant of the mail found in real inboxes.

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

import email
import email.message
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import NamedTuple

from onward.tasks.errors import MalformedMessageError
from onward.tasks.mail.decoding import (
    _cte_decode,
    _decode_bytes,
    _decode_words,
    _header_text,
    _normalise_space,
    unfold_header,
)
from onward.tasks.mail.html import html_to_text
from onward.tasks.mail.message import Address, Message
from onward.tasks.mail.message_ids import message_id_list, normalise_message_id
from onward.tasks.mail.quoting import split_quoted

__all__ = [
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


# --------------------------------------------------------------------------- helpers


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
    header_block: bytes = b"",
) -> str:
    """The ledger key: the normalised Message-ID, else a sha256 of stable raw fields.

    Pass the raw (still RFC 2047-encoded) Date, From and Subject values and the start of
    the body as fetched; only the first 1 KiB of the body counts, carriage returns ignored.
    """
    normalised = normalise_message_id(msg_id)
    if normalised:
        return normalised
    if isinstance(body_sample, str):
        body_sample = body_sample.encode("utf-8", "surrogateescape")
    digest = hashlib.sha256()
    for part in (date, from_, subject):
        digest.update(_normalise_space(unfold_header(part or "")).encode("utf-8", "replace"))
        digest.update(b"\x00")
    digest.update(body_sample[:_SAMPLE_BYTES].replace(b"\r", b""))
    if not (date or from_ or subject):
        # Nothing stable to tell it apart by: its whole header block has to.
        digest.update(b"\x00" + header_block[: _SAMPLE_BYTES * 8].replace(b"\r", b""))
    return "sha256:" + digest.hexdigest()


# ----------------------------------------------------------------------- HTML to text

# str.find and one re.split instead of html.parser.HTMLParser: the parser runs Python
# code for every tag and attribute (over 1 ms for a table-heavy 3 KB rejection mail on
# a slow core), while mail HTML only needs one decision per tag: drop with its content,
# line break, or nothing. Attribute values containing ">" are the accepted casualty.


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
    if b"\n" not in raw[: _SAMPLE_BYTES * 8] and b"\r" in raw:
        # Old Mac line endings (CR only): without this the whole message is one header line.
        raw = raw.replace(b"\r", b"\r\n")

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

    message_id = normalise_message_id(header("message-id"))
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
        header_block=raw[:body_start],
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
        delivered_to=_addresses(all_headers("delivered-to"), "delivered-to", defects),
        date=_parse_date(raw_date, defects),
        in_reply_to=normalise_message_id(in_reply_to_raw),
        references=message_id_list(references_raw),
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
