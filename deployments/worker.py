"""`onward run`: the worker a person leaves running.

One process serves every deployment (with a process limit) and owns the inbox watch: the
doorbell thread (``deployments/doorbell.py``) runs every inbox pass in this process; the
interval run asks it for a pass rather than competing with it. When PREFECT_API_URL is not
set a local Prefect server is started and supervised: restarted when it dies, while the
doorbell's passes wait for it with back-off (the app database is the truth; nothing is
lost). SIGTERM or Ctrl-C stops everything and exits 0; whatever ends the worker, its
children end with it (``tasks/lifecycle.py``). Above ``[worker] restart_above_mb`` of
memory it stops the same way between two passes and executes itself again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from onward.config.settings import Settings
from onward.deployments.server import LocalPrefectServer, healthy
from onward.tasks.heap import MemoryCeiling
from onward.tasks.lifecycle import set_from_signal, start_guardian
from onward.tasks.status import write_worker_info

log = logging.getLogger("onward.worker")

ZOMBIE_AUTOMATION = "onward: crash zombie flow runs"
# The calendar is rebuilt after each change; this run also retries CalDAV pushes.
CALENDAR_INTERVAL_MINUTES = 15
# How often cooldowns without a scheduled end are looked for.
CATCH_UP_SECONDS = 10
# Set in the environment of the process that a restart for memory starts.
RESTARTED_FOR_MEMORY = "ONWARD_RESTARTED_FOR_MEMORY"
# What a restart for memory stops the worker with (SIGTERM is a stop for good).
RESTART_SIGNAL = signal.SIGUSR1


def run_worker(settings: Settings, mailbox: str | None, config_file: str | None) -> int:
    restarted = bool(os.environ.pop(RESTARTED_FOR_MEMORY, ""))
    environ = dict(os.environ)  # what a restart for memory starts again with
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "1")  # reactions within seconds
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")  # zombie detection
    guardian = start_guardian()  # a SIGKILL of this process ends the flow-run processes too
    stop = threading.Event()
    restart = threading.Event()
    asked = Asked()
    ceiling = MemoryCeiling(settings.worker.restart_above_mb, restarted)

    def on_signal(signum: int, frame: Any) -> None:
        asked.note(signum)
        set_from_signal(stop)
        raise KeyboardInterrupt  # serve() shuts down cleanly on it

    def restart_for_memory() -> None:
        if restart.is_set():
            return
        restart.set()
        print(
            f"onward uses {ceiling.exceeded_at:.0f} MB, above [worker] restart_above_mb = "
            f"{ceiling.limit_mb}: restarting to give it back",
            flush=True,
        )
        # The same clean stop as a SIGTERM's, by a signal of its own: a SIGTERM from outside
        # while it runs still ends the worker rather than being taken for this restart.
        os.kill(os.getpid(), RESTART_SIGNAL)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(RESTART_SIGNAL, on_signal)
    try:
        code = _run(settings, mailbox, config_file, stop, Watch(ceiling, restart_for_memory, asked))
    except SystemExit as exit_:  # Prefect's runner exits on a stop before it has started
        code = exit_.code if isinstance(exit_.code, int) else 0
    if restart.is_set() and not asked.to_end:
        _exec_again(environ, guardian, asked)
    return code


class Asked:
    """Whether anyone but the worker itself asked it to stop. Written by signal handlers,
    so a plain attribute: a handler must not take a lock."""

    to_end = False

    def note(self, signum: int) -> None:
        if signum != RESTART_SIGNAL:
            self.to_end = True


@dataclass(frozen=True)
class Watch:
    """What the doorbell checks after each pass, and what it calls when memory is over."""

    ceiling: MemoryCeiling
    on_ceiling: Callable[[], None]
    asked: Asked


def _exec_again(
    environ: dict[str, str], guardian: subprocess.Popen[bytes] | None, asked: Asked
) -> None:
    """Replace this process with a fresh `onward run` (same pid: systemd and a terminal see
    one process throughout). Everything was stopped cleanly; the guardian goes too, the new
    process starts its own."""
    if guardian is not None:
        guardian.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            guardian.wait(timeout=10)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, *sys.orig_argv[1:]]
    if asked.to_end:  # a SIGTERM while the guardian stopped
        return
    os.execve(sys.executable, argv, {**environ, RESTARTED_FOR_MEMORY: "1"})


def _run(
    settings: Settings, mailbox: str | None, config_file: str | None, stop: threading.Event,
    watch: Watch,
) -> int:  # fmt: skip
    with ExitStack() as stack:
        server: LocalPrefectServer | None = None
        if not os.environ.get("PREFECT_API_URL"):
            print("starting a local Prefect server ...", flush=True)
            server = stack.enter_context(
                LocalPrefectServer(
                    settings.prefect_home,
                    port=settings.worker.prefect_port,
                    keep_runs_days=settings.worker.keep_runs_days,
                )
            )
            os.environ["PREFECT_API_URL"] = server.api_url
            ui = server.ui_url
            # Its own stop: the server outlives the serve loop's shutdown, which still
            # talks to it (pausing the deployments).
            server_stop = threading.Event()
            supervisor = threading.Thread(
                target=server.supervise, args=(server_stop,), name="onward-prefect-server"
            )
            supervisor.start()
            stack.callback(supervisor.join, 60)
            stack.callback(server_stop.set)
            stack.callback(_send_queued_logs)
        else:
            ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
        try:
            return _serve(settings, mailbox, config_file, ui, server, stop, watch)
        except KeyboardInterrupt:
            return 0
    return 0  # pragma: no cover - ExitStack never swallows


def _send_queued_logs() -> None:
    """Flow-run logs still queued for the API go before the local server stops; after it,
    each batch printed "--- Error logging to API ---" (a restart for memory comes right
    after a pass, with its logs still queued)."""
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):  # best effort: nothing depends on these logs
        APILogWorker.drain_all(timeout=5)


def _serve(
    settings: Settings,
    mailbox: str | None,
    config_file: str | None,
    ui: str,
    server: LocalPrefectServer | None,
    stop: threading.Event,
    watch: Watch,
) -> int:
    # Imported only now: Prefect reads PREFECT_API_URL when it is first imported.
    from onward.deployments.doorbell import Doorbell
    from onward.tasks.mail.accounts import load_account

    account = load_account(settings, mailbox)
    doorbell = Doorbell(settings, account, config_file, watch.ceiling, watch.on_ceiling)
    catch_up = threading.Thread(
        target=_catch_up, args=(settings, config_file, stop), name="onward-catch-up", daemon=True
    )
    with ExitStack() as stack:
        stack.callback(print, "onward stopped; it picks up where it left off on the next start")
        stack.callback(doorbell.stop)
        stack.callback(stop.set)
        health = _start_health(settings, doorbell, server, stack)
        deployments = build_deployments(
            account.name, config_file, settings, health.url if health else None
        )
        _register(deployments, stop)  # before the doorbell may ask for a run
        feed = _start_feed(settings, stack)
        write_worker_info(settings, ui, feed, health.url if health else None)
        print(f"onward is watching {account.name}", flush=True)
        print(f"Prefect UI: {ui}", flush=True)
        if feed:
            print(f"calendar feed: {feed} (subscribe to it in your calendar app)", flush=True)
        if health:
            print(f"health: {health.url}/health", flush=True)
        doorbell.start()
        catch_up.start()
        while not stop.is_set():
            try:
                _serve_once(deployments, settings.worker.process_limit, stop, watch.asked)
            except KeyboardInterrupt:
                break
            except Exception:
                if stop.is_set():
                    break  # asked to stop while the API was away: nothing to report
                # The API went away (the local server is being restarted): the doorbell
                # carries on meanwhile; serve again once the API answers.
                log.exception("serving the deployments stopped; serving again when the API is back")
            else:
                if not stop.is_set():
                    log.warning("serving stopped; serving again when the API is back")
            _wait_for_api(stop)
    return 0


def _serve_once(deployments: list[Any], limit: int, stop: threading.Event, asked: Asked) -> None:
    """What ``prefect.serve`` does, with its stop on SIGTERM also telling ``stop`` (and
    taken on RESTART_SIGNAL too): serve returns both when asked to stop and when the API
    it talks to went away, and only the first ends the worker."""
    import asyncio

    from prefect.runner import Runner

    class _Runner(Runner):
        def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
            asked.note(args[0] if args else signal.SIGTERM)
            set_from_signal(stop)
            super().handle_sigterm(*args, **kwargs)

        async def _pause_schedules(self) -> None:
            # Pausing asks the API once per deployment, each retried with back-off: with
            # the API gone that held a SIGTERM for 73 s (systemd kills at 90 s).
            import anyio

            api = os.environ.get("PREFECT_API_URL", "")
            if not await anyio.to_thread.run_sync(healthy, api):
                log.info("the Prefect API does not answer: deployments left unpaused")
                return
            await super()._pause_schedules()  # type: ignore[no-untyped-call]

    runner = _Runner(limit=limit)
    for deployment in deployments:
        runner.add_deployment(deployment)
    # The runner takes SIGTERM while it runs; the worker's own handlers come back after.
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, RESTART_SIGNAL)}
    signal.signal(RESTART_SIGNAL, runner.handle_sigterm)
    try:
        asyncio.run(runner.start())
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _register(deployments: list[Any], stop: threading.Event) -> None:
    """Apply the deployments and the zombie automation, waiting out a brief API outage."""
    delay = 1.0
    while True:
        try:
            for deployment in deployments:
                deployment.apply()
            install_zombie_automation()
            return
        except Exception as exc:
            if stop.wait(delay):
                raise KeyboardInterrupt from exc
            log.warning("registering the deployments failed (%s); retrying", exc)
            delay = min(delay * 2, 30.0)


def _wait_for_api(stop: threading.Event) -> None:
    api = os.environ.get("PREFECT_API_URL", "")
    while not stop.is_set() and not healthy(api):
        stop.wait(2.0)


def _start_health(
    settings: Settings, doorbell: Any, server: LocalPrefectServer | None, stack: ExitStack
) -> Any:
    """The health endpoint on 127.0.0.1 (``[worker] health_port``, 0 for none)."""
    from onward.deployments.doorbell import HealthServer

    if not settings.worker.health_port:
        return None

    def extra() -> dict[str, Any]:
        api = os.environ.get("PREFECT_API_URL", "")
        return {
            "prefect_api": "up" if healthy(api, timeout=1.0) else "down",
            "prefect_server_restarts": server.restarts if server else None,
        }

    stale = 2 * 60 * settings.worker.fallback_interval_minutes + 60
    try:
        return stack.enter_context(
            HealthServer(settings.worker.health_port, doorbell, stale, extra)
        )
    except OSError as exc:
        log.warning(
            "the health endpoint could not start on 127.0.0.1:%s (%s); set [worker] health_port",
            settings.worker.health_port,
            exc,
        )
        return None


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


def build_deployments(
    mailbox: str, config_file: str | None, settings: Settings, health_url: str | None = None
) -> list[Any]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType  # type: ignore[attr-defined]
    from prefect.schedules import Cron

    from onward.flows.calendar import calendar_sync
    from onward.flows.cooldown import cooldown, pick_yourself_up
    from onward.flows.interval_watch import interval_watch
    from onward.flows.networking_round import networking_round
    from onward.flows.request_feedback import request_feedback
    from onward.flows.review import review_rejection
    from onward.tasks.network.rounds import round_cron

    common: dict[str, Any] = {
        "tags": ["onward"],
        # Module paths, not file paths: the installed package runs from any directory.
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }
    return [
        interval_watch.to_deployment(
            "watch",
            parameters={"mailbox": mailbox, "config_file": config_file, "health_url": health_url},
            interval=timedelta(minutes=settings.worker.fallback_interval_minutes),
            # No deployment concurrency limit: the run asks the doorbell (the one owner of
            # the watch) for a pass; a slot would only get runs Cancelled (issue 12, #5).
            description="The safety net under IDLE: asks the doorbell for a pass, or makes it.",
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


def _catch_up(settings: Settings, config_file: str | None, stop: threading.Event) -> None:
    """Cooldowns recorded by the doorbell's passes and by `onward sync --once` get their
    scheduled end here."""
    from sqlalchemy import select

    from onward.tasks.reactions import schedule_cooldown_end
    from onward.tasks.store import Cooldown, Store

    store = Store.open(settings.database_url)
    try:
        while not stop.wait(1.0):
            try:
                with store.unit_of_work() as session:
                    waiting = session.scalars(
                        select(Cooldown.id).where(
                            Cooldown.end_run_id.is_(None), Cooldown.ended_at.is_(None)
                        )
                    ).all()
            except Exception as exc:  # a locked or unreachable database: next round
                log.warning("looking for cooldowns to schedule failed (%s); will retry", exc)
                continue
            for cooldown_id in waiting:
                try:
                    # The plain function: this loop is the retry.
                    schedule_cooldown_end.fn(cooldown_id, config_file, f"cooldown {cooldown_id}")
                except Exception:
                    log.exception(
                        "scheduling the end of cooldown %s failed; will retry", cooldown_id
                    )
            stop.wait(CATCH_UP_SECONDS)
    finally:
        store.close()
