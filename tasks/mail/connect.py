"""Connecting a mailbox: log in (or open the Maildir), find Drafts, keep the secret outside
the database, remember the mailbox. Prompts belong to the command line, not here."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from onward.config.settings import Settings
from onward.tasks.errors import ConfigError
from onward.tasks.mail.imap import ImapConfig, ImapMailbox
from onward.tasks.mail.maildir import MaildirMailbox
from onward.tasks.secrets import store_secret
from onward.tasks.store import Mailbox, Store, get_mailbox


@dataclass(frozen=True)
class ImapLogin:
    host: str
    user: str
    secret: str
    auth: Literal["password", "xoauth2"] = "password"
    port: int | None = None
    security: str = "tls"
    ca_file: Path | None = None
    secret_store: Literal["file", "prefect"] = "file"


@dataclass(frozen=True)
class ConnectResult:
    """What `onward connect` did, for people and for scripts."""

    name: str
    kind: str
    where: str
    folder: str
    drafts_folder: str | None
    highest_uid: int
    address: str | None
    secret: str | None  # where the secret is kept, never the secret itself
    cursor_reset: bool


def looks_like_address(value: str | None) -> bool:
    return bool(value) and "@" in str(value).strip("@")


def connect_maildir(
    settings: Settings,
    path: Path,
    *,
    folder: str = "INBOX",
    address: str | None = None,
    name: str | None = None,
) -> ConnectResult:
    root = path.expanduser().resolve()
    with closing(MaildirMailbox(root, folder)) as backend:
        state = backend.open()
        drafts = backend.find_drafts_folder()
    fields: dict[str, Any] = {
        "kind": "maildir",
        "path": str(root),
        "folder": folder,
        "drafts_folder": drafts,
        "address": address,
    }
    name = name or f"maildir:{root}"
    reset = _remember(settings, name, fields)
    return ConnectResult(
        name, "maildir", str(root), folder, drafts, state.uidnext - 1, address, None, reset
    )


def connect_imap(
    settings: Settings,
    login: ImapLogin,
    *,
    folder: str = "INBOX",
    address: str | None = None,
    name: str | None = None,
) -> ConnectResult:
    """Log in with ``login`` (the server must accept it before anything is kept)."""
    address = address or (login.user if looks_like_address(login.user) else None)
    if not address:
        raise ConfigError(
            f"the login {login.user!r} is not an e-mail address; drafts need your address: "
            "pass --address you@example.org"
        )
    config = ImapConfig(
        host=login.host,
        port=login.port,
        username=login.user,
        security=login.security,
        auth=login.auth,
        folder=folder,
        ca_file=str(login.ca_file.resolve()) if login.ca_file else None,
        connect_timeout=settings.sync.connect_timeout_seconds,
        read_timeout=settings.sync.read_timeout_seconds,
    )
    with closing(ImapMailbox(config, lambda: login.secret)) as mailbox:
        state = mailbox.open()
        drafts = mailbox.find_drafts_folder()
    name = name or f"{login.user}@{login.host}"
    ref = store_secret(settings.secrets_dir, name, login.secret, login.secret_store)
    fields: dict[str, Any] = {
        "kind": "imap",
        "host": login.host,
        "port": config.effective_port,
        "username": login.user,
        "security": login.security,
        "auth": login.auth,
        "secret_ref": ref,
        "ca_file": config.ca_file,
        "folder": folder,
        "drafts_folder": drafts,
        "address": address,
    }
    reset = _remember(settings, name, fields)
    where = f"{login.user} at {login.host}:{config.effective_port} ({login.security})"
    return ConnectResult(
        name,
        "imap",
        where,
        folder,
        drafts,
        state.uidnext - 1,
        address,
        describe_secret(settings, ref),
        reset,
    )


def _remember(settings: Settings, name: str, fields: dict[str, Any]) -> bool:
    """Insert or update the mailbox row; True when its cursor was reset (another folder)."""
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        row = get_mailbox(session, name)
        if row is None:
            session.add(Mailbox(name=name, **fields))
            return False
        moved = (row.host, row.path, row.folder) != (
            fields.get("host"),
            fields.get("path"),
            fields["folder"],
        )
        for key, value in fields.items():
            setattr(row, key, value)
        if moved:  # a different folder: its UIDs mean nothing to the old cursor
            row.uidvalidity = row.last_uid = row.watch_start = None
        return moved


def describe_secret(settings: Settings, ref: str) -> str:
    kind, _, value = ref.partition(":")
    if kind == "file":
        return f"{settings.secrets_dir / value} (mode 0600)"
    return f"Prefect Secret block {value!r}"
