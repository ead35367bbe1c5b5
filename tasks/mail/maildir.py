"""Maildir (Maildir++) backend: the embedded default, and for people who sync mail locally.

Maildir has no UIDs, so this backend derives them: a message's UID is the inode change
time of its file in microseconds. A file's ctime only moves forward (delivery, and the
rename a mail client does when it changes flags), so ``uids_after`` never misses new mail;
a renamed message may come round again, and the ledger skips it. UIDVALIDITY is the inode
number of ``cur/``: recreating the Maildir changes it, like a recreated IMAP folder.

Nothing in the watched folder is renamed, moved or rewritten; reading a file does not
mark it read (that would take a rename from ``new/`` to ``cur/`` with the ``S`` flag).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from onward.tasks.errors import MailboxFolderError
from onward.tasks.mail.mailbox import Envelope, Fetched, FolderState, Opened

# Local files are cheap to read, but a message with a large attachment is still not read
# whole: the text parts come first in practice, and the parser tolerates the cut.
READ_CAP = 1 << 20
HEADER_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Entry:
    # A str, not a Path: the index holds every message of the folder, and a Path (its
    # parts, each interned) costs several times the bytes of the string.
    path: str
    uid: int
    mtime: datetime
    size: int


# Longer than any kernel clock tick (1-10 ms): see MaildirMailbox.settled.
SETTLE_US = 50_000
# open() only needs the highest UID: it indexes nothing.
_KEEP_NONE = 1 << 62


class MaildirMailbox(Opened):
    """One Maildir++ folder: ``INBOX`` is the root, ``Drafts`` is ``.Drafts``."""

    def __init__(self, root: Path, folder: str = "INBOX", poll_interval: float = 2.0) -> None:
        self.root = Path(root).expanduser()
        self.folder = folder
        self.poll_interval = poll_interval
        self._entries: dict[int, list[_Entry]] = {}
        self._signature: tuple[int, ...] | None = None
        self._scanned_at_us = 0

    @property
    def folder_path(self) -> Path:
        return maildir_folder_path(self.root, self.folder)

    def open(self) -> FolderState:
        path = self.folder_path
        if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            raise MailboxFolderError(
                f"{path} is not a Maildir (it needs cur/, new/ and tmp/); "
                "check the path given to `onward connect --maildir`"
            )
        # The signature before the scan: mail delivered between the two then moves the
        # signature past the one kept, and rings the next wait_for_news. Taken after the
        # scan, it swallowed such a delivery until the next one or the interval run (seen
        # in tests/bench/soak.py as a batch left waiting for minutes).
        self._signature = self._dir_signature()
        highest = self._scan(above=_KEEP_NONE)
        return FolderState(uidvalidity=(path / "cur").stat().st_ino, uidnext=highest + 1)

    def close(self) -> None:
        self._entries.clear()

    def _scan(self, above: int, since: datetime | None = None) -> int:
        """Index the messages with a UID above ``above`` (and, given ``since``, an mtime
        from then on); return the highest UID in the folder. Only what a pass reads is
        indexed: the doorbell keeps its mailbox between passes, and an index of the
        whole folder held every message's entry for as long as the worker ran."""
        self._scanned_at_us = time.time_ns() // 1000
        floor = since.timestamp() if since is not None else None
        highest = 0
        entries: dict[int, list[_Entry]] = {}
        for sub in ("new", "cur"):
            with os.scandir(self.folder_path / sub) as it:
                for item in it:
                    if item.name.startswith(".") or not item.is_file():
                        continue
                    st = item.stat()
                    uid = st.st_ctime_ns // 1000
                    highest = max(highest, uid)
                    if uid <= above or (floor is not None and st.st_mtime < floor):
                        continue
                    mtime = datetime.fromtimestamp(st.st_mtime, UTC)
                    entries.setdefault(uid, []).append(_Entry(item.path, uid, mtime, st.st_size))
        self._entries = entries
        return highest

    def uids_after(self, last_uid: int) -> list[int]:
        self._scan(above=last_uid)
        return sorted(self._entries)

    def settled(self, uid: int) -> int:
        # A UID is a file's ctime, read from the kernel's coarse clock: a message delivered
        # just after the scan can share the newest UID seen. The cursor stays short of the
        # last SETTLE_US before the scan, so such a message is read on the next pass (the
        # ledger skips the ones it knows) and never falls under the cursor for good.
        return min(uid, self._scanned_at_us - SETTLE_US)

    def uids_since(self, since: datetime) -> list[int]:
        self._scan(above=0, since=since)
        return sorted(self._entries)

    def envelopes(self, uids: Sequence[int]) -> list[Envelope]:
        out: list[Envelope] = []
        for uid in uids:
            for entry in self._entries.get(uid, ()):
                header = _read_header(entry.path)
                if header is None:  # gone since the scan: moved or deleted by the person
                    continue
                out.append(Envelope(uid, header, entry.size))
        return out

    def fetch(self, envelopes: Sequence[Envelope], max_text_bytes: int) -> list[Fetched]:
        out: list[Fetched] = []
        wanted = {(e.uid, e.header) for e in envelopes}
        for uid in dict.fromkeys(e.uid for e in envelopes):
            for entry in self._entries.get(uid, ()):
                try:
                    with open(entry.path, "rb") as handle:
                        raw = handle.read(max(READ_CAP, max_text_bytes * 4))
                except FileNotFoundError:
                    continue
                # Compared as the envelope pass read it: a header block longer than that
                # read (a huge header, a 2 MB subject) must still match, not be skipped.
                if (uid, _header_of(raw[:HEADER_READ])) in wanted:
                    out.append(Fetched(uid, raw, entry.size))
        return out

    def _dir_signature(self) -> tuple[int, ...]:
        path = self.folder_path
        return tuple((path / sub).stat().st_mtime_ns for sub in ("new", "cur"))

    def wait_for_news(self, timeout: float, stop: threading.Event | None = None) -> bool:
        # Delivery adds a directory entry, which moves the directory's mtime: a cheap
        # doorbell. Correctness still comes from the sync, never from this.
        deadline = time.monotonic() + timeout
        while True:
            signature = self._dir_signature()
            if signature != self._signature:
                self._signature = signature
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return False
            if stop is not None:
                stop.wait(min(self.poll_interval, remaining))
            else:
                time.sleep(min(self.poll_interval, remaining))

    def find_drafts_folder(self) -> str:
        drafts = maildir_folder_path(self.root, "Drafts")
        for sub in ("cur", "new", "tmp"):
            (drafts / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        return "Drafts"


def maildir_folder_path(root: Path, folder: str) -> Path:
    """Maildir++ layout: INBOX is the root, other folders are ``.Name`` (``.A.B`` nested)."""
    if folder.upper() == "INBOX":
        return root
    return root / ("." + folder.replace("/", "."))


def create_maildir(root: Path, folders: Sequence[str] = ("Drafts", "Sent")) -> Path:
    """Create an empty Maildir++ with the given subfolders; existing mail is left alone."""
    for folder in ("INBOX", *folders):
        for sub in ("cur", "new", "tmp"):
            (maildir_folder_path(root, folder) / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


_counter = itertools.count(1)


def write_message(folder_path: Path, raw: bytes, flags: str | None = None) -> Path:
    """Store ``raw`` in a Maildir folder the way an MDA does: written to tmp/ (0600, fsynced),
    then renamed into new/ (``flags`` None) or into cur/ with ``:2,<flags>``."""
    for sub in ("cur", "new", "tmp"):
        (folder_path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    now = time.time_ns()
    unique = f"{now // 10**9}.M{now // 1000 % 10**6}P{os.getpid()}Q{next(_counter)}.{host}"
    tmp = folder_path / "tmp" / unique
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        sub, name = ("new", unique) if flags is None else ("cur", f"{unique}:2,{flags}")
        target = folder_path / sub / name
        os.rename(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(folder_path / sub)
    return target


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: a crash must not lose a message we reported as stored."""
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def deliver_to_maildir(root: Path, raw: bytes, folder: str = "INBOX", flags: str = "") -> Path:
    """Deliver one message into ``folder`` (new/, or cur/ when it has flags)."""
    return write_message(maildir_folder_path(root, folder), raw, flags or None)


def _header_of(raw: bytes) -> bytes:
    end = raw.find(b"\n\n")
    crlf = raw.find(b"\r\n\r\n")
    if crlf != -1 and (end == -1 or crlf < end):
        return raw[: crlf + 2]
    return raw[: end + 1] if end != -1 else raw


def _read_header(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEADER_READ)
    except FileNotFoundError:
        return None
    return _header_of(head)
