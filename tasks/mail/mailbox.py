"""The small interface onward needs from a mailbox, whatever stores it.

Two backends implement it: ``imap.ImapMailbox`` and ``maildir.MaildirMailbox``.
The watched folder is only ever read: no flag, move or delete. The one write, in a later
step, is saving drafts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

# Header fields onward fetches; everything else in the header block stays on the server.
HEADER_FIELDS: tuple[str, ...] = (
    "Message-ID",
    "Date",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Delivered-To",
    "Subject",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Unsubscribe",
    "Precedence",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "Return-Path",
    "X-Mailer",
)


@dataclass(frozen=True, slots=True)
class FolderState:
    """What opening the folder tells: its UIDVALIDITY and the UID the next message will get."""

    uidvalidity: int
    uidnext: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """First pass over a message: its header fields, enough to skip mail already handled."""

    uid: int
    header: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Fetched:
    """A message as onward reads it: ``raw`` is an RFC 822 message holding the header fields
    and the best text part (IMAP), or the start of the message file (Maildir)."""

    uid: int
    raw: bytes
    size: int


class Mailbox(Protocol):
    """One folder of one account, opened read-only."""

    def open(self) -> FolderState:
        """Connect (where needed) and open the watched folder read-only."""
        ...

    def close(self) -> None: ...

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid``, ascending."""
        ...

    def settled(self, uid: int) -> int:
        """The furthest the cursor may move towards ``uid``: no message delivered later
        can get a UID at or below it (IMAP: ``uid`` itself)."""
        ...

    def uids_since(self, since: datetime) -> list[int]:
        """UIDs of messages that arrived at or after ``since``, ascending."""
        ...

    def envelopes(self, uids: Sequence[int]) -> list[Envelope]: ...

    def fetch(self, envelopes: Sequence[Envelope], max_text_bytes: int) -> list[Fetched]: ...

    def wait_for_news(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Block until the folder may have changed, ``timeout`` passes or ``stop`` is set.

        True on a change. Raises ``TransientMailboxError`` when the connection is dead.
        """
        ...

    def find_drafts_folder(self) -> str: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Opened:
    """``with x:`` opens ``x`` and closes it after: the one spelling of that for onward's
    connections and folders. Subclasses define ``open`` and ``close``."""

    def open(self) -> object:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
