"""The per-message step of watch_inbox: what happens to each new message once recorded."""

from __future__ import annotations

from sqlalchemy.orm import Session

from config.settings import Settings
from tasks.accounts import Account
from tasks.message import Message
from tasks.store import LedgerEntry
from tasks.sync import MessageHandler


def message_step(settings: Settings, account: Account) -> MessageHandler | None:
    """The step for new messages of ``account``; None records them without further work."""

    def record_only(session: Session, entry: LedgerEntry, message: Message) -> None:
        return None

    return record_only
