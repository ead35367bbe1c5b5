"""``onward demo``: the whole pipeline on a throwaway Maildir of sample mail, no account needed."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib import resources
from pathlib import Path

from sqlalchemy import select

from onward.config.settings import Settings, load_settings
from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
from onward.tasks.store import Cooldown, FeedbackRequest, LedgerEntry, Mailbox, Store

DEMO_ADDRESS = "sam.rivera@example.org"
DEMO_NAME = "Sam Rivera"
DEMO_MAILBOX = "demo"


def sample_messages(*, later: bool = False) -> list[tuple[str, bytes]]:
    """The sample mail shipped with onward, in delivery order; ``later``: the mail that
    arrives after the drafts went out (a hiring manager's answer)."""
    folder = resources.files("onward.config") / "samples"
    return sorted(
        (p.name, p.read_bytes())
        for p in folder.iterdir()
        if p.name.endswith(".eml") and p.name.startswith("later-") == later
    )


def build_demo_maildir(root: Path) -> Path:
    """A Maildir++ whose INBOX holds the samples, each file dated like its Date header.

    Built once: a second `onward demo --dir` on the same folder reuses it rather than
    delivering the samples again."""
    maildir = root / "Maildir"
    if (maildir / "cur").is_dir():
        return maildir
    maildir = create_maildir(maildir)
    deliver_samples(maildir, sample_messages())
    return maildir


def deliver_samples(maildir: Path, samples: list[tuple[str, bytes]]) -> None:
    for _, raw in samples:
        path = deliver_to_maildir(maildir, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        date = _date_header(raw)
        if date is not None:
            os.utime(path, (date, date))


def _date_header(raw: bytes) -> float | None:
    for line in raw.splitlines():
        if line.lower().startswith(b"date:"):
            try:
                return parsedate_to_datetime(line[5:].decode().strip()).timestamp()
            except (TypeError, ValueError):
                return None
    return None


def run_demo(directory: Path | None, started: float, serve: bool = False) -> int:
    root = Path(directory or tempfile.mkdtemp(prefix="onward-demo-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    step = _stepper(started)
    step(f"building a sample mailbox in {root}")
    fresh = not (root / "Maildir" / "cur").is_dir()
    maildir = build_demo_maildir(root)
    # Everything the demo makes stays in its folder, whatever ONWARD_HOME says: it must not
    # add a sample mailbox to the person's real onward. The flows read settings from the
    # environment, like a worker's flow runs do.
    os.environ["ONWARD_HOME"] = str(root / "home")
    os.environ.setdefault("ONWARD_USER_NAME", DEMO_NAME)
    os.environ.pop("ONWARD_DATABASE_URL", None)
    settings = load_settings()
    if "PREFECT_API_URL" not in os.environ:
        # The demo's flow runs go with the rest of the demo, not into the person's history.
        settings.prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(settings.prefect_home)
    from onward.deployments.cli import prepare_environment

    prepare_environment(settings)
    store = Store.open(settings.database_url)
    with store.unit_of_work() as session:
        if session.scalars(select(Mailbox).where(Mailbox.name == DEMO_MAILBOX)).first() is None:
            session.add(
                Mailbox(
                    name=DEMO_MAILBOX,
                    kind="maildir",
                    path=str(maildir),
                    folder="INBOX",
                    drafts_folder="Drafts",
                    address=DEMO_ADDRESS,
                )
            )
    delivered = "delivered" if fresh else "already there from an earlier demo"
    step(f"{len(sample_messages())} sample messages {delivered}")
    _profile_and_contacts(settings, step)
    step("starting Prefect and the watch_inbox flow")
    from onward.flows.common import in_process
    from onward.flows.cooldown import pick_yourself_up
    from onward.flows.watch_inbox import describe, watch_inbox

    with in_process():
        report = watch_inbox(mailbox=DEMO_MAILBOX, since="1990-01-01T00:00:00+00:00")
        step(describe(report))
        with store.unit_of_work() as session:
            cooldowns = session.scalars(select(Cooldown.id)).all()
        step(
            f"bringing the end of {len(cooldowns)} cooldown(s) forward (normally 3 days): "
            "the plan and this week's networking start"
        )
        with store.unit_of_work() as session:
            for row in session.scalars(select(Cooldown)):
                row.ends_at = min(row.ends_at, datetime.now(UTC))
        for cooldown_id in cooldowns:
            pick_yourself_up(cooldown_id=cooldown_id, title="demo")
        if fresh:
            deliver_samples(maildir, sample_messages(later=True))
        step("a hiring manager answers the feedback request; the next inbox pass reads it")
        step(describe(watch_inbox(mailbox=DEMO_MAILBOX)))
    _summary(store, maildir, settings)
    store.close()
    print(f"onward data      {settings.home}")
    if serve:
        from onward.deployments.worker import run_worker

        print("\nstarting the worker on the demo mailbox (Ctrl-C to stop) ...", flush=True)
        return run_worker(settings, DEMO_MAILBOX, None)
    print("see the runs     onward demo --serve  (the worker and the Prefect UI on this demo)")
    print(f"look around      ONWARD_HOME={settings.home} onward status")
    print(f"                 ONWARD_HOME={settings.home} onward drafts")
    return 0


def _profile_and_contacts(settings: Settings, step: Callable[[str], None]) -> None:
    """Sam's profile (the documented example) and a small LinkedIn export to network with."""
    from onward.tasks.network.service import import_contacts
    from onward.tasks.plan.profile import profile_path

    profile = profile_path(settings)
    if not profile.is_file():
        example = resources.files("onward.config").joinpath("profile.example.toml")
        profile.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        profile.write_text(example.read_text("utf-8"), encoding="utf-8")
    sample = resources.files("onward.config") / "samples" / "connections.csv"
    with resources.as_file(sample) as path:
        report = import_contacts(settings, path)
    step(
        f"profile from config/profile.example.toml; contacts from a LinkedIn export: "
        f"{report.added} added, {report.merged} already known"
    )


def _summary(store: Store, maildir: Path, settings: Settings) -> None:
    from onward.tasks.calendar.publish import upcoming

    calendar = settings.calendar_file
    with store.unit_of_work() as session:
        rows = session.scalars(select(LedgerEntry).order_by(LedgerEntry.sent_at)).all()
        print(f"\n{'what onward saw':<22} {'from':<34} subject")
        for row in rows:
            label = row.label or row.status
            print(f"{label:<22} {(row.from_addr or '-')[:33]:<34} {row.subject or ''}")
        requests = session.scalars(select(FeedbackRequest)).all()
        print("\nfeedback requests drafted (review and send them yourself; onward never sends):")
        for request in requests:
            to = (
                f"{request.to_name} <{request.to_addr}>"
                if request.to_addr
                else "(needs a recipient)"
            )
            print(f"  {request.company or '?'} — {request.role or '?'}: to {to}, {request.state}")
    drafts = sorted((maildir / ".Drafts" / "cur").iterdir())
    print()
    print(f"drafts           {maildir / '.Drafts' / 'cur'} ({len(drafts)} file(s))")
    print(f"calendar         {calendar}")
    _plan_summary(settings)
    _network_summary(settings)
    print(f"\nin your calendar (import {calendar.name}, or subscribe to the feed of --serve):")
    for item in upcoming(settings)[:12]:
        print(f"  {item.when:<30} {item.summary}")


def _plan_summary(settings: Settings) -> None:
    from onward.tasks.plan.goals import list_goals

    goals = list_goals(settings)
    later = [g for g in goals if g.status == "later"]
    goals = [g for g in goals if g.status != "later"]
    print(f"\nyour development plan (`onward plan`; {len(later)} more goals wait for room):")
    for goal in goals:
        print(f"  {goal.due:%a %d %b}  {goal.title}  [{goal.hours:g} h]")
        if goal.quote:
            print(f"                from feedback: “{goal.quote}”")
        else:
            print(f"                why: {goal.why}")


def _network_summary(settings: Settings) -> None:
    from onward.tasks.network.service import list_tasks

    week = list_tasks(settings)
    print("\nthis week's networking tasks (`onward tasks`):")
    for task in week.tasks:
        print(f"  {task.due:%a %d %b}  {task.summary}")


def _stepper(started: float) -> Callable[[str], None]:
    def step(text: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {text}", flush=True)

    return step
