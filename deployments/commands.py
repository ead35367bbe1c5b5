"""The mailbox commands: connect, sync, status, demo."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from onward.config.settings import Settings
from onward.deployments.output import to_json
from onward.tasks.errors import ConfigError

SubParsers = argparse._SubParsersAction
ATTENTION_STATES = ("needs_attention", "retrying")


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("connect", help="log in to a mailbox and remember it")
    p.add_argument(
        "--name", help="what to call this mailbox (default user@host or the Maildir path)"
    )
    p.add_argument("--maildir", type=Path, help="connect a local Maildir instead of IMAP")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--user", help="login name (usually your address)")
    p.add_argument("--address", help="your e-mail address if it differs from --user")
    p.add_argument("--folder", default="INBOX", help="folder to watch (default INBOX)")
    p.add_argument("--security", choices=["tls", "starttls", "plain"], default="tls")
    p.add_argument("--ca-file", type=Path, help="trust this CA bundle for the server certificate")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    secret.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
    secret.add_argument("--oauth2-token-env", metavar="VAR", help="XOAUTH2 access token from $VAR")
    p.add_argument(
        "--secret-store",
        choices=["file", "prefect"],
        default="file",
        help="keep the secret in a 0600 file under $ONWARD_HOME (default) or a Prefect block",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_connect)

    p = sub.add_parser("sync", help="sync the inbox: once, or keep watching with IDLE")
    p.add_argument("--once", action="store_true", help="one incremental pass, then exit")
    p.add_argument("--since", help="backfill mail that arrived since DATE (YYYY-MM-DD)")
    p.add_argument("--mailbox", help="which connected mailbox (default the last connected)")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("status", help="is onward watching, what waits on you, where things are")
    p.add_argument("--mailbox")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("run", help="the worker: watch the inbox (IDLE) and serve every flow")
    p.add_argument("--mailbox")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("drafts", help="the feedback requests onward drafted, and their state")
    p.add_argument("--mailbox")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--no-check",
        action="store_true",
        help="do not look in the mailbox for sent or deleted drafts",
    )
    p.add_argument(
        "--retry",
        action="store_true",
        help="try again the rejections that need attention (after fixing the cause)",
    )
    p.set_defaults(func=cmd_drafts)

    p = sub.add_parser("demo", help="run onward end to end on a throwaway sample mailbox")
    p.add_argument("--dir", type=Path, help="where to build the demo (default a new temp folder)")
    p.add_argument(
        "--serve", action="store_true", help="then keep the worker and the Prefect UI running"
    )
    p.set_defaults(func=cmd_demo)


# --- connect ---------------------------------------------------------------------------


def _read_secret(args: argparse.Namespace) -> tuple[str, Literal["password", "xoauth2"]]:
    """(secret, auth) from the flag that names its source, or a prompt on a terminal."""
    if args.oauth2_token_env:
        return _from_env(args.oauth2_token_env), "xoauth2"
    if args.password_env:
        return _from_env(args.password_env), "password"
    if args.password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise ConfigError("--password-stdin got an empty line; pipe the password in")
        return value, "password"
    if sys.stdin.isatty():
        return getpass.getpass(f"Password for {args.user}@{args.host}: "), "password"
    raise ConfigError(
        "no password given: use --password-stdin, --password-env VAR or --oauth2-token-env VAR"
    )


def _from_env(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"${var} is empty or not set; export it or pick another source")
    return value


def _prompt(value: str | None, question: str) -> str:
    if value:
        return value
    if not sys.stdin.isatty():
        raise ConfigError(f"missing {question}: pass it as a flag (see onward connect --help)")
    answer = input(f"{question}: ").strip()
    if not answer:
        raise ConfigError(f"{question} is required")
    return answer


def cmd_connect(args: argparse.Namespace) -> int:
    from onward.tasks.mail.connect import (
        ImapLogin,
        connect_imap,
        connect_maildir,
        looks_like_address,
    )

    settings: Settings = args.settings
    if args.maildir:
        result = connect_maildir(
            settings, args.maildir, folder=args.folder, address=args.address, name=args.name
        )
    else:
        host = _prompt(args.host, "IMAP host")
        user = _prompt(args.user, "user name")
        address = args.address
        if not address and not looks_like_address(user) and sys.stdin.isatty():
            address = _prompt(None, f"your e-mail address ({user!r} is a login, not an address)")
        args.host, args.user = host, user
        secret, auth = _read_secret(args)
        login = ImapLogin(
            host=host,
            user=user,
            secret=secret,
            auth=auth,
            port=args.port,
            security=args.security,
            ca_file=args.ca_file,
            secret_store=args.secret_store,
        )
        result = connect_imap(settings, login, folder=args.folder, address=address, name=args.name)
    if args.json:
        print(to_json(result))
        return 0
    print(f"connected {result.where}")
    print(f"  watching {result.folder} (new mail from now on; --since DATE on sync backfills)")
    print(f"  drafts will be saved to {result.drafts_folder}")
    if result.address:
        print(f"  drafts are written from {result.address}")
    if result.secret:
        print(f"  secret kept in {result.secret}, not in the database")
    if result.cursor_reset:
        print("  another folder than before: the watch starts afresh")
    print(f"  mailbox name: {result.name}; next: onward sync --once, or onward run")
    return 0


# --- sync ------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    from onward.tasks.lifecycle import start_guardian

    settings: Settings = args.settings
    since = _parse_date(args.since) if args.since else None
    # Whatever ends this process (a timeout's SIGKILL too), nothing it started lives on.
    start_guardian()
    if args.once:
        from onward.tasks.mail.actions import reachable
        from onward.tasks.mail.sync import nothing_new

        with reachable():
            if since is None and nothing_new(settings, args.mailbox):
                print("nothing new")
                return 0
        from onward.deployments.progress import shown
        from onward.deployments.quiet import expected_errors_without_traceback
        from onward.flows.common import in_process
        from onward.flows.watch_inbox import describe, watch_inbox

        with _prefect_api(settings), in_process(), expected_errors_without_traceback(), shown():
            report = watch_inbox(mailbox=args.mailbox, since=since, config_file=_config_arg(args))
        print(describe(report))
        if report.attention:
            print(
                f"onward: {report.attention} rejection(s) need attention: `onward drafts` says"
                " why and what to do",
                file=sys.stderr,
            )
        return 1 if report.failed or report.attention else 0
    with _prefect_api(settings):
        return _watch_forever(settings, args.mailbox, since, _config_arg(args))


@contextmanager
def _prefect_api(settings: Settings) -> Iterator[None]:
    """The Prefect API already configured (PREFECT_API_URL, a profile, a test harness), else
    one of our own for this command: Prefect's ephemeral server would outlive a killed
    onward; this one dies with it."""
    from prefect.settings import get_current_settings

    if os.environ.get("PREFECT_API_URL") or get_current_settings().api.url:
        yield
        return
    from onward.deployments.server import LocalPrefectServer

    with LocalPrefectServer(
        settings.prefect_home,
        port=0,
        services=False,
        keep_runs_days=settings.worker.keep_runs_days,
    ) as server:
        os.environ["PREFECT_API_URL"] = server.api_url
        try:
            yield
        finally:
            _drain_prefect()
            os.environ.pop("PREFECT_API_URL", None)


def _drain_prefect() -> None:
    """Send the run logs and events still queued before the API goes away."""
    import sys

    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


def _config_arg(args: argparse.Namespace) -> str | None:
    return str(args.config.resolve()) if args.config else None


def _parse_date(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"--since {value!r} is not a date; use YYYY-MM-DD") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def _watch_forever(
    settings: Settings, name: str | None, since: str | None, config: str | None
) -> int:
    """Foreground watch: sync now, then after every IDLE wake-up, until Ctrl-C."""
    import signal

    from onward.flows.common import in_process
    from onward.flows.watch_inbox import describe, watch_inbox
    from onward.tasks.lifecycle import set_from_signal
    from onward.tasks.mail.accounts import load_account
    from onward.tasks.mail.mailbox import Mailbox
    from onward.tasks.mail.watcher import Watcher

    account = load_account(settings, name)
    pending_since = [since]

    def run_sync(_: Mailbox) -> None:
        with in_process():
            report = watch_inbox(mailbox=account.name, since=pending_since[0], config_file=config)
        pending_since[0] = None
        print(describe(report), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: set_from_signal(stop))
    watcher = Watcher.for_account(account, settings, run_sync)
    print(f"watching {account.name}; Ctrl-C to stop", flush=True)
    try:
        watcher.run(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


# --- status ----------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from onward.tasks.status import age, gather_status

    settings: Settings = args.settings
    status = gather_status(settings, args.mailbox)
    if args.json:
        print(to_json(status))
        return 0
    if status.mailbox is None:
        print("no mailbox connected yet: run `onward connect` (or `onward demo` to try it out)")
        return 0
    rows = [
        ("mailbox", f"{status.mailbox}: watching {status.watching}"),
        (
            "last pass",
            f"{age(status.last_sync)}"
            + (f" ({_iso(status.last_sync)})" if status.last_sync else ""),
        ),
        ("next check", status.next_check),
        (
            "messages",
            f"{status.messages} seen since {_iso(status.watch_start) or '-'}"
            + (
                f"; {status.malformed} unreadable, {status.failed} failed"
                if status.malformed or status.failed
                else ""
            ),
        ),
    ]
    if status.labels:
        rows.append(("found", ", ".join(f"{k} {v}" for k, v in sorted(status.labels.items()))))
    waiting = []
    if status.drafts_to_review:
        waiting.append(f"{status.drafts_to_review} draft(s) to review and send (onward drafts)")
    if status.drafts_needing_recipient:
        waiting.append(f"{status.drafts_needing_recipient} draft(s) need a recipient")
    if status.needs_attention:
        waiting.append(
            f"{len(status.needs_attention)} rejection(s) need attention (onward drafts says"
            " what to do, then onward drafts --retry)"
        )
    rows.append(("for you", "; ".join(waiting) or "nothing"))
    rows.extend(("", line) for line in status.needs_attention)
    if status.retrying:
        rows.append(
            ("retrying", f"{status.retrying} rejection(s) failed briefly; tried again soon")
        )
    for cooldown in status.cooldowns:
        rows.append(("cooldown", f"{cooldown.title}, until {cooldown.ends_at:%a %d %b %H:%M} UTC"))
    rows.append(("calendar", status.calendar_file or "nothing scheduled yet"))
    if status.calendar_feed:
        rows.append(("", f"feed {status.calendar_feed} (subscribe in your calendar app)"))
    rows.extend(("", line) for line in status.caldav)
    if status.worker is not None:
        rows.append(
            ("worker", f"onward run (pid {status.worker.pid}), UI {status.worker.ui or '-'}")
        )
    if status.last_error:
        rows.append(("last error", status.last_error))
    if status.warning:
        rows.append(("warning", status.warning))
    for label, value in rows:
        print(f"{label:<11} {value}")
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


# --- run and drafts --------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from onward.deployments.worker import run_worker

    return run_worker(args.settings, args.mailbox, _config_arg(args))


def cmd_drafts(args: argparse.Namespace) -> int:
    from onward.tasks.feedback.request import list_requests, refresh_requests
    from onward.tasks.status import age

    settings: Settings = args.settings
    if args.retry:
        from onward.tasks.feedback.request import retry_given_up

        count = retry_given_up(settings, args.mailbox)
        print(f"{count} rejection(s) will be tried again on the next pass (onward sync --once)")
        return 0
    if not args.no_check:
        refresh_requests(settings, args.mailbox)
    rows = list_requests(settings, args.mailbox)
    if args.json:
        print(to_json(rows))
        return 0
    if not rows:
        print("no feedback requests drafted yet")
        return 0
    print(f"{'state':<16} {'drafted':<12} {'company':<22} {'role':<26} to")
    for row in rows:
        to = row.to or ("-" if row.state in ATTENTION_STATES else "(needs a recipient)")
        print(
            f"{row.state:<16} {age(row.created_at):<12} {(row.company or '?')[:22]:<22} "
            f"{(row.role or '?')[:26]:<26} {to}"
        )
        if row.note and (row.state in ATTENTION_STATES or row.to is None):
            print(f"{'':<16} {row.note}")
    if any(row.state == "needs_attention" for row in rows):
        print("\nonward gave up on the rejections marked needs_attention; fix what the note says,")
        print("then `onward drafts --retry` tries them again")
    folder = rows[0].folder or "Drafts"
    print(f"\nthe drafts are in {folder} in your mailbox: review and send them from there")
    return 0


# --- demo ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from onward.deployments.demo import run_demo

    return run_demo(args.dir, started=time.monotonic(), serve=args.serve)
