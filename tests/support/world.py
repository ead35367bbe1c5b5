"""onward connected to a real mailbox (Dovecot over IMAP, or a Maildir) the way a person
does it (``onward connect``, ``onward sync --once``), with ways to look at the outcome."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from onward.config.settings import Settings, load_settings
from onward.deployments.cli import main
from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
from onward.tasks.store import Store
from tests.support.dovecot import DovecotServer

ALICE = "alice@example.org"
PASSWORD = "secret"  # the dovecot fixture's password for alice

REJECTION_BODY = (
    "Dear Alice,\r\n\r\n"
    "Thank you for applying for the {role} position at {company}. After careful "
    "consideration we have decided to move forward with other candidates.\r\n\r\n"
    "Kind regards,\r\nJordan Hale\r\n"
)


def rejection_mail(
    message_id: str,
    *,
    from_: str = "Jordan Hale <jordan.hale@brightforge.example>",
    company: str = "Brightforge",
    role: str = "Data Engineer",
    extra: str = "",
    to: str = f"Alice Example <{ALICE}>",
) -> bytes:
    """A rejection, header values written exactly as given (8-bit allowed)."""
    when = format_datetime(datetime.now(UTC) - timedelta(minutes=5))
    head = (
        f"From: {from_}\r\nTo: {to}\r\nSubject: Your application for {role}\r\n"
        f"Date: {when}\r\nMessage-ID: {message_id}\r\n{extra}"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode() + REJECTION_BODY.format(company=company, role=role).encode()


@dataclass
class World:
    """onward connected to one mailbox; ``kind`` is "imap" or "maildir"."""

    kind: str
    settings: Settings
    dovecot: DovecotServer | None = None
    maildir: Path | None = None

    def deliver(self, raw: bytes) -> None:
        if self.dovecot is not None:
            self.dovecot.deliver("alice", raw)
        else:
            assert self.maildir is not None
            deliver_to_maildir(self.maildir, raw)

    def sync(self, *extra: str) -> int:
        return main(["sync", "--once", *extra])

    def query(self, model: type[Any], **where: Any) -> list[Any]:
        with Store.open(self.settings.database_url) as store, store.unit_of_work() as session:
            return list(session.scalars(select(model).filter_by(**where).order_by(model.id)))

    def drafts(self) -> list[EmailMessage]:
        """Every message in Drafts, read without changing anything."""
        raws: list[bytes] = []
        if self.dovecot is not None:
            client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=30)
            try:
                client.login("alice", PASSWORD)
                client.select_folder("Drafts", readonly=True)
                uids = client.search(["ALL"])
                for start in range(0, len(uids), 200):
                    data = client.fetch(uids[start : start + 200], ["BODY.PEEK[]"])
                    raws.extend(bytes(item[b"BODY[]"]) for item in data.values())
            finally:
                client.logout()
        else:
            assert self.maildir is not None
            for sub in ("new", "cur"):
                folder = self.maildir / ".Drafts" / sub
                raws.extend(p.read_bytes() for p in sorted(folder.glob("*")) if p.is_file())
        return [
            email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[misc]
            for raw in raws
        ]


def connect_world(
    kind: str,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    dovecot: DovecotServer | None,
    *,
    address: str | None = ALICE,
) -> World:
    """`onward connect`, then a first `sync --once` that starts the watch."""
    home = tmp_path / "home"
    monkeypatch.setenv("ONWARD_HOME", str(home))
    monkeypatch.setenv("ONWARD_DATABASE_URL", database_url)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    args = ["--address", address] if address else []
    maildir = None
    if kind == "imap":
        assert dovecot is not None
        monkeypatch.setenv("ONWARD_TEST_IMAP_PW", PASSWORD)
        args += [
            "--host",
            "127.0.0.1",
            "--port",
            str(dovecot.port),
            "--user",
            "alice",
            "--security",
            "plain",
            "--password-env",
            "ONWARD_TEST_IMAP_PW",
        ]
    else:
        dovecot = None
        maildir = create_maildir(tmp_path / "Maildir")
        args += ["--maildir", str(maildir)]
    assert main(["connect", *args]) == 0
    env = {"ONWARD_HOME": str(home), "ONWARD_DATABASE_URL": database_url}
    world = World(kind, load_settings(environ=env), dovecot=dovecot, maildir=maildir)
    assert world.sync() == 0  # the first pass only starts the watch
    return world


@pytest.fixture(params=["imap", "maildir"])
def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    dovecot = request.getfixturevalue("dovecot") if request.param == "imap" else None
    return connect_world(request.param, tmp_path, database_url, monkeypatch, dovecot)
