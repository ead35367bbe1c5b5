"""Proves the real-Dovecot fixture (tests/dovecot.py) works with imapclient 4.1."""

from __future__ import annotations

import contextlib
import imaplib
import os
import signal
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imapclient import DRAFTS

from tests.support import dovecot_fixtures as fixtures_dovecot
from tests.support.dovecot import DovecotError, DovecotServer, live_group_members

pytestmark = pytest.mark.integration


def message(n: int, subject: str = "Your application") -> bytes:
    return (
        f"From: HR <hr{n}@acme.example>\r\n"
        f"To: alice@example.org\r\n"
        f"Subject: {subject} {n}\r\n"
        f"Message-ID: <msg{n}@acme.example>\r\n"
        f"Date: Thu, 26 Nov 2026 10:00:0{n % 10} +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Thank you for applying, number {n}.\r\n"
    ).encode()


def connect(server: DovecotServer, *, normalise_times: bool = True) -> IMAPClient:
    client = IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    client.normalise_times = normalise_times  # False: timezone-aware INTERNALDATE
    client.login("alice", "secret")
    return client


@pytest.fixture
def alice(dovecot: DovecotServer) -> Iterator[IMAPClient]:
    client = connect(dovecot)
    yield client
    try:
        client.logout()
    except Exception:  # the test may have killed or kicked the session
        client.shutdown()


def test_plain_login(dovecot: DovecotServer) -> None:
    assert dovecot.tls_port is None
    assert dovecot.cafile is None
    client = connect(dovecot)
    caps = client.capabilities()
    assert b"IDLE" in caps
    assert b"SPECIAL-USE" in caps
    client.logout()
    assert "Login: user=<alice>" in dovecot.log()


def test_wrong_password_is_rejected(dovecot: DovecotServer) -> None:
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    with pytest.raises(LoginError, match=r"(?i)authentication failed"):
        client.login("alice", "wrong")
    client.shutdown()


def test_custom_users() -> None:
    with DovecotServer(users={"bob": "pw1", "carol": "pw2"}) as server:
        for user, password in server.users.items():
            client = IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
            client.login(user, password)
            client.logout()


def test_deliver_three_and_search_readonly(dovecot: DovecotServer, alice: IMAPClient) -> None:
    for n in range(1, 4):
        dovecot.deliver("alice", message(n))
    status = alice.select_folder("INBOX", readonly=True)
    assert status[b"EXISTS"] == 3
    assert status[b"READ-ONLY"] == [b""]
    uids = alice.search(["ALL"])
    assert uids == [1, 2, 3]
    assert alice.search(["SUBJECT", "application 2"]) == [2]
    assert dovecot.uids("alice") == [1, 2, 3]


def test_deliver_to_other_folder(dovecot: DovecotServer, alice: IMAPClient) -> None:
    dovecot.deliver("alice", message(1), folder="Junk")
    dovecot.deliver(
        "alice", message(2), folder="Junk", internaldate=datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert alice.select_folder("Junk", readonly=True)[b"EXISTS"] == 2
    assert alice.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    assert set(dovecot.flags("alice", "Junk")) == {"<msg1@acme.example>", "<msg2@acme.example>"}


def test_deliver_sets_internaldate(dovecot: DovecotServer) -> None:
    client = connect(dovecot, normalise_times=False)
    client.select_folder("INBOX", readonly=True)
    # Fetch INTERNALDATE once before delivering, so Dovecot decides to cache it: a later
    # delivery must still report the requested date, not the time it was stored.
    dovecot.deliver("alice", message(1))
    client.noop()
    client.fetch([1], ["INTERNALDATE"])
    when = [
        datetime(2026, 11, 20, 9, 30, 15, tzinfo=UTC),
        datetime(2025, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5))),
    ]
    for n, date in enumerate(when, start=2):
        dovecot.deliver("alice", message(n), internaldate=date)
    client.noop()
    got = client.fetch([1, 2, 3], ["INTERNALDATE"])
    assert got[2][b"INTERNALDATE"] == when[0]
    assert got[3][b"INTERNALDATE"] == when[1]
    assert abs(got[1][b"INTERNALDATE"] - datetime.now(UTC)) < timedelta(minutes=5)
    # A fresh session (nothing in memory) agrees.
    other = connect(dovecot, normalise_times=False)
    other.select_folder("INBOX", readonly=True)
    assert other.fetch([2, 3], ["INTERNALDATE"])[2][b"INTERNALDATE"] == when[0]
    assert other.search(["BEFORE", when[0].date()]) == [3]
    other.logout()
    client.logout()


