"""`onward run`: the worker a person leaves running.

One process serves every deployment (with a process limit) and keeps an IDLE doorbell on
the inbox; each ring asks for a watch_inbox run. A local Prefect server is started and
supervised when PREFECT_API_URL is not set. SIGTERM or Ctrl-C stops it cleanly; the
database and Prefect's scheduled runs carry everything over to the next start.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

from onward.config.settings import Settings
from onward.deployments.server import LocalPrefectServer
from onward.tasks.status import write_worker_info

log = logging.getLogger("onward.worker")

ZOMBIE_AUTOMATION = "onward: crash zombie flow runs"
# The calendar is rebuilt after each change; this run also retries CalDAV pushes.
CALENDAR_INTERVAL_MINUTES = 15


def run_worker(settings: Settings, mailbox: str | None, config_file: str | None) -> int:
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "1")  # reactions within seconds
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")  # zombie detection
    with ExitStack() as stack:
        if not os.environ.get("PREFECT_API_URL"):
            print("starting a local Prefect server ...", flush=True)
            server = stack.enter_context(
                LocalPrefectServer(settings.prefect_home, port=settings.worker.prefect_port)
            )
            os.environ["PREFECT_API_URL"] = server.api_url
            ui = server.ui_url
        else:
            ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
        return _serve(settings, mailbox, config_file, ui)
    return 0  # pragma: no cover - ExitStack never swallows


def _serve(settings: Settings, mailbox: str | None, config_file: str | None, ui: str) -> int:
    # Imported only now: Prefect reads PREFECT_API_URL when it is first imported.
    from prefect import serve

    from onward.tasks.mail.accounts import load_account

    account = load_account(settings, mailbox)
    deployments = build_deployments(account.name, config_file, settings)
    for deployment in deployments:  # registered before the doorbell may ask for a run
        deployment.apply()
    install_zombie_automation()
    stop = threading.Event()
    doorbell = threading.Thread(
        target=_doorbell,
        args=(settings, account, config_file, stop),
        name="onward-doorbell",
        daemon=True,
    )
    catch_up = threading.Thread(
        target=_catch_up, args=(settings, config_file, stop), name="onward-catch-up", daemon=True
    )

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # serve() shuts down cleanly on it

    signal.signal(signal.SIGTERM, on_sigterm)
    with ExitStack() as stack:
        feed = _start_feed(settings, stack)
        write_worker_info(settings, ui, feed)
        print(f"onward is watching {account.name}", flush=True)
        print(f"Prefect UI: {ui}", flush=True)
        if feed:
            print(f"calendar feed: {feed} (subscribe to it in your calendar app)", flush=True)
        doorbell.start()
        catch_up.start()
        try:
            serve(*deployments, limit=settings.worker.process_limit, print_starting_message=False)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            doorbell.join(timeout=10)
            print("onward stopped; it picks up where it left off on the next start", flush=True)
    return 0


def _start_feed(settings: Settings, stack: ExitStack) -> str | None:
    """The read-only calendar feed on 127.0.0.1; onward runs on without it if the port is
    taken (the file and CalDAV still work)."""
    from onward.tasks.calendar.feed import CalendarFeed
    from onward.tasks.calendar.publish import publish

    if not settings.calendar.feed_port:
        return None
    try:
        publish(settings)  # the feed has something to serve from the first request
        feed = stack.enter_context(
            CalendarFeed(settings.calendar_file, settings.calendar.feed_port)
        )
    except OSError as exc:
        log.warning(
            "the calendar feed could not start on 127.0.0.1:%s (%s); set [calendar] feed_port",
            settings.calendar.feed_port,
            exc,
        )
        return None
    return feed.url


def build_deployments(mailbox: str, config_file: str | None, settings: Settings) -> list[Any]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType  # type: ignore[attr-defined]
    from prefect.schedules import Cron

    from onward.flows.calendar import calendar_sync
    from onward.flows.cooldown import cooldown, pick_yourself_up
    from onward.flows.networking_round import networking_round
    from onward.flows.request_feedback import request_feedback
    from onward.flows.review import review_rejection
    from onward.flows.watch_inbox import watch_inbox
    from onward.tasks.network.rounds import round_cron

    common: dict[str, Any] = {
        "tags": ["onward"],
        # Module paths, not file paths: the installed package runs from any directory.
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }
    return [
        watch_inbox.to_deployment(
            "watch",
            parameters={"mailbox": mailbox, "config_file": config_file, "reactions": "deployments"},
            interval=timedelta(minutes=settings.worker.fallback_interval_minutes),
            # The interval fallback; passes on IDLE rings run in the worker process itself.
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            ),
            description="Sync new mail, classify it, start the reactions to rejections.",
            **common,
        ),
        request_feedback.to_deployment(
            "request-feedback", description="Draft the feedback request in Drafts.", **common
        ),
        cooldown.to_deployment(
            "cooldown", description="Record the cooldown and schedule its end.", **common
        ),
        pick_yourself_up.to_deployment(
            "pick-yourself-up", description="The end of a cooldown.", **common
        ),
        review_rejection.to_deployment(
            "review-rejection",
            description="Ask you whether a borderline mail is a rejection (a form).",
            **common,
        ),
        calendar_sync.to_deployment(
            "calendar",
            parameters={"config_file": config_file},
            interval=timedelta(minutes=CALENDAR_INTERVAL_MINUTES),
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            description="Rebuild the calendar and push pending changes to CalDAV.",
            **common,
        ),
        networking_round.to_deployment(
            "networking-round",
            parameters={"config_file": config_file},
            # [network] round_day and round_time, in the person's time zone.
            schedules=[Cron(round_cron(settings.network), timezone=settings.timezone_name)],
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            description="This week's networking tasks: a few touches that warm contacts up.",
            **common,
        ),
    ]


def install_zombie_automation() -> None:
    """Runs of a killed worker become Crashed instead of Running forever (and holding the
    watch deployment's concurrency slot)."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        Automation.read(name=ZOMBIE_AUTOMATION)  # type: ignore[unused-coroutine]  # sync here
        return
    except ValueError:
        pass
    Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=3 * 60 + 30),  # > 3 missed heartbeats of 60 s
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                state=StateType.CRASHED,
                message="Flow run marked crashed: no heartbeat.",
                force=False,
            )
        ],
    ).create()


