"""Draft stores: idempotent drafts in the person's Drafts folder, on Dovecot and in a Maildir."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from onward.tasks.errors import TransientMailboxError
from onward.tasks.mail.drafts import MARKER_HEADER, DraftRef, DraftStore, ImapDrafts, MaildirDrafts
from onward.tasks.mail.imap import ImapConfig, connect_client
from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir, maildir_folder_path
from tests.support.dovecot import DovecotServer
from tests.support.mailgen import make_mail

_MAILDIR_FLAGS = {
    "D": "\\Draft",
    "S": "\\Seen",
    "R": "\\Answered",
    "F": "\\Flagged",
    "T": "\\Deleted",
}


def draft(marker: str, n: int = 1) -> bytes:
    """A reply draft the way the composer builds it: threaded, with the marker header."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "alice@example.org"
    msg["To"] = "Jordan Hale <jordan.hale@company.example>"
    msg["Subject"] = "Re: Your application"
    msg["Message-ID"] = f"<draft-{n}@onward.example>"
    msg["In-Reply-To"] = marker
    msg["References"] = marker
    msg[MARKER_HEADER] = marker
    msg.set_content("Hello Jordan,\n\ncould you tell me what I could do better?\n\nAlice\n")
    return msg.as_bytes()


def reply(n: int, in_reply_to: str | None = None, references: str | None = None) -> bytes:
    """A message the person sent (as found in Sent)."""
    msg = message_from_bytes(make_mail(n, sender="alice@example.org"), policy=default_policy)
    if in_reply_to is not None:
        msg["In-Reply-To"] = in_reply_to
    if references is not None:
        msg["References"] = references
    return msg.as_bytes()


@dataclass
class Backend:
    """One kind of mailbox, with inspection and "the person did something" helpers."""

    kind: str
    new_store: Callable[..., DraftStore]
    deliver: Callable[[bytes, str], None]  # (raw, folder)
    flags: Callable[[str], dict[str, frozenset[str]]]  # folder -> {Message-ID: flags}
    raw_messages: Callable[[str], list[bytes]]  # folder -> stored bytes
    delete_all: Callable[[str], None]  # folder -> the person deletes everything in it


def _maildir_backend(root: Path) -> Backend:
    create_maildir(root, folders=("Sent",))  # no .Drafts: the store creates it

    def files(folder: str) -> list[Path]:
        path = maildir_folder_path(root, folder)
        return sorted(
            p for sub in ("new", "cur") if (path / sub).is_dir() for p in (path / sub).iterdir()
        )

    def flags(folder: str) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        for p in files(folder):
            msg = message_from_bytes(p.read_bytes(), policy=default_policy)
            info = p.name.split(":2,", 1)[1] if ":2," in p.name else ""
            key = f"{p.parent.name}/{msg['Message-ID']}"  # new/ vs cur/ matters too
            out[key] = frozenset(_MAILDIR_FLAGS[c] for c in info if c in _MAILDIR_FLAGS)
        return out

    def delete_all(folder: str) -> None:
        for p in files(folder):
            p.unlink()

    def deliver(raw: bytes, folder: str) -> None:
        deliver_to_maildir(root, raw, folder)

    return Backend(
        kind="maildir",
        new_store=lambda **kw: MaildirDrafts(root, **kw),
        deliver=deliver,
        flags=flags,
        raw_messages=lambda folder: [p.read_bytes() for p in files(folder)],
        delete_all=delete_all,
    )


def _imap_config(server: DovecotServer) -> ImapConfig:
    return ImapConfig(host="127.0.0.1", port=server.port, username="alice", security="plain")


