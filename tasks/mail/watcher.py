"""The long-running watch: IDLE as a doorbell, a sync after every ring, reconnect on loss.

A ring is never trusted to be the only one: after each pass the folder is looked at again
(UIDNEXT against the cursor the pass left) and another pass runs until they agree, so mail
that arrived while a pass ran is not left waiting for the next ring. A pass that fails (a
locked database, a Prefect API that is restarting) is retried with back-off until it
succeeds; the ring that asked for it is not dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from onward.tasks.errors import MailboxAuthError, MailboxConnectError, TransientMailboxError
from onward.tasks.mail.mailbox import FolderState, Mailbox

if TYPE_CHECKING:
    from onward.config.settings import Settings
    from onward.tasks.mail.accounts import Account

log = logging.getLogger("onward.watch")

# Passes in a row while the folder keeps moving ahead of the cursor.
MAX_RECHECKS = 20


@dataclass
class WatchStats:
    syncs: int = 0
    connects: int = 0
    reconnects: int = 0
    rechecks: int = 0
    failed_passes: int = 0
    last_error: str | None = None
    last_pass_at: datetime | None = None  # the end of the last successful pass (UTC)
    heartbeat: float = 0.0  # time.monotonic() of the watch loop's last sign of life


class Watcher:
    """Keeps one connection to the watched folder and syncs whenever it may have changed.

    ``run_sync`` does the real work and is correct on its own; the doorbell only makes it
    prompt. It runs after every connect (mail that arrived while disconnected), after every
    wake-up, at least every ``renew_seconds`` (when IDLE is re-issued), whenever ``ring()``
    asks, and again while ``behind`` says the folder holds mail the pass did not reach.
    """

    def __init__(
        self,
        open_mailbox: Callable[[], Mailbox],
        run_sync: Callable[[Mailbox], object],
        *,
        renew_seconds: float = 540.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
        behind: Callable[[FolderState], bool] | None = None,
    ) -> None:
        self.open_mailbox = open_mailbox
        self.run_sync = run_sync
        self.renew_seconds = renew_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.behind = behind
        self.stats = WatchStats()
        self.wake = threading.Event()
        self._passes = threading.Condition()
        self._started = 0  # passes begun
        self._done = 0  # the number of the last pass that succeeded
        self._waker: threading.Thread | None = None

    @classmethod
    def for_account(
        cls,
        account: Account,
        settings: Settings,
        run_sync: Callable[[Mailbox], object],
        *,
        renew_seconds: float | None = None,
    ) -> Watcher:
        """A watcher on ``account``'s folder with the renewal, back-off and re-check from
        settings; ``renew_seconds`` shortens the renewal (it is also the fallback pass)."""
        from onward.tasks.mail.accounts import open_backend

        renew = float(settings.sync.idle_renew_seconds)
        return cls(
            lambda: open_backend(account, settings),
            run_sync,
            renew_seconds=min(renew, renew_seconds) if renew_seconds else renew,
            backoff_initial=settings.sync.reconnect_initial_seconds,
            backoff_max=settings.sync.reconnect_max_seconds,
            behind=cursor_behind(settings, account.name),
        )

    def ring(self) -> None:
        """Ask for a pass now (from another thread)."""
        self.wake.set()

    def ring_and_wait(self, timeout: float) -> bool:
        """Ask for a pass that starts after this call and wait until one succeeds."""
        with self._passes:
            wanted = self._started + 1
            self.wake.set()
            return self._passes.wait_for(lambda: self._done >= wanted, timeout)

    def run(self, stop: threading.Event) -> None:
        def wake_on_stop() -> None:
            stop.wait()
            self.wake.set()

        if self._waker is None or not self._waker.is_alive():  # one per watcher, not per run
            self._waker = threading.Thread(
                target=wake_on_stop, name="onward-watch-stop", daemon=True
            )
            self._waker.start()
        delay = self.backoff_initial
        while not stop.is_set():
            self.stats.heartbeat = time.monotonic()
            mailbox = self.open_mailbox()
            try:
                mailbox.open()
                self.stats.connects += 1
                self._pass_until_caught_up(mailbox, stop)
                delay = self.backoff_initial
                while not stop.is_set():
                    self.stats.heartbeat = time.monotonic()
                    mailbox.wait_for_news(self.renew_seconds, self.wake)
                    if stop.is_set():
                        break
                    self._pass_until_caught_up(mailbox, stop)
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

    def _pass_until_caught_up(self, mailbox: Mailbox, stop: threading.Event) -> None:
        delay = self.backoff_initial
        rechecks = 0
        last_seen: int | None = None  # UIDNEXT at the last re-check
        while not stop.is_set():
            self.wake.clear()  # a ring from now on asks for one more pass
            with self._passes:
                self._started += 1
                number = self._started
            self.stats.heartbeat = time.monotonic()
            try:
                self.run_sync(mailbox)
            except Exception as exc:  # the pass is retried, the watch goes on
                self.stats.failed_passes += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("an inbox pass failed (%s); retrying in %.0f s", exc, delay)
                if not stop.is_set():
                    self.wake.wait(delay)  # a ring (or stop) cuts the wait short
                delay = min(delay * 2, min(self.backoff_max, 30.0))
                continue
            self.stats.syncs += 1
            self.stats.last_pass_at = _now()
            self.stats.last_error = None
            with self._passes:
                self._done = number
                self._passes.notify_all()
            delay = self.backoff_initial
            if self.wake.is_set() and not stop.is_set():
                continue  # rung during the pass
            # A ring may have come and gone while the pass ran (IDLE tells only the
            # connection that is idling, and not about mail the pass already saw): look.
            if self.behind is None:
                return
            state = mailbox.open()  # a lost connection here means reconnect, as in IDLE
            try:
                behind = self.behind(state)
            except Exception as exc:  # the database is busy: a pass finds out for sure
                log.info("could not compare the folder with the cursor (%s)", exc)
                behind = True
            if not behind:
                return
            if state.uidnext != last_seen:
                # New mail since the last look: a steady stream, not a cursor that never
                # agrees. Giving up here would leave it until the next ring, and the look
                # itself has already taken in the news a ring would have brought.
                rechecks = 0
            last_seen = state.uidnext
            if rechecks >= MAX_RECHECKS:
                return  # (a cursor that never agrees waits for the next ring or renewal)
            rechecks += 1
            self.stats.rechecks += 1


def _now() -> datetime:
    from onward.tasks.store import utcnow

    return utcnow()


def cursor_behind(settings: Settings, name: str) -> Callable[[FolderState], bool]:
    """Whether the folder is ahead of the cursor in the database: a pass is needed."""
    from onward.tasks.store import Store, get_mailbox

    def behind(state: FolderState) -> bool:
        with (
            Store.open(settings.database_url, upgrade=False) as store,
            store.unit_of_work() as session,
        ):
            row = get_mailbox(session, name)
            if row is None or row.last_uid is None:
                return True
            return (row.uidvalidity, row.last_uid) != (state.uidvalidity, state.uidnext - 1)

    return behind
