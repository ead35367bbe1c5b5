"""The per-message step of watch_inbox: what is decided about each new message."""

from __future__ import annotations

from config.settings import Settings
from tasks.accounts import Account
from tasks.message import Message
from tasks.sync import MessageHandler, StepResult


def message_step(settings: Settings, account: Account) -> MessageHandler:
    """The step for new messages of ``account``: for now, record them as they are."""

    def record_only(message: Message) -> StepResult:
        return StepResult()

    return record_only
