"""The mailbox commands: connect, sync, status, demo."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import threading
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import Settings
from tasks.errors import ConfigError

SubParsers = argparse._SubParsersAction


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
    p.set_defaults(func=cmd_connect)

    p = sub.add_parser("sync", help="sync the inbox: once, or keep watching with IDLE")
    p.add_argument("--once", action="store_true", help="one incremental pass, then exit")
    p.add_argument("--since", help="backfill mail that arrived since DATE (YYYY-MM-DD)")
    p.add_argument("--mailbox", help="which connected mailbox (default the last connected)")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("status", help="mailbox, last sync, counts, errors")
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
    p.set_defaults(func=cmd_drafts)

    p = sub.add_parser("demo", help="run onward end to end on a throwaway sample mailbox")
    p.add_argument("--dir", type=Path, help="where to build the demo (default a new temp folder)")
    p.add_argument(
        "--serve", action="store_true", help="then keep the worker and the Prefect UI running"
    )
    p.set_defaults(func=cmd_demo)


# --- connect ---------------------------------------------------------------------------


def _read_secret(args: argparse.Namespace) -> tuple[str, str]:
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
    from tasks.imap import ImapConfig, ImapMailbox
    from tasks.maildir import MaildirMailbox
    from tasks.secrets import store_secret
    from tasks.store import Mailbox, Store, get_mailbox

    settings: Settings = args.settings
    if args.maildir:
        root = args.maildir.expanduser().resolve()
        backend = MaildirMailbox(root, args.folder)
        with closing(backend):
            state = backend.open()
            drafts = backend.find_drafts_folder()
        fields: dict[str, Any] = {
            "kind": "maildir",
            "path": str(root),
            "folder": args.folder,
            "drafts_folder": drafts,
            "address": args.address,
        }
        name = args.name or f"maildir:{root}"
        where = str(root)
    else:
        host = _prompt(args.host, "IMAP host")
        user = _prompt(args.user, "user name")
        args.host, args.user = host, user
        secret, auth = _read_secret(args)
        config = ImapConfig(
            host=host,
            port=args.port,
            username=user,
            security=args.security,
            auth=auth,
            folder=args.folder,
            ca_file=str(args.ca_file.resolve()) if args.ca_file else None,
            connect_timeout=settings.sync.connect_timeout_seconds,
            read_timeout=settings.sync.read_timeout_seconds,
        )
        mailbox = ImapMailbox(config, lambda: secret)
        with closing(mailbox):
            state = mailbox.open()
            drafts = mailbox.find_drafts_folder()
        name = args.name or f"{user}@{host}"
        ref = store_secret(settings.secrets_dir, name, secret, args.secret_store)
        fields = {
            "kind": "imap",
            "host": host,
            "port": config.effective_port,
            "username": user,
            "security": args.security,
            "auth": auth,
            "secret_ref": ref,
            "ca_file": config.ca_file,
            "folder": args.folder,
            "drafts_folder": drafts,
            "address": args.address or (user if "@" in user else None),
        }
        where = f"{user} at {host}:{config.effective_port} ({args.security})"
    store = Store.open(settings.database_url)
    try:
        with store.unit_of_work() as session:
            row = get_mailbox(session, name)
            if row is None:
                row = Mailbox(name=name, **fields)
                session.add(row)
            else:
                moved = (row.host, row.path, row.folder) != (
                    fields.get("host"),
                    fields.get("path"),
                    fields["folder"],
                )
                for key, value in fields.items():
                    setattr(row, key, value)
                if moved:  # a different folder: its UIDs mean nothing to the old cursor
                    row.uidvalidity = row.last_uid = row.watch_start = None
    finally:
        store.close()
    print(f"connected {where}")
    print(f"  watching {args.folder} ({state.uidnext - 1 if state.uidnext else 0} highest UID now)")
    print(f"  drafts will be saved to {drafts}")
    if not args.maildir:
        print(
            f"  secret kept in {_describe_ref(settings, fields['secret_ref'])}, not in the database"
        )
    print(f"  mailbox name: {name}; next: onward sync --once")
    return 0


def _describe_ref(settings: Settings, ref: str) -> str:
    kind, _, value = ref.partition(":")
    if kind == "file":
        return f"{settings.secrets_dir / value} (mode 0600)"
    return f"Prefect Secret block {value!r}"


# --- sync ------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    since = _parse_date(args.since) if args.since else None
    if args.once:
        if since is None and _nothing_new(settings, args.mailbox):
            print("nothing new")
            return 0
        from flows.common import in_process
        from flows.watch_inbox import describe, watch_inbox

        with in_process():
            report = watch_inbox(mailbox=args.mailbox, since=since, config_file=_config_arg(args))
        print(describe(report))
        return 1 if report["failed"] else 0
    return _watch_forever(settings, args.mailbox, since, _config_arg(args))


def _config_arg(args: argparse.Namespace) -> str | None:
    return str(args.config.resolve()) if args.config else None


def _parse_date(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"--since {value!r} is not a date; use YYYY-MM-DD") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def _nothing_new(settings: Settings, name: str | None) -> bool:
    """UIDNEXT says whether anything arrived; then no flow run (and no Prefect start) is needed."""
    from tasks.accounts import Account, open_backend
    from tasks.store import Store, get_mailbox, pending_rejections

    store = Store.open(settings.database_url)
    try:
        with store.unit_of_work() as session:
            row = get_mailbox(session, name)
            if row is None or row.uidvalidity is None or row.last_uid is None:
                return False
            if pending_rejections(session, row.id):
                return False  # reactions a crash left unstarted: the flow picks them up
            account = Account.from_row(row, settings)
            cursor = (row.uidvalidity, row.last_uid)
        with closing(open_backend(account, settings)) as backend:
            state = backend.open()
        if (state.uidvalidity, state.uidnext - 1) != cursor:
            return False
        with store.unit_of_work() as session:
            row = get_mailbox(session, name)
            if row is not None:
                row.last_sync_at = datetime.now(UTC)
        return True
    finally:
        store.close()


def _watch_forever(
    settings: Settings, name: str | None, since: str | None, config: str | None
) -> int:
    """Foreground watch: sync now, then after every IDLE wake-up, until Ctrl-C."""
    import signal

    from flows.common import in_process
    from flows.watch_inbox import describe, watch_inbox
    from tasks.accounts import load_account
    from tasks.mailbox import Mailbox
    from tasks.watcher import Watcher

    account = load_account(settings, name)
    pending_since = [since]

    def run_sync(_: Mailbox) -> None:
        with in_process():
            report = watch_inbox(mailbox=account.name, since=pending_since[0], config_file=config)
        pending_since[0] = None
        print(describe(report), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    watcher = Watcher.for_account(account, settings, run_sync)
    print(f"watching {account.name}; Ctrl-C to stop", flush=True)
    try:
        watcher.run(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


# --- status ----------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from tasks.store import Store, get_mailbox, ledger_counts

    settings: Settings = args.settings
    store = Store.open(settings.database_url)
    try:
        with store.unit_of_work() as session:
            row = get_mailbox(session, args.mailbox)
            if row is None:
                info: dict[str, Any] = {
                    "mailbox": None,
                    "database": _safe_url(settings.database_url),
                }
            else:
                counts = ledger_counts(session, row.id)
                info = {
                    "mailbox": row.name,
                    "kind": row.kind,
                    "folder": row.folder,
                    "drafts_folder": row.drafts_folder,
                    "uidvalidity": row.uidvalidity,
                    "last_uid": row.last_uid,
                    "watch_start": _iso(row.watch_start),
                    "last_sync": _iso(row.last_sync_at),
                    "last_error": row.last_error,
                    "messages": counts.get("total", 0),
                    "recorded": counts.get("recorded", 0),
                    "malformed": counts.get("malformed", 0),
                    "failed": counts.get("failed", 0),
                    "labels": {
                        k.removeprefix("label:"): v
                        for k, v in counts.items()
                        if k.startswith("label:")
                    },
                    "database": _safe_url(settings.database_url),
                }
    finally:
        store.close()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    if info["mailbox"] is None:
        print("no mailbox connected yet: run `onward connect` (or `onward demo` to try it out)")
        return 0
    print(f"mailbox     {info['mailbox']} ({info['kind']}, watching {info['folder']})")
    print(f"last sync   {info['last_sync'] or 'never'}")
    cursor = f"UIDVALIDITY {info['uidvalidity']}, last UID {info['last_uid']}"
    print(f"watching    since {info['watch_start'] or '-'} ({cursor})")
    problems = f"{info['malformed']} malformed, {info['failed']} failed"
    print(f"messages    {info['messages']} recorded ({problems})")
    if info["labels"]:
        print("labels      " + ", ".join(f"{k} {v}" for k, v in sorted(info["labels"].items())))
    if info["last_error"]:
        print(f"last error  {info['last_error']}")
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- run and drafts --------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from deployments.worker import run_worker

    return run_worker(args.settings, args.mailbox, _config_arg(args))


def cmd_drafts(args: argparse.Namespace) -> int:
    from tasks.reactions import list_requests

    settings: Settings = args.settings
    rows = list_requests(settings, args.mailbox, check=not args.no_check)
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True, default=str))
        return 0
    if not rows:
        print("no feedback requests drafted yet")
        return 0
    now = datetime.now(UTC)
    print(f"{'state':<16} {'age':>5}  {'company':<22} {'role':<26} to")
    for row in rows:
        age = _age(now - datetime.fromisoformat(row["created_at"]))
        to = row["to"] or "(needs a recipient)"
        print(
            f"{row['state']:<16} {age:>5}  {(row['company'] or '?')[:22]:<22} "
            f"{(row['role'] or '?')[:26]:<26} {to}"
        )
    folder = rows[0]["folder"] or "Drafts"
    print(f"\nthe drafts are in {folder} in your mailbox: review and send them from there")
    return 0


def _age(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


# --- demo ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from deployments.demo import run_demo

    return run_demo(args.dir, started=time.monotonic(), serve=args.serve)
