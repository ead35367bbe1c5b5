"""Turn a stored mailbox row into a live backend, with its secret read at connect time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from onward.config.settings import Settings
from onward.tasks.errors import ConfigError
from onward.tasks.mail.imap import ImapConfig, ImapMailbox
from onward.tasks.mail.mailbox import Mailbox
from onward.tasks.mail.maildir import MaildirMailbox
from onward.tasks.secrets import load_secret
from onward.tasks.store import Mailbox as MailboxRow


@dataclass(frozen=True)
class Account:
    """A detached copy of what is needed to open a mailbox; safe to pass between threads."""

    name: str
    kind: str
    folder: str
    address: str | None
    imap: ImapConfig | None = None
    secret_ref: str | None = None
    path: str | None = None

    @classmethod
    def from_row(cls, row: MailboxRow, settings: Settings) -> Account:
        imap = None
        if row.kind == "imap":
            if not (row.host and row.username):
                raise ConfigError(f"mailbox {row.name!r} is incomplete; run `onward connect` again")
            imap = ImapConfig(
                host=row.host,
                port=row.port,
                username=row.username,
                security=row.security or "tls",
                auth=row.auth or "password",
                folder=row.folder,
                ca_file=row.ca_file,
                connect_timeout=settings.sync.connect_timeout_seconds,
                read_timeout=settings.sync.read_timeout_seconds,
            )
        return cls(
            name=row.name,
            kind=row.kind,
            folder=row.folder,
            address=row.address,
            imap=imap,
            secret_ref=row.secret_ref,
            path=row.path,
        )


def open_backend(account: Account, settings: Settings) -> Mailbox:
    """A backend for ``account``, not yet connected."""
    if account.kind == "maildir":
        if not account.path:
            raise ConfigError(f"mailbox {account.name!r} has no Maildir path; run `onward connect`")
        return MaildirMailbox(
            Path(account.path),
            account.folder,
            poll_interval=min(2.0, settings.sync.poll_interval_seconds),
        )
    if account.kind == "imap" and account.imap is not None:
        ref = account.secret_ref
        if ref is None:
            raise ConfigError(
                f"mailbox {account.name!r} has no stored secret; run `onward connect`"
            )
        return ImapMailbox(account.imap, lambda: load_secret(settings.secrets_dir, ref))
    raise ConfigError(f"mailbox {account.name!r} has unknown kind {account.kind!r}")


def load_account(settings: Settings, name: str | None) -> Account:
    """The connected mailbox called ``name`` (or the last connected one)."""
    from onward.tasks.store import Store, get_mailbox

    store = Store.open(settings.database_url)
    try:
        with store.unit_of_work() as session:
            row = get_mailbox(session, name)
            if row is None:
                raise ConfigError("no mailbox is connected; run `onward connect` first")
            return Account.from_row(row, settings)
    finally:
        store.close()
