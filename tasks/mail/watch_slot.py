"""One watcher per mailbox across machines: a Prefect global concurrency limit per mailbox.

Passes that run as deployment runs (work-pool workers, the interval run of `onward run`)
hold ``onward-watch-<mailbox>`` (limit 1) for the whole pass, so two workers on two
machines never watch one mailbox at once. The app database would keep the outcome exactly
once anyway (its unique constraints are the real guard); the slot saves the duplicate
IMAP session and the noise of the race. The doorbell's in-process passes do not take it:
they must carry on while a local Prefect server restarts.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING
from uuid import UUID

from onward.tasks.errors import OnwardError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

log = logging.getLogger("onward.watch")

# A killed holder's slot frees itself after this long; a live holder renews it meanwhile.
SLOT_LEASE_SECONDS = 60.0


def watch_slot_name(mailbox: str) -> str:
    """``onward-watch-<mailbox>``; a name Prefect refuses (a Maildir path has slashes) or
    an over-long one is made safe, with a digest of the original so it stays distinct."""
    slug = re.sub(r"[^A-Za-z0-9._@+-]+", "-", mailbox).strip("-")[:80]
    if slug != mailbox:
        slug += "-" + hashlib.sha256(mailbox.encode()).hexdigest()[:8]
    return f"onward-watch-{slug}"


def ensure_watch_limit(client: SyncPrefectClient, name: str) -> None:
    """Create the limit (1 slot) unless it exists; a limit someone raised is put back to 1."""
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        existing = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        with suppress(ObjectAlreadyExists):  # another worker created it a moment ago
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        return
    if existing.limit != 1 or not existing.active:
        client.update_global_concurrency_limit(
            name, GlobalConcurrencyLimitUpdate(limit=1, active=True)
        )


@contextmanager
def watch_slot(mailbox: str) -> Iterator[bool]:
    """Hold the mailbox's slot for the block: yields True when held, False at once when
    another worker holds it (then the caller does nothing).

    The slot is taken with one request rather than ``prefect.concurrency.sync``'s waiting
    acquisition: that one, given a timeout, logs an ERROR with a traceback when it expires
    and keeps retrying in the background after its caller gave up."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse

    name = watch_slot_name(mailbox)
    with get_client(sync_client=True) as client:
        ensure_watch_limit(client, name)
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[name], slots=1, mode="concurrency", lease_duration=SLOT_LEASE_SECONDS
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != httpx.codes.LOCKED:
                raise
            response = None  # taken: another worker is watching
        if response is None:
            yield False
            return
        lease = ConcurrencyLimitWithLeaseResponse.model_validate(response.json())
        if not lease.limits:  # never an unguarded pass
            raise OnwardError(f"the concurrency limit {name} could not be created")
        stop = threading.Event()
        renewer = threading.Thread(
            target=_renew, args=(lease.lease_id, stop), name="onward-watch-slot", daemon=True
        )
        renewer.start()
        try:
            yield True
        finally:
            stop.set()
            renewer.join(timeout=10)
            try:
                client.release_concurrency_slots_with_lease(lease.lease_id)
            except Exception as exc:  # it expires by itself within the lease
                log.warning("releasing the watch slot %s failed (%s)", name, exc)


def _renew(lease_id: UUID, stop: threading.Event) -> None:
    """Keep the lease while the pass runs; a failed renewal (an API blip) is logged, not
    fatal: at worst a second watcher overlaps, and the database keeps that exact."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while not stop.wait(SLOT_LEASE_SECONDS / 3):
            try:
                client.renew_concurrency_lease(lease_id, SLOT_LEASE_SECONDS)
            except Exception as exc:
                log.warning("renewing the watch slot failed (%s); trying again", exc)
