"""Where reply drafts go: the person's Drafts folder, on IMAP or in a local Maildir.

onward never sends mail. It saves one threaded draft per rejection and leaves the rest to
the person. Each draft carries ``X-Onward-Feedback-For: <rejection Message-ID>`` so saving
is idempotent: the caller looks for the marker before appending,

    with store:
        ref = store.find(marker) or store.append(raw)

so a crash between APPEND and the database write does not produce a second draft.

IMAP rules (see ``../shared/imap-notes.md`` sections 3 and 8):
- a connection of its own, made by ``connect_client``; the watcher's connection is not shared;
- folders are only ever opened with EXAMINE, and only ``BODY.PEEK`` items are fetched: no
  flag of any message changes, nothing is deleted or expunged;
- ``SEARCH HEADER`` is a case-insensitive substring match on the server, so every hit is
  confirmed by fetching the header and comparing exactly;
- ``fetch`` gets explicit UID lists (imapclient 4.x raises on string ranges);
- ``DRAFTS`` and ``SENT`` come from ``imapclient.imapclient`` (``imapclient.DRAFTS`` does not
  exist in 4.1).
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import DRAFT, DRAFTS, SEEN, SENT

from onward.tasks.errors import ConfigError, MailboxError
from onward.tasks.mail.imap import (
    ImapConfig,
    call_translated,
    connect_client,
)
from onward.tasks.mail.mailbox import Opened
from onward.tasks.mail.maildir import maildir_folder_path, write_message
from onward.tasks.mail.message_ids import message_id_list, normalise_message_id

__all__ = [
    "MARKER_HEADER",
    "SENT_FALLBACK_NAMES",
    "DraftRef",
    "DraftStore",
    "ImapDrafts",
    "MaildirDrafts",
]

MARKER_HEADER = "X-Onward-Feedback-For"
DRAFTS_FALLBACK_NAME = "Drafts"
SENT_FALLBACK_NAMES = ("Sent", "Sent Items", "Sent Messages")

_MARKER_ITEM = f"BODY.PEEK[HEADER.FIELDS ({MARKER_HEADER.upper()})]"
_THREAD_ITEM = "BODY.PEEK[HEADER.FIELDS (IN-REPLY-TO REFERENCES)]"
_APPENDUID_RE = re.compile(rb"\[APPENDUID\s+(\d+)\s+(\d+)\]", re.IGNORECASE)
_FETCH_CHUNK = 200
_HEADER_CAP = 256 * 1024  # a header longer than this is not one of ours


@dataclass(frozen=True)
class DraftRef:
    """A saved draft: the folder, plus the IMAP UID or the Maildir file name when known."""

    folder: str
    uid: int | None = None  # from APPENDUID; None on Maildir or without UIDPLUS
    name: str | None = None  # Maildir file name (in ``cur/``) at the time it was saved


class DraftStore(Protocol):
    """The person's Drafts (to write) and Sent (to read) folders."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def find(self, marker: str) -> DraftRef | None:
        """The draft whose MARKER_HEADER equals ``marker`` exactly, if there is one."""
        ...

    def append(self, raw: bytes) -> DraftRef:
        """Save ``raw`` as a draft (flags ``\\Draft`` and ``\\Seen``)."""
        ...

    def exists(self, ref: DraftRef, marker: str) -> bool:
        """Is the draft still there (the person may have deleted or sent it)?"""
        ...

    def sent_reply_to(self, message_id: str) -> bool:
        """Is there a message in Sent whose In-Reply-To or References has ``message_id``?"""
        ...


# ---------------------------------------------------------------------------- header helpers


def _header_values(header: bytes, name: str) -> list[str]:
    """Decoded, unfolded values of header ``name`` in a header block (RFC 2047 decoded)."""
    try:
        msg: Message = BytesHeaderParser(policy=default_policy).parsebytes(header)
        values = msg.get_all(name) or []
        return [" ".join(str(v).split()) for v in values]
    except Exception:  # a header the parser chokes on is not a match
        return []


def _marker_matches(header: bytes, marker: str) -> bool:
    wanted = " ".join(marker.split())
    return wanted != "" and wanted in _header_values(header, MARKER_HEADER)


def _refers_to(header: bytes, message_id: str) -> bool:
    """Does In-Reply-To or References list exactly ``message_id``?"""
    wanted = normalise_message_id(message_id)
    for name in ("In-Reply-To", "References"):
        for value in _header_values(header, name):
            if wanted in message_id_list(value):
                return True
    return False


def _search_term(value: str) -> str:
    # SEARCH strings cannot carry CR/LF; header values are compared unfolded anyway.
    return " ".join(value.split())


