"""Choosing the per-message step of watch_inbox for a mailbox.

Steps are picklable (module-level functions or dataclass instances) because a big
backlog is decided in a worker process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.decide import MessageHandler, record_only

if TYPE_CHECKING:
    from config.settings import Settings
    from tasks.accounts import Account


def message_step(settings: Settings, account: Account) -> MessageHandler:
    """The step for new messages of ``account``: for now, record them as they are."""
    return record_only
