"""The long-running watch: IDLE as a doorbell, a sync after every ring, reconnect on loss."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onward.tasks.errors import MailboxAuthError, MailboxConnectError, TransientMailboxError
from onward.tasks.mail.mailbox import Mailbox

if TYPE_CHECKING:
    from onward.config.settings import Settings
    from onward.tasks.mail.accounts import Account

log = logging.getLogger("onward.watch")


@dataclass
class WatchStats:
    syncs: int = 0
    connects: int = 0
    reconnects: int = 0
    last_error: str | None = None


class Watcher:
    """Keeps one connection to the watched folder and syncs whenever it may have changed.

    ``run_sync`` does the real work and is correct on its own; the doorbell only makes it
    prompt. It runs after every connect (mail that arrived while disconnected), after every
    wake-up, and at least every ``renew_seconds`` (when IDLE is re-issued).
    """

    def __init__(
        self,
        open_mailbox: Callable[[], Mailbox],
        run_sync: Callable[[Mailbox], object],
        *,
        renew_seconds: float = 540.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.open_mailbox = open_mailbox
        self.run_sync = run_sync
        self.renew_seconds = renew_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stats = WatchStats()

    @classmethod
    def for_account(
        cls, account: Account, settings: Settings, run_sync: Callable[[Mailbox], object]
    ) -> Watcher:
        """A watcher on ``account``'s folder with the renewal and back-off from settings."""
        from onward.tasks.mail.accounts import open_backend

        return cls(
            lambda: open_backend(account, settings),
            run_sync,
            renew_seconds=settings.sync.idle_renew_seconds,
            backoff_initial=settings.sync.reconnect_initial_seconds,
            backoff_max=settings.sync.reconnect_max_seconds,
        )

    def run(self, stop: threading.Event) -> None:
        delay = self.backoff_initial
        while not stop.is_set():
            mailbox = self.open_mailbox()
            try:
                mailbox.open()
                self.stats.connects += 1
                self.run_sync(mailbox)
                self.stats.syncs += 1
                delay = self.backoff_initial
                while not stop.is_set():
                    mailbox.wait_for_news(self.renew_seconds, stop)
                    if stop.is_set():
                        break
                    self.run_sync(mailbox)
                    self.stats.syncs += 1
            except MailboxAuthError:
                raise  # retrying a refused password only locks the account
            except (TransientMailboxError, MailboxConnectError) as exc:
                self.stats.reconnects += 1
                self.stats.last_error = str(exc)
                log.warning("mailbox connection lost (%s); reconnecting in %.0f s", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, self.backoff_max)
            finally:
                mailbox.close()