def _charset_for(value: str) -> str | None:
    return None if value.isascii() else "UTF-8"


def _find_item(item: dict[bytes, Any], prefix: bytes) -> bytes:
    for key, value in item.items():
        if isinstance(key, bytes) and key.startswith(prefix) and value is not None:
            return bytes(value)
    return b""


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---------------------------------------------------------------------------- IMAP


class ImapDrafts(Opened):
    """Drafts and Sent of one IMAP account, on a short-lived connection of its own."""

    def __init__(
        self,
        config: ImapConfig,
        secret: Callable[[], str],
        drafts_folder: str | None = None,
    ) -> None:
        if drafts_folder is not None and drafts_folder.strip().upper() == "INBOX":
            raise ConfigError("the drafts folder cannot be INBOX; name another folder")
        self.config = config
        self._secret = secret
        self._drafts_setting = drafts_folder
        self._drafts: str | None = None  # resolved name, kept across reconnects
        self.client: IMAPClient | None = None

    def open(self) -> None:
        if self.client is None:
            # The secret is read at every connect: an OAuth2 token may have been refreshed.
            self.client = connect_client(self.config, self._secret())

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):
                client.logout()

    # -- DraftStore

    def find(self, marker: str) -> DraftRef | None:
        folder = self.drafts_folder()
        uid = self._find_in(folder, marker)
        return None if uid is None else DraftRef(folder=folder, uid=uid)

    def append(self, raw: bytes) -> DraftRef:
        folder = self.drafts_folder()
        response = self._call(lambda c: self._append(c, folder, raw))
        text = response if isinstance(response, bytes) else str(response).encode()
        found = _APPENDUID_RE.search(text)
        return DraftRef(folder=folder, uid=int(found.group(2)) if found else None)

    def exists(self, ref: DraftRef, marker: str) -> bool:
        # UIDs are not stable (a mail client re-saves an edited draft under a new UID,
        # a UIDVALIDITY change renumbers), so the marker decides, in the ref's folder.
        return self._find_in(ref.folder, marker) is not None

    def sent_reply_to(self, message_id: str) -> bool:
        folder = self.sent_folder()
        if folder is None:
            return False
        term = _search_term(normalise_message_id(message_id) or message_id)
        criteria = ["OR", "HEADER", "In-Reply-To", term, "HEADER", "References", term]
        hits = self._search(folder, criteria, _charset_for(term))
        for chunk in _chunks(hits, _FETCH_CHUNK):
            data = self._fetch(chunk, [_THREAD_ITEM])
            if any(_refers_to(_find_item(item, b"BODY[HEADER"), term) for item in data.values()):
                return True
        return False

    # -- folders

    def drafts_folder(self) -> str:
        """The Drafts folder: the configured name, else SPECIAL-USE ``\\Drafts``, else "Drafts"."""
        if self._drafts is None:
            if self._drafts_setting is not None:
                self._drafts = self._drafts_setting
            else:
                found = self._call(lambda c: c.find_special_folder(DRAFTS))
                self._drafts = str(found) if found else DRAFTS_FALLBACK_NAME
            if self._drafts.upper() == "INBOX":  # a server that flags INBOX \Drafts: refuse
                self._drafts = None
                raise MailboxError("the server reports INBOX as the Drafts folder; set one")
        return self._drafts

    def sent_folder(self) -> str | None:
        """SPECIAL-USE ``\\Sent``, else the first existing of SENT_FALLBACK_NAMES, else None."""
        found = self._call(lambda c: c.find_special_folder(SENT))
        if found:
            return str(found)

        def first_existing(client: IMAPClient) -> str | None:
            return next((n for n in SENT_FALLBACK_NAMES if client.folder_exists(n)), None)

        name: str | None = self._call(first_existing)
        return name

    # -- IMAP plumbing

    def _append(self, client: IMAPClient, folder: str, raw: bytes) -> Any:
        def do_append() -> Any:
            return client.append(folder, raw, flags=(DRAFT, SEEN), msg_time=datetime.now(UTC))

        try:
            return do_append()
        except IMAPClientError as exc:
            if isinstance(exc, imaplib.IMAP4.abort):
                raise
            # [TRYCREATE] says the folder is missing; servers that do not say so are asked.
            if "TRYCREATE" not in str(exc).upper() and client.folder_exists(folder):
                raise
        client.create_folder(folder)
        with contextlib.suppress(IMAPClientError):
            client.subscribe_folder(folder)  # so the person's mail client shows it
        return do_append()

    def _find_in(self, folder: str, marker: str) -> int | None:
        term = _search_term(marker)
        if not term:
            return None
        hits = self._search(folder, ["HEADER", MARKER_HEADER, term], _charset_for(term))
        for chunk in _chunks(hits, _FETCH_CHUNK):
            data = self._fetch(chunk, [_MARKER_ITEM])
            for uid in chunk:
                item = data.get(uid)
                if item is not None and _marker_matches(_find_item(item, b"BODY[HEADER"), term):
                    return uid
        return None

    def _search(self, folder: str, criteria: list[str], charset: str | None) -> list[int]:
        """EXAMINE ``folder`` and SEARCH it; a folder that does not exist has no hits."""

        def run(client: IMAPClient) -> list[int]:
            try:
                client.select_folder(folder, readonly=True)  # EXAMINE: nothing can change
            except IMAPClientError as exc:
                if isinstance(exc, imaplib.IMAP4.abort) or client.folder_exists(folder):
                    raise
                return []
            return sorted(int(uid) for uid in client.search(criteria, charset=charset))

        result: list[int] = self._call(run)
        return result

    def _fetch(self, uids: list[int], items: list[str]) -> dict[int, dict[bytes, Any]]:
        # Always an explicit UID list: imapclient 4.x raises on string ranges.
        result: dict[int, dict[bytes, Any]] = self._call(lambda c: c.fetch(uids, items))
        return result

    def _call(self, fn: Callable[[IMAPClient], Any]) -> Any:
        self.open()
        assert self.client is not None
        # A lost connection is unusable: closed, so the next call connects again.
        return call_translated(self.client, fn, on_lost=self.close)


