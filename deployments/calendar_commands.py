"""``onward calendar``: what is scheduled and where it goes; ``connect``, ``export``, ``push``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from onward.config.settings import Settings
from onward.deployments.output import to_json
from onward.tasks.errors import ConfigError

SubParsers = argparse._SubParsersAction


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "calendar",
        help="what onward scheduled, and where the calendar goes (file, feed, CalDAV)",
        description="Lists what is scheduled (upcoming first) and where the calendar is "
        "delivered. `connect` adds your CalDAV account, `export PATH` writes the .ics, "
        "`push` sends pending changes to CalDAV now.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_calendar)
    actions = p.add_subparsers(dest="calendar_command", metavar="ACTION")

    c = actions.add_parser("connect", help="keep your own CalDAV calendar up to date")
    c.add_argument("--url", required=True, help="the CalDAV server or account URL")
    c.add_argument("--user", required=True, help="your user name there")
    secret = c.add_mutually_exclusive_group()
    secret.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
    secret.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    c.add_argument(
        "--calendar", default="onward", help="the calendar onward writes in (created if missing)"
    )
    c.add_argument(
        "--secret-store",
        choices=["file", "prefect"],
        default="file",
        help="keep the password in a 0600 file under $ONWARD_HOME (default) or a Prefect block",
    )
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_connect)

    e = actions.add_parser("export", help="write the calendar as an .ics file")
    e.add_argument("path", type=Path, metavar="PATH")
    e.set_defaults(func=cmd_export)

    u = actions.add_parser("push", help="send pending changes to your CalDAV calendar now")
    u.add_argument("--json", action="store_true", help="machine-readable output")
    u.set_defaults(func=cmd_push)


@dataclass
class CalendarView:
    """`onward calendar`: the items, and every way the calendar reaches the person."""

    file: str
    feed: str | None
    feed_note: str
    caldav: list[dict[str, str | None]] = field(default_factory=list)
    items: list[object] = field(default_factory=list)


def gather(settings: Settings) -> CalendarView:
    from sqlalchemy import select

    from onward.tasks.calendar.feed import feed_url
    from onward.tasks.calendar.publish import publish, upcoming
    from onward.tasks.status import read_worker_info
    from onward.tasks.store import CalDavAccount, Store

    path, _report = publish(settings)
    items = upcoming(settings)
    worker = read_worker_info(settings)
    port = settings.calendar.feed_port
    if not port:
        feed, note = None, "off ([calendar] feed_port = 0)"
    elif worker is not None and worker.feed:
        feed, note = worker.feed, "served by the running `onward run`"
    else:
        feed, note = feed_url(port), "served while `onward run` is running"
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        accounts = [
            {
                "account": a.name,
                "calendar": a.calendar_name,
                "last_push": a.last_push_at.isoformat(timespec="seconds")
                if a.last_push_at
                else None,
                "error": a.last_error,
            }
            for a in session.scalars(select(CalDavAccount))
        ]
    return CalendarView(str(path), feed, note, accounts, list(items))


def cmd_calendar(args: argparse.Namespace) -> int:
    view = gather(args.settings)
    if args.json:
        print(to_json(view))
        return 0
    if not view.items:
        print("nothing scheduled yet: a rejection's cooldown is the first thing onward adds")
    else:
        print(f"{'when':<34} {'what':<12} summary")
        for item in view.items:
            print(f"{item.when:<34} {item.kind:<12} {item.summary}")  # type: ignore[attr-defined]
    print()
    print(f"file     {view.file}")
    print(f"feed     {view.feed or '-'}  ({view.feed_note}; subscribe to it in your calendar app)")
    if not view.caldav:
        print(
            "CalDAV   not connected: onward calendar connect --url URL --user U --password-env VAR"
        )
    for account in view.caldav:
        state = f"error: {account['error']}" if account["error"] else "up to date"
        when = account["last_push"] or "never"
        print(
            f"CalDAV   {account['account']}, calendar {account['calendar']!r}: {state} "
            f"(last push {when})"
        )
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    import os

    from onward.tasks.calendar.caldav_sync import CalDavLogin, connect_caldav, push_all, require_url

    settings: Settings = args.settings
    url = require_url(args.url)
    if args.password_env:
        password = os.environ.get(args.password_env) or ""
        if not password:
            raise ConfigError(f"${args.password_env} is empty or not set; export it first")
    elif args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigError("no password given: use --password-env VAR or --password-stdin")
    else:
        import getpass

        password = getpass.getpass(f"CalDAV password for {args.user}: ")
    result = connect_caldav(
        settings,
        CalDavLogin(url, args.user, password, args.calendar),
        secret_store=args.secret_store,
    )
    from onward.tasks.calendar.publish import publish

    publish(settings)
    reports = push_all(settings)
    if args.json:
        print(to_json({"connected": result, "pushed": reports}))
        return 0
    print(f"connected {args.user} at {url}")
    print(f"  onward writes in the calendar {result.calendar!r} ({result.calendar_url})")
    print(f"  password kept in {result.secret}, not in the database")
    for report in reports:
        if report.error:
            print(f"  first push: {report.error}")
        else:
            print(f"  first push: {report.created} item(s) created, {report.updated} updated")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from onward.tasks.calendar.publish import publish

    path, _report = publish(args.settings, path=args.path.expanduser().resolve())
    print(f"calendar written to {path}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from onward.tasks.calendar.caldav_sync import push_all
    from onward.tasks.calendar.publish import publish

    publish(args.settings)
    reports = push_all(args.settings)
    if args.json:
        print(to_json(reports))
    elif not reports:
        print("no CalDAV account connected: onward calendar connect --url URL --user U ...")
    for report in reports if not args.json else []:
        outcome = report.error or (
            f"{report.created} created, {report.updated} updated, {report.adopted} already there"
        )
        print(f"{report.account}: {outcome}")
    return 1 if any(r.error for r in reports) else 0