def _imap_backend(server: DovecotServer) -> Backend:
    def raw_messages(folder: str) -> list[bytes]:
        path = server.folder_path("alice", folder)
        return [p.read_bytes() for sub in ("new", "cur") for p in sorted((path / sub).iterdir())]

    def delete_all(folder: str) -> None:  # as a mail client would: flag \Deleted + EXPUNGE
        server.doveadm("expunge", "-u", "alice", "mailbox", folder, "all")

    return Backend(
        kind="imap",
        new_store=lambda **kw: ImapDrafts(_imap_config(server), lambda: "secret", **kw),
        deliver=lambda raw, folder: server.deliver("alice", raw, folder=folder),
        flags=lambda folder: server.flags("alice", folder),
        raw_messages=raw_messages,
        delete_all=delete_all,
    )


@pytest.fixture(params=["maildir", pytest.param("imap", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "maildir":
        return _maildir_backend(tmp_path / "Maildir")
    server: DovecotServer = request.getfixturevalue("dovecot")
    return _imap_backend(server)


def save_once(backend: Backend, marker: str, n: int = 1) -> DraftRef:
    """The caller's pattern, each run on a fresh store (as after a restart)."""
    with backend.new_store() as store:
        return store.find(marker) or store.append(draft(marker, n))


# ---------------------------------------------------------------------------- both backends


def test_append_then_find(backend: Backend) -> None:
    marker = "<rej-1@x.example>"
    with backend.new_store() as store:
        assert store.find(marker) is None
        ref = store.append(draft(marker))
        assert store.find(marker) == ref
        assert store.find("<rej-2@x.example>") is None
    assert ref.folder == "Drafts"
    if backend.kind == "imap":
        assert ref.uid is not None
        assert ref.name is None
    else:
        assert ref.uid is None
        assert ref.name is not None
        assert ref.name.endswith(":2,DS")
    stored = backend.flags("Drafts")
    assert len(stored) == 1
    assert set(stored.values()) == {frozenset({"\\Draft", "\\Seen"})}
    [raw] = backend.raw_messages("Drafts")
    parsed = message_from_bytes(raw, policy=default_policy)
    assert parsed[MARKER_HEADER] == marker
    assert parsed["In-Reply-To"] == marker


def test_crash_between_append_and_database_write(backend: Backend) -> None:
    marker = "<rej-1@x.example>"
    with backend.new_store() as store:
        lost = store.append(draft(marker))  # ... and the process dies before recording it
    with backend.new_store() as store:  # after the restart
        assert store.find(marker) == lost  # so the caller does not append again
    first = save_once(backend, marker)
    second = save_once(backend, marker)
    assert first == second == lost
    assert len(backend.raw_messages("Drafts")) == 1


def test_pattern_run_twice_makes_one_draft(backend: Backend) -> None:
    marker = "<rej-7@x.example>"
    first = save_once(backend, marker)
    second = save_once(backend, marker)
    assert first == second
    assert len(backend.raw_messages("Drafts")) == 1


def test_marker_matches_exactly_not_as_substring(backend: Backend) -> None:
    with backend.new_store() as store:
        long_ref = store.append(draft("<aa@x>", 1))
        assert store.find("<a@x>") is None
        assert store.find("a@x>") is None  # a true substring of "<aa@x>"
        assert store.find("<AA@x>") is None  # servers search case-insensitively
        short_ref = store.append(draft("<a@x>", 2))
        assert store.find("<a@x>") == short_ref
        assert store.find("<aa@x>") == long_ref
        assert short_ref != long_ref


def test_long_marker_folded_by_the_composer_is_found(backend: Backend) -> None:
    # policy.SMTP folds a long header without spaces into RFC 2047 encoded words.
    marker = "<" + "a" * 90 + "@recruiting.example.com>"
    raw = draft(marker)
    assert b"=?utf-8?q?" in raw
    with backend.new_store() as store:
        ref = store.append(raw)
        assert store.find(marker) == ref
        assert store.find(marker[:-5] + ">") is None


def test_exists_until_the_person_deletes_the_draft(backend: Backend) -> None:
    marker = "<rej-1@x.example>"
    ref = save_once(backend, marker)
    with backend.new_store() as store:
        assert store.exists(ref, marker)
        assert not store.exists(ref, "<rej-2@x.example>")
    backend.delete_all("Drafts")
    with backend.new_store() as store:
        assert not store.exists(ref, marker)
        assert store.find(marker) is None


def test_sent_reply_to(backend: Backend) -> None:
    backend.deliver(reply(1, in_reply_to="<rej-1@x.example>"), "Sent")
    backend.deliver(reply(2, references="<other@x.example> <rej-2@x.example>"), "Sent")
    backend.deliver(reply(3, in_reply_to="<rej-33@x.example>"), "Sent")
    with backend.new_store() as store:
        assert store.sent_reply_to("<rej-1@x.example>")
        assert store.sent_reply_to("rej-1@x.example")  # without angle brackets
        assert store.sent_reply_to("<rej-2@x.example>")  # via References
        assert not store.sent_reply_to("<rej-4@x.example>")
        assert not store.sent_reply_to("<rej-3@x.example>")  # substring of rej-33
        assert not store.sent_reply_to("<ej-1@x.example>")
        assert not store.sent_reply_to("<REJ-1@x.example>")  # servers ignore case; we do not
        # A draft (in Drafts) is not a sent reply.
        store.append(draft("<rej-5@x.example>"))
        assert not store.sent_reply_to("<rej-5@x.example>")


def test_nothing_else_changes(backend: Backend) -> None:
    for n in (1, 2, 3):
        backend.deliver(make_mail(n), "INBOX")
    backend.deliver(reply(4, in_reply_to="<rej-1@x.example>"), "Sent")
    inbox_before, sent_before = backend.flags("INBOX"), backend.flags("Sent")
    assert len(inbox_before) == 3
    ref = save_once(backend, "<rej-1@x.example>")
    save_once(backend, "<rej-1@x.example>")
    with backend.new_store() as store:
        assert store.exists(ref, "<rej-1@x.example>")
        assert store.sent_reply_to("<rej-1@x.example>")
        assert store.find("<nothing@x.example>") is None
    assert backend.flags("INBOX") == inbox_before
    assert backend.flags("Sent") == sent_before
    assert set(backend.flags("Drafts").values()) == {frozenset({"\\Draft", "\\Seen"})}


# ---------------------------------------------------------------------------- IMAP only


@pytest.fixture
def imap(dovecot: DovecotServer) -> Callable[..., ImapDrafts]:
    def make(**kw: Any) -> ImapDrafts:
        return ImapDrafts(_imap_config(dovecot), lambda: "secret", **kw)

    return make


@pytest.mark.integration
def test_drafts_found_by_special_use(imap: Callable[..., ImapDrafts]) -> None:
    with imap() as store:
        assert store.drafts_folder() == "Drafts"
        assert store.sent_folder() == "Sent"


@pytest.mark.integration
def test_named_drafts_folder_is_created(
    dovecot: DovecotServer, imap: Callable[..., ImapDrafts]
) -> None:
    folder = "Onward Drafts"
    marker = "<rej-1@x.example>"
    with imap(drafts_folder=folder) as store:
        assert store.find(marker) is None  # a missing folder has no drafts...
        assert folder not in dovecot.doveadm("mailbox", "list", "-u", "alice").splitlines()
        ref = store.append(draft(marker))  # ... and APPEND creates it
        assert ref.folder == folder
        assert ref.uid is not None
        assert store.find(marker) == ref
    assert folder in dovecot.doveadm("mailbox", "list", "-u", "alice").splitlines()
    assert folder in dovecot.doveadm("mailbox", "list", "-s", "-u", "alice").splitlines()
    assert set(dovecot.flags("alice", folder).values()) == {frozenset({"\\Draft", "\\Seen"})}
    assert dovecot.flags("alice", "Drafts") == {}


@pytest.mark.integration
def test_exists_survives_a_new_uid(dovecot: DovecotServer, imap: Callable[..., ImapDrafts]) -> None:
    # A mail client saving an edited draft stores a new copy (new UID) and deletes the old.
    marker = "<rej-1@x.example>"
    with imap() as store:
        ref = store.append(draft(marker))
    dovecot.deliver("alice", draft(marker, 2), folder="Drafts")
    assert ref.uid is not None
    dovecot.doveadm("expunge", "-u", "alice", "mailbox", "Drafts", "uid", str(ref.uid))
    with imap() as store:
        assert store.exists(ref, marker)
        found = store.find(marker)
        assert found is not None
        assert found.uid != ref.uid


class _Spy:
    """Records every IMAPClient method the store calls, then calls it."""

    def __init__(self, client: Any, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]):
        self._client = client
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((name, args, kwargs))
            return attr(*args, **kwargs)

        return call


@pytest.mark.integration
def test_only_examine_and_no_flag_changes(
    monkeypatch: pytest.MonkeyPatch, dovecot: DovecotServer, imap: Callable[..., ImapDrafts]
) -> None:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(
        "onward.tasks.mail.drafts.connect_client", lambda *a: _Spy(connect_client(*a), calls)
    )
    dovecot.deliver("alice", make_mail(1))
    dovecot.deliver("alice", reply(2, in_reply_to="<rej-1@x.example>"), folder="Sent")
    for _ in range(2):
        with imap() as store:
            ref = store.find("<rej-1@x.example>") or store.append(draft("<rej-1@x.example>"))
            assert store.exists(ref, "<rej-1@x.example>")
            assert store.sent_reply_to("<rej-1@x.example>")
    names = {name for name, _, _ in calls}
    assert names <= {
        "find_special_folder",
        "folder_exists",
        "select_folder",
        "search",
        "fetch",
        "append",
        "logout",
    }, names
    for name, args, kwargs in calls:
        if name == "select_folder":
            assert kwargs.get("readonly") is True, (args, kwargs)
            assert args[0] != "INBOX"
        if name == "fetch":
            assert all(isinstance(uid, int) for uid in args[0])
            assert all(item.startswith("BODY.PEEK[") for item in args[1])
    assert sum(1 for name, _, _ in calls if name == "append") == 1


@pytest.mark.integration
def test_dropped_connection_is_transient_and_the_next_call_reconnects(
    dovecot: DovecotServer, imap: Callable[..., ImapDrafts]
) -> None:
    marker = "<rej-1@x.example>"
    with imap() as store:
        ref = store.append(draft(marker))
        assert dovecot.kill_imap_processes("alice")
        with pytest.raises(TransientMailboxError):
            store.find(marker)
        assert store.find(marker) == ref


# ---------------------------------------------------------------------------- Maildir only


def test_maildir_creates_drafts_private(tmp_path: Path) -> None:
    root = create_maildir(tmp_path / "Maildir", folders=())
    with MaildirDrafts(root) as store:
        assert store.find("<rej-1@x.example>") is None
        ref = store.append(draft("<rej-1@x.example>"))
    drafts = root / ".Drafts"
    for sub in ("cur", "new", "tmp"):
        assert (drafts / sub).stat().st_mode & 0o777 == 0o700
    assert ref.name is not None
    path = drafts / "cur" / ref.name
    assert path.stat().st_mode & 0o777 == 0o600
    assert list((drafts / "tmp").iterdir()) == []


def test_maildir_without_sent_folder(tmp_path: Path) -> None:
    root = create_maildir(tmp_path / "Maildir", folders=())
    with MaildirDrafts(root) as store:
        assert not store.sent_reply_to("<rej-1@x.example>")


def test_maildir_draft_renamed_by_mail_client_still_exists(tmp_path: Path) -> None:
    root = create_maildir(tmp_path / "Maildir", folders=())
    marker = "<rej-1@x.example>"
    with MaildirDrafts(root) as store:
        ref = store.append(draft(marker))
        assert ref.name is not None
        cur = root / ".Drafts" / "cur"
        os.rename(cur / ref.name, cur / (ref.name.split(":")[0] + ":2,DFS"))  # flagged
        assert store.exists(ref, marker)
        assert store.find(marker) == DraftRef(
            folder="Drafts", name=ref.name.split(":")[0] + ":2,DFS"
        )