# ---------------------------------------------------------------------------- Maildir


class MaildirDrafts:
    """Maildir++ ``.Drafts`` and ``.Sent`` under ``root``; drafts are saved as read drafts."""

    def __init__(self, root: Path, drafts_folder: str = DRAFTS_FALLBACK_NAME) -> None:
        if drafts_folder.strip().upper() == "INBOX":
            raise ConfigError("the drafts folder cannot be INBOX; name another folder")
        self.root = Path(root).expanduser()
        self.folder = drafts_folder

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @property
    def drafts_path(self) -> Path:
        return maildir_folder_path(self.root, self.folder)

    def find(self, marker: str) -> DraftRef | None:
        name = self._find_in(self.folder, marker)
        return None if name is None else DraftRef(folder=self.folder, name=name)

    def append(self, raw: bytes) -> DraftRef:
        path = write_message(self.drafts_path, raw, flags="DS")  # \Draft and \Seen
        return DraftRef(folder=self.folder, name=path.name)

    def exists(self, ref: DraftRef, marker: str) -> bool:
        # A mail client renames a draft when it changes its flags, so the marker decides.
        return self._find_in(ref.folder, marker) is not None

    def sent_reply_to(self, message_id: str) -> bool:
        return any(
            _refers_to(header, message_id) for _, header in self._headers(_sent_folder(self.root))
        )

    def _find_in(self, folder: str, marker: str) -> str | None:
        for name, header in self._headers(maildir_folder_path(self.root, folder)):
            if _marker_matches(header, marker):
                return name
        return None

    def _headers(self, folder: Path | None) -> Iterator[tuple[str, bytes]]:
        """(file name, header block) of every message in ``folder``'s new/ and cur/.

        A file renamed while we read (a mail client changing flags) is looked for again
        under its new name by one more pass, so it is not missed.
        """
        if folder is None:
            return
        seen: set[str] = set()
        for _ in range(3):
            missed = False
            for path in _message_files(folder):
                if path.name in seen:
                    continue
                header = _read_header(path)
                if header is None:
                    missed = True
                    continue
                seen.add(path.name)
                yield path.name, header
            if not missed:
                return


def _sent_folder(root: Path) -> Path | None:
    for name in SENT_FALLBACK_NAMES:
        path = maildir_folder_path(root, name)
        if (path / "cur").is_dir():
            return path
    return None


def _message_files(folder: Path) -> Iterable[Path]:
    paths: list[Path] = []
    for sub in ("new", "cur"):
        try:
            with os.scandir(folder / sub) as it:
                paths.extend(
                    Path(e.path)
                    for e in it
                    if not e.name.startswith(".") and e.is_file(follow_symlinks=False)
                )
        except FileNotFoundError:
            continue
    return paths


def _read_header(path: Path) -> bytes | None:
    """The header block of a message file (up to the blank line), or None if it is gone."""
    lines: list[bytes] = []
    size = 0
    try:
        with path.open("rb") as handle:
            for line in handle:
                if line in (b"\n", b"\r\n") or size > _HEADER_CAP:
                    break
                lines.append(line)
                size += len(line)
    except FileNotFoundError:
        return None
    return b"".join(lines)
