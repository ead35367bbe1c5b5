"""The shared corpus, for volume tests and benchmarks: located, skipped when absent, loaded."""

from __future__ import annotations

import mailbox
import os
import socket
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from tests.support.dovecot import ROOT_MAIL_GID, ROOT_MAIL_UID, DovecotServer
from tests.support.paths import CORPUS

EASY_HAM = CORPUS / "ordinary_mail" / "easy_ham.mbox"


def corpus_file(path: Path) -> Path:
    """``path`` if the corpus is here (it is not on a user's machine), else skip the test."""
    if not path.is_file():
        pytest.skip(f"corpus file {path} is absent (the corpus lives beside the project)")
    return path


def mbox_messages(path: Path) -> list[bytes]:
    box = mailbox.mbox(path, create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def load_mbox(server: DovecotServer, user: str, path: Path, folder: str = "INBOX") -> int:
    """Put every message of ``path`` into ``folder`` the way an MDA does, then index once.

    Each file's mtime (Dovecot's INTERNALDATE) is the message's Date, so a date-bounded
    backfill sees the corpus's own dates. Far faster than thousands of ``doveadm save``.
    """
    server.doveadm("mailbox", "status", "-u", user, "messages", folder)  # creates the Maildir
    target = server.folder_path(user, folder)
    host = socket.gethostname().replace("/", "_").replace(":", "_")
    raws = mbox_messages(path)
    for n, raw in enumerate(raws):
        name = f"1700000000.M{n}P{os.getpid()}.{host},S={len(raw)}"
        tmp = target / "tmp" / name
        tmp.write_bytes(raw)
        when = _date_of(raw)
        if when is not None:
            os.utime(tmp, (when, when))
        if server.as_root:
            os.chown(tmp, ROOT_MAIL_UID, ROOT_MAIL_GID)
        tmp.rename(target / "new" / name)
    server.doveadm("mailbox", "status", "-u", user, "messages", folder)
    return len(raws)


def _date_of(raw: bytes) -> float | None:
    head = raw.split(b"\n\n", 1)[0]
    for line in head.splitlines():
        if line[:5].lower() == b"date:":
            try:
                return parsedate_to_datetime(line[5:].decode("latin-1").strip()).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    return None
