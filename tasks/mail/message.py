"""The normalised message every part of onward works on, whatever mailbox it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """One parsed mailbox address; ``addr`` is lower-cased for comparison."""

    name: str
    addr: str

    def __str__(self) -> str:
        return f"{self.name} <{self.addr}>" if self.name else self.addr


@dataclass(frozen=True, slots=True)
class Message:
    """A mail message reduced to what onward needs.

    ``key`` is the ledger key: the Message-ID when the message has one, otherwise a stable
    digest of headers that do not change between fetches (see ``parse.message_key``).
    ``text`` is the best text of the message (text/plain preferred, HTML turned into
    text), capped in size; ``new_text`` is that text without quoted older mail and
    ``quoted_text`` is what was removed.
    """

    key: str
    message_id: str | None
    subject: str
    from_: Address | None
    sender: Address | None = None
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    # Where the mail was delivered (Delivered-To): the person's address on this channel.
    delivered_to: tuple[Address, ...] = ()
    date: datetime | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    text: str = ""
    new_text: str = ""
    quoted_text: str = ""
    html_only: bool = False
    truncated: bool = False
    # Lower-cased header names (list-id, auto-submitted, precedence, list-unsubscribe, ...)
    # that classification and reply rules look at.
    headers: dict[str, str] = field(default_factory=dict)
    # Parser defects worth recording (decode fallbacks, broken MIME), never fatal.
    defects: tuple[str, ...] = ()
