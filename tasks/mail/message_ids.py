"""Message-IDs in one normal form, ``<local@domain>`` without spaces.

The one home of this rule: the ledger's key, the rescan's known-message check (which
reads only the raw header), thread matching and the drafts' sent-reply check must all
agree on what a Message-ID is.
"""

from __future__ import annotations

import hashlib
import re

# Longer ids are stored as a digest of themselves: a header line holds at most 998
# characters (RFC 5322), and so do the ledger's columns, on SQLite and PostgreSQL alike.
MAX_MESSAGE_ID = 250
LONG_ID_DOMAIN = "long-id.onward.invalid"

_MSGID_RE = re.compile(r"<([^<>]+)>")
_BARE_ID_RE = re.compile(r"[^\s<>@]+@[^\s<>@]+")


def normalise_message_id(value: str | None) -> str | None:
    """The first ``<...>`` in ``value`` (inner spaces from folding removed), or a bare
    ``local@domain`` put in angle brackets; None when there is none."""
    if not value:
        return None
    found = _MSGID_RE.search(value)
    if found:
        inner = "".join(found.group(1).split())
        return bounded_id(f"<{inner}>") if inner else None
    bare = _BARE_ID_RE.search(value)
    return bounded_id(f"<{bare.group(0)}>") if bare else None


def bounded_id(message_id: str) -> str:
    """``message_id`` itself, or a stable digest of it when it is absurdly long."""
    if len(message_id) <= MAX_MESSAGE_ID:
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()
    return f"<sha256-{digest}@{LONG_ID_DOMAIN}>"


def message_id_list(value: str | None) -> tuple[str, ...]:
    """Every Message-ID in a References / In-Reply-To value, in order, once each."""
    if not value:
        return ()
    ids = ["".join(m.split()) for m in _MSGID_RE.findall(value)]
    if not ids:
        ids = _BARE_ID_RE.findall(value)
    seen: dict[str, None] = {}
    for raw_id in ids:
        if raw_id:
            seen.setdefault(bounded_id(f"<{raw_id}>"), None)
    return tuple(seen)


def message_id_from_header(header: bytes) -> str | None:
    """The Message-ID of a raw header block (unfolded), in the same normal form the parser
    gives; None when absent."""
    lines = header.replace(b"\r\n", b"\n").split(b"\n")
    for i, line in enumerate(lines):
        if line[:11].lower() == b"message-id:":
            value = line[11:]
            for cont in lines[i + 1 :]:
                if cont[:1] not in (b" ", b"\t"):
                    break
                value += cont
            return normalise_message_id(value.decode("ascii", "replace"))
    return None