def test_flags_unchanged_by_readonly_peek(dovecot: DovecotServer, alice: IMAPClient) -> None:
    for n in range(1, 4):
        dovecot.deliver("alice", message(n))
    before = dovecot.flags("alice")
    assert before == {f"<msg{n}@acme.example>": frozenset() for n in range(1, 4)}
    alice.select_folder("INBOX", readonly=True)
    data = alice.fetch([1, 2, 3], ["BODY.PEEK[]", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    assert b"number 2" in data[2][b"BODY[]"]
    alice.fetch([1], ["BODY[TEXT]"])  # EXAMINE: even a non-PEEK fetch must not set \Seen
    assert dovecot.flags("alice") == before
    # ...and flags() does see real changes.
    alice.select_folder("INBOX")
    alice.add_flags([2], [b"\\Seen", b"\\Flagged"])
    after = dovecot.flags("alice")
    assert after["<msg2@acme.example>"] == {"\\Seen", "\\Flagged"}
    assert after["<msg1@acme.example>"] == frozenset()


def test_flags_keys_by_uid_without_message_id(dovecot: DovecotServer) -> None:
    dovecot.deliver("alice", b"Subject: no id\r\n\r\nhello\r\n", folder="Drafts")
    assert dovecot.flags("alice", "Drafts") == {"uid:1": frozenset()}


def test_flags_duplicate_message_ids_are_kept_apart(dovecot: DovecotServer) -> None:
    dovecot.deliver("alice", message(1))
    dovecot.deliver("alice", message(1))
    assert set(dovecot.flags("alice")) == {"<msg1@acme.example>", "<msg1@acme.example>#uid:2"}


def test_kick_without_sessions_is_a_noop(dovecot: DovecotServer) -> None:
    dovecot.kick("alice")
    assert dovecot.kill_imap_processes("alice") == []


def test_find_special_folder_drafts(alice: IMAPClient) -> None:
    assert alice.find_special_folder(DRAFTS) == "Drafts"
    names = {name for _flags, _sep, name in alice.list_folders()}
    assert {"INBOX", "Drafts", "Sent", "Trash", "Junk"} <= names
    subscribed = {name for _flags, _sep, name in alice.list_sub_folders()}
    assert {"Drafts", "Sent", "Trash", "Junk"} <= subscribed


def test_set_uidvalidity(dovecot: DovecotServer, alice: IMAPClient) -> None:
    dovecot.deliver("alice", message(1))
    old = alice.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
    alice.close_folder()
    dovecot.set_uidvalidity("alice", "INBOX", 12345)
    assert dovecot.uidvalidity("alice") == 12345
    st = alice.select_folder("INBOX", readonly=True)
    assert old != 12345
    assert st[b"UIDVALIDITY"] == 12345
    assert alice.search(["ALL"]) == [1]


def test_renumber_restarts_uids(dovecot: DovecotServer, alice: IMAPClient) -> None:
    for n in range(1, 4):
        dovecot.deliver("alice", message(n))
    dovecot.doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "uid", "1:2")
    st = alice.select_folder("INBOX", readonly=True)
    old_validity = st[b"UIDVALIDITY"]
    assert alice.search(["ALL"]) == [3]
    assert st[b"UIDNEXT"] == 4

    dovecot.renumber("alice", "INBOX")  # kicks alice's sessions first

    with pytest.raises((imaplib.IMAP4.abort, OSError)):  # BYE or EOF
        alice.noop()
    alice = connect(dovecot)
    st = alice.select_folder("INBOX", readonly=True)
    assert st[b"UIDVALIDITY"] != old_validity
    assert st[b"UIDNEXT"] == 2
    assert alice.search(["ALL"]) == [1]
    fetched = alice.fetch([1], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    assert b"<msg3@acme.example>" in fetched[1][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]
    dovecot.deliver("alice", message(4))
    alice.noop()
    assert alice.search(["ALL"]) == [1, 2]
    alice.logout()


def test_renumber_keeps_flags(dovecot: DovecotServer, alice: IMAPClient) -> None:
    dovecot.deliver("alice", message(1))
    dovecot.deliver("alice", message(2))
    alice.select_folder("INBOX")
    alice.add_flags([2], [b"\\Seen"])
    alice.close_folder()
    before = dovecot.flags("alice")
    dovecot.renumber("alice")
    assert dovecot.flags("alice") == before


def test_kick_makes_idle_check_return_bye(dovecot: DovecotServer, alice: IMAPClient) -> None:
    alice.select_folder("INBOX", readonly=True)
    alice.idle()
    dovecot.kick("alice")
    responses = alice.idle_check(timeout=5)
    assert any(r[0] == b"BYE" for r in responses), responses


def test_kill_imap_processes_gives_silent_eof(dovecot: DovecotServer, alice: IMAPClient) -> None:
    alice.select_folder("INBOX", readonly=True)
    alice.idle()
    pids = dovecot.kill_imap_processes("alice")
    assert len(pids) == 1
    # imapclient swallows the EOF: no BYE, just nothing.
    responses = alice.idle_check(timeout=5)
    assert not any(r and r[0] == b"BYE" for r in responses)
    with pytest.raises((imaplib.IMAP4.abort, OSError)):  # "socket error: EOF"
        alice.idle_done()
    assert dovecot.imap_pids("alice") == []


def test_kill_imap_processes_only_hits_our_master(dovecot: DovecotServer) -> None:
    with DovecotServer() as other:
        ours, theirs = connect(dovecot), connect(other)
        assert len(dovecot.kill_imap_processes("alice")) == 1
        assert theirs.noop()  # the other server's session is untouched
        theirs.logout()
        ours.shutdown()


def test_idle_notify_interval() -> None:
    with DovecotServer(idle_notify_interval="1 secs") as server:
        client = connect(server)
        client.select_folder("INBOX", readonly=True)
        client.idle()
        responses = client.idle_check(timeout=5)
        assert (b"OK", b"Still here") in responses
        client.idle_done()
        client.logout()


def test_idle_sees_delivery(dovecot: DovecotServer, alice: IMAPClient) -> None:
    alice.select_folder("INBOX", readonly=True)
    alice.idle()
    dovecot.deliver("alice", message(1))
    deadline = time.monotonic() + 10
    seen: list[tuple[object, ...]] = []
    while time.monotonic() < deadline and not any(r[1:2] == (b"EXISTS",) for r in seen):
        seen += alice.idle_check(timeout=1)
    alice.idle_done()
    assert (1, b"EXISTS") in seen


def test_maildir_path_and_log(dovecot: DovecotServer) -> None:
    dovecot.deliver("alice", message(1))
    root = dovecot.maildir_path("alice")
    assert (root / "cur").is_dir() or (root / "new").is_dir()
    assert list((root / "new").iterdir()) or list((root / "cur").iterdir())
    assert "starting up for imap" in dovecot.log()


def test_doveadm_error_carries_stderr(dovecot: DovecotServer) -> None:
    with pytest.raises(DovecotError, match=r"NoSuchFolder"):
        dovecot.doveadm("mailbox", "status", "-u", "alice", "messages", "NoSuchFolder")


def test_stop_is_clean_and_idempotent() -> None:
    server = DovecotServer().start()
    client = connect(server)
    client.select_folder("INBOX", readonly=True)
    client.idle()
    pgid, base = server.pid, server.base_dir
    assert pgid is not None
    server.stop()
    assert any(r[0] == b"BYE" for r in client.idle_check(timeout=2))
    client.shutdown()
    assert not base.exists()
    assert live_group_members(pgid) == []
    server.stop()  # second stop is a no-op
    assert server.log() == ""


def test_master_crash_leaves_nothing_behind() -> None:
    server = DovecotServer().start()
    client = connect(server)
    pgid = server.pid
    assert pgid is not None
    assert len(server.imap_pids("alice")) == 1
    os.kill(pgid, signal.SIGKILL)  # orphans the imap process and the helpers
    server.stop()
    assert live_group_members(pgid) == []
    client.shutdown()


# --------------------------------------------------------------------------- TLS


def test_tls_implicit_with_cafile(dovecot_tls: DovecotServer) -> None:
    assert dovecot_tls.tls_port is not None
    assert dovecot_tls.cafile is not None
    assert Path(dovecot_tls.cafile).read_text().startswith("-----BEGIN CERTIFICATE-----")
    ctx = ssl.create_default_context(cafile=dovecot_tls.cafile)
    for host in ("localhost", "127.0.0.1"):
        client = IMAPClient(host, port=dovecot_tls.tls_port, ssl=True, ssl_context=ctx, timeout=10)
        client.login("alice", "secret")
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
        client.logout()


def test_tls_default_context_rejects_self_signed(dovecot_tls: DovecotServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot_tls.host, port=dovecot_tls.tls_port, ssl=True, timeout=10)


def test_starttls_with_cafile(dovecot_tls: DovecotServer) -> None:
    client = IMAPClient(dovecot_tls.host, port=dovecot_tls.port, ssl=False, timeout=10)
    assert b"STARTTLS" in client.capabilities()
    client.starttls(ssl.create_default_context(cafile=dovecot_tls.cafile))
    client.login("alice", "secret")
    assert client.find_special_folder(DRAFTS) == "Drafts"
    client.logout()


def test_starttls_default_context_rejects_self_signed(dovecot_tls: DovecotServer) -> None:
    client = IMAPClient(dovecot_tls.host, port=dovecot_tls.port, ssl=False, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.starttls()
    with contextlib.suppress(OSError):
        client.shutdown()


def test_tls_server_still_allows_plain_login_on_loopback(dovecot_tls: DovecotServer) -> None:
    client = connect(dovecot_tls)
    assert client.noop()
    client.logout()


# --------------------------------------------------------------------------- skip / fail


def test_missing_dovecot_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixtures_dovecot, "dovecot_binary", lambda: None)
    monkeypatch.delenv("ONWARD_REQUIRE_DOVECOT", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install dovecot-imapd"):
        fixtures_dovecot.require_dovecot()


def test_missing_dovecot_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixtures_dovecot, "dovecot_binary", lambda: None)
    monkeypatch.setenv("ONWARD_REQUIRE_DOVECOT", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install dovecot-imapd"):
        fixtures_dovecot.require_dovecot()


def test_dovecot_binary_found() -> None:
    path = fixtures_dovecot.dovecot_binary()
    assert path is not None
    assert os.access(path, os.X_OK)
