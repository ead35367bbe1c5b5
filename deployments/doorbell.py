"""The one owner of the inbox watch in `onward run`, its health endpoint, and the interval run.

The doorbell thread owns the watch: every inbox pass of `onward run` runs there, one at a
time, in the worker process. It passes when IDLE rings, when the folder is found ahead of
the cursor after a pass, when IDLE is renewed, and when asked over HTTP.

The interval run ("watch_interval/watch", every ``[worker] fallback_interval_minutes``) is
the safety net under it, and a queue, not a rival: it asks the doorbell for a pass
(``POST /ring`` on the health endpoint) and reports that pass. Only when no doorbell
answers (no `onward run`, or its watch is stuck) does it run the pass itself. No
deployment concurrency slot is involved, so nothing is ever Cancelled for the want of one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from onward.config.settings import Settings
from onward.flows.interval_watch import RING_TIMEOUT
from onward.tasks.heap import MemoryCeiling, release_free_memory
from onward.tasks.mail.mailbox import Mailbox
from onward.tasks.mail.watcher import Watcher

if TYPE_CHECKING:
    from onward.tasks.mail.accounts import Account

log = logging.getLogger("onward.worker")


class Doorbell:
    """The IDLE watch of one account in a thread; passes are watch_inbox flow runs here."""

    def __init__(
        self,
        settings: Settings,
        account: Account,
        config_file: str | None,
        ceiling: MemoryCeiling | None = None,
        on_ceiling: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.ceiling, self.on_ceiling = ceiling, on_ceiling
        self.account = account
        self.config_file = config_file
        self.watcher = Watcher.for_account(account, settings, self._pass)
        self.thread = threading.Thread(target=self._run, name="onward-doorbell", daemon=True)
        self._stop = threading.Event()
        self.quiet_checks = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.watcher.wake.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.watcher.run(self._stop)
            except Exception:
                log.exception("the inbox doorbell failed; it starts again in 30 s")
                self._stop.wait(30)

    def _pass(self, mailbox: Mailbox) -> None:
        """One pass; raises when it failed (the watcher retries it with back-off)."""
        from onward.flows.common import in_process
        from onward.flows.watch_inbox import watch_inbox

        if self._caught_up(mailbox):
            self.quiet_checks += 1
            return  # nothing arrived and nothing waits: no flow run needed
        # "inline": the draft and the cooldown here, and the cooldown's end (a scheduled
        # deployment run, seconds of API calls) left to the worker's catch-up thread, off
        # the path of the next rejection's draft.
        try:
            with in_process():
                watch_inbox(
                    mailbox=self.account.name,
                    config_file=self.config_file,
                    reactions="inline",
                    ask_in_ui=True,
                )
        finally:
            release_free_memory()  # months of passes must not keep each one's peak
            if self.ceiling is not None and self.on_ceiling and self.ceiling.over():
                self.on_ceiling()

    def _caught_up(self, mailbox: Mailbox) -> bool:
        """UIDNEXT matches the cursor and no rejection waits for its reactions; then the
        check itself counts as the pass (``last_sync_at``)."""
        from onward.tasks.store import Store, get_mailbox, pending_rejections, utcnow

        state = mailbox.open()
        with (
            Store.open(self.settings.database_url, upgrade=False) as store,
            store.unit_of_work() as session,
        ):
            row = get_mailbox(session, self.account.name)
            if row is None or row.last_uid is None:
                return False
            if (row.uidvalidity, row.last_uid) != (state.uidvalidity, state.uidnext - 1):
                return False
            if pending_rejections(session, row.id):
                return False
            row.last_sync_at = utcnow()
            return True

    def health(self) -> dict[str, Any]:
        stats = self.watcher.stats
        now = time.monotonic()
        # The watch loop shows life at least once per IDLE renewal and per pass attempt.
        alive = self.thread.is_alive() and (
            now - stats.heartbeat < self.watcher.renew_seconds + RING_TIMEOUT
        )
        age = _age_seconds(stats.last_pass_at)
        return {
            "watch_alive": alive,
            "mailbox": self.account.name,
            "last_pass_at": stats.last_pass_at.isoformat() if stats.last_pass_at else None,
            "last_pass_age_seconds": age,
            "passes": stats.syncs,
            "failed_passes": stats.failed_passes,
            "reconnects": stats.reconnects,
            "last_error": stats.last_error,
        }


def _age_seconds(moment: Any) -> float | None:
    from onward.tasks.store import utcnow

    return None if moment is None else round((utcnow() - moment).total_seconds(), 1)


class HealthServer:
    """``GET /health`` (200 when the watch is alive and its last pass is recent, else 503)
    and ``POST /ring`` (a pass now; 200 once it succeeded) on 127.0.0.1."""

    def __init__(self, port: int, doorbell: Doorbell, stale_after: float, extra: Any) -> None:
        self.doorbell, self.stale_after, self.extra = doorbell, stale_after, extra
        handler = type("Handler", (_Handler,), {"owner": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="onward-health", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> HealthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def report(self) -> tuple[int, dict[str, Any]]:
        body = {**self.doorbell.health(), **self.extra()}
        age = body["last_pass_age_seconds"]
        body["healthy"] = bool(body["watch_alive"] and age is not None and age < self.stale_after)
        return (200 if body["healthy"] else 503), body


class _Handler(BaseHTTPRequestHandler):
    owner: HealthServer

    def do_GET(self) -> None:
        if self.path.rstrip("/") not in ("/health", ""):
            self._send(404, {"error": "try /health"})
            return
        self._send(*self.owner.report())

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/ring":
            self._send(404, {"error": "try POST /ring"})
            return
        ok = self.owner.doorbell.watcher.ring_and_wait(RING_TIMEOUT)
        _, body = self.owner.report()
        self._send(200 if ok else 503, {**body, "ok": ok})

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a probe every few seconds is not news