def _doorbell(
    settings: Settings, account: Any, config_file: str | None, stop: threading.Event
) -> None:
    """IDLE on the inbox; every ring (and every reconnect) runs a watch_inbox pass here, in
    this process, with the draft and the cooldown as its subflows: measured on a 2-core
    machine, a flow-run process costs 3-5 s of CPU, and 20 rejections in a minute queued
    behind such processes waited over a minute for their drafts. The cooldown's end is a
    scheduled deployment run; the interval pass starts reactions as deployment runs."""
    from onward.flows.common import in_process
    from onward.flows.watch_inbox import watch_inbox
    from onward.tasks.mail.watcher import Watcher

    def ring(_: object) -> None:
        try:
            with in_process():
                watch_inbox(mailbox=account.name, config_file=config_file, reactions="worker")
        except Exception:
            # Recorded in the UI as a failed run; the next ring or the interval run retries.
            log.exception("an inbox pass failed")

    watcher = Watcher.for_account(account, settings, ring)
    while not stop.is_set():
        try:
            watcher.run(stop)
        except Exception:
            log.exception("the inbox doorbell failed; retrying in 60 s (the interval run goes on)")
            stop.wait(60)


def _catch_up(settings: Settings, config_file: str | None, stop: threading.Event) -> None:
    """Cooldowns recorded by `onward sync --once` get their scheduled end here."""
    from sqlalchemy import select

    from onward.tasks.reactions import schedule_cooldown_end
    from onward.tasks.store import Cooldown, Store

    store = Store.open(settings.database_url)
    try:
        while not stop.wait(1.0):
            with store.unit_of_work() as session:
                waiting = session.scalars(
                    select(Cooldown.id).where(
                        Cooldown.end_run_id.is_(None), Cooldown.ended_at.is_(None)
                    )
                ).all()
            for cooldown_id in waiting:
                try:
                    # The plain function: this loop is the retry.
                    schedule_cooldown_end.fn(cooldown_id, config_file, f"cooldown {cooldown_id}")
                except Exception:
                    log.exception(
                        "scheduling the end of cooldown %s failed; will retry", cooldown_id
                    )
            stop.wait(60)
    finally:
        store.close()
