"""``onward tasks`` and ``onward contacts``: this week's networking tasks and the contacts."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from onward.config.settings import Settings
from onward.deployments.output import to_json
from onward.tasks.errors import ConfigError

if TYPE_CHECKING:
    from onward.tasks.network.service import TaskList

SubParsers = argparse._SubParsersAction

STAGE_ORDER = ("warm", "warming", "cold")


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add ``tasks`` and ``contacts`` to the ``onward`` command line."""
    p = sub.add_parser("tasks", help="this week's networking tasks; done ID, skip ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_tasks)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    q = actions.add_parser("done", help="you did task ID: it counts towards the contact's stage")
    q.add_argument("id", metavar="ID")
    q.add_argument("--replied", action="store_true", help="and they answered")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_task_done)
    q = actions.add_parser("skip", help="not this week: nothing is recorded or made up for")
    q.add_argument("id", metavar="ID")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_task_skip)

    p = sub.add_parser("contacts", help="your contacts and how warm each is; import FILE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_contacts)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    q = actions.add_parser(
        "import",
        help="import a LinkedIn Connections.csv, a vCard (.vcf) or a CSV with a header",
        description="Import contacts; re-importing merges (by e-mail, profile URL, or name "
        "and company) and never duplicates. Bad rows are listed with their line and skipped.",
    )
    q.add_argument("file", type=Path, metavar="FILE")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_contacts_import)


def _task_id(value: str) -> int:
    if not value.strip().lstrip("#").isdigit():
        raise ConfigError(f"task ID {value!r} is not a number; `onward tasks` lists them")
    return int(value.strip().lstrip("#"))


def cmd_tasks(args: argparse.Namespace) -> int:
    from onward.tasks.network.service import list_tasks

    settings: Settings = args.settings
    result = list_tasks(settings)
    if args.json:
        print(to_json(result))
        return 0
    print(format_tasks(result))
    return 0


def format_tasks(result: TaskList) -> str:
    """The text ``onward tasks`` prints (also used by the demo script)."""
    lines = [f"Networking tasks for the week of {result.week:%a %d %b %Y}"]
    if not result.tasks:
        lines.append("  none this week (rounds start once your first cooldown is over)")
    for task in result.tasks:
        company = f"{task.company} · " if task.company else ""
        state = "" if task.state == "open" else f"  [{task.state}]"
        lines.append("")
        lines.append(f"  #{task.id:<4} due {task.due:%a %d %b}  {task.summary}{state}")
        lines.append(f"        ({company}{task.stage}) {task.how}")
        lines.append("        Suggested message (make it yours):")
        for paragraph in task.message.rstrip().split("\n"):
            wrapped = textwrap.wrap(paragraph, 80) or [""]
            lines.extend(f"          {w}".rstrip() for w in wrapped)
    if result.tasks:
        lines.append("")
        lines.append("onward tasks done ID [--replied]  ·  onward tasks skip ID")
    return "\n".join(lines)


def cmd_task_done(args: argparse.Namespace) -> int:
    from onward.tasks.network.service import complete_task

    outcome = complete_task(args.settings, _task_id(args.id), replied=args.replied)
    if args.json:
        print(to_json(outcome))
        return 0
    moved = (
        f"; {outcome.task.contact} is now {outcome.stage_after}"
        if outcome.stage_after != outcome.stage_before
        else f"; {outcome.task.contact} stays {outcome.stage_after}"
    )
    print(f"#{outcome.task.id} {outcome.task.summary}: {outcome.note}{moved}")
    return 0


def cmd_task_skip(args: argparse.Namespace) -> int:
    from onward.tasks.network.service import skip_task

    outcome = skip_task(args.settings, _task_id(args.id))
    if args.json:
        print(to_json(outcome))
        return 0
    print(f"#{outcome.task.id} {outcome.task.summary}: {outcome.note}")
    return 0


def cmd_contacts(args: argparse.Namespace) -> int:
    from onward.tasks.network.service import list_contacts

    result = list_contacts(args.settings)
    if args.json:
        print(to_json(result))
        return 0
    if not result.contacts:
        print("no contacts yet: onward gathers them from job mail, or `onward contacts import`")
        return 0
    print(f"{'id':>4}  {'stage':<8} {'name':<24} {'company':<26} reach")
    rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    for c in sorted(result.contacts, key=lambda c: (rank.get(c.stage, 9), c.name.casefold())):
        reach = c.email or c.profile_url or ""
        print(f"{c.id:>4}  {c.stage:<8} {c.name[:24]:<24} {(c.company or '')[:26]:<26} {reach}")
    counts = ", ".join(f"{result.stages.get(s, 0)} {s}" for s in STAGE_ORDER)
    print(f"\n{len(result.contacts)} contacts: {counts}")
    return 0


def cmd_contacts_import(args: argparse.Namespace) -> int:
    from onward.deployments.progress import shown
    from onward.tasks.network.service import import_contacts

    with shown():
        report = import_contacts(args.settings, args.file)
    if args.json:
        print(to_json(report))
        return 0
    kind = {"linkedin": "LinkedIn export", "vcard": "vCard", "csv": "CSV"}[report.format]
    print(
        f"{report.file} ({kind}): {report.added} added, {report.merged} merged, "
        f"{len(report.skipped)} skipped"
    )
    for problem in report.skipped:
        print(f"  line {problem.line}: {problem.reason}")
    return 0
