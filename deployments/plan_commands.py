"""``onward plan``: the development plan; ``init`` (profile), ``review``, ``done``, ``skip``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from onward.config.settings import WEEKDAYS, Settings
from onward.deployments.output import to_json
from onward.tasks.errors import ConfigError

if TYPE_CHECKING:
    from onward.tasks.plan.goals import Outcome

SubParsers = argparse._SubParsersAction


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="your development plan: small dated goals, in your calendar",
        description="The goals onward planned from your profile, the pattern of your "
        "rejections and the feedback you got. `init` sets your profile, `review` is the "
        "weekly self-evaluation, `done ID` / `skip ID` mark one goal.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="also goals done or skipped")
    p.set_defaults(func=cmd_plan)
    actions = p.add_subparsers(dest="plan_command", metavar="ACTION")

    i = actions.add_parser("init", help="your profile: where you are, where you want to go")
    i.add_argument("--position", help="your current position")
    i.add_argument("--target-role", action="append", default=None, metavar="ROLE")
    i.add_argument("--skill", action="append", default=None, metavar="NAME=LEVEL",
                   help="a skill and beginner|intermediate|advanced (repeatable)")  # fmt: skip
    i.add_argument("--learn", action="append", default=None, metavar="TOPIC")
    i.add_argument("--hours", type=float, help="hours a week you can give")
    i.add_argument("--days", help="preferred days, e.g. tue,thu,sat")
    i.set_defaults(func=cmd_init)

    r = actions.add_parser("review", help="the self-evaluation: each goal done, partly or not yet")
    r.set_defaults(func=cmd_review)

    for name, status in (("done", "done"), ("skip", "skipped")):
        a = actions.add_parser(name, help=f"mark a goal {status}")
        a.add_argument("id", type=int, metavar="ID")
        a.add_argument("--json", action="store_true", help="machine-readable output")
        a.set_defaults(func=cmd_mark, status=status)


def cmd_plan(args: argparse.Namespace) -> int:
    from onward.tasks.plan.goals import list_goals
    from onward.tasks.plan.profile import load_profile

    settings: Settings = args.settings
    rows = list_goals(settings, include_finished=args.all)
    if args.json:
        print(to_json(rows))
        return 0
    if not rows:
        print("no goals yet: the plan starts when your first cooldown ends")
    else:
        print(f"{'#':>3}  {'due':<10} {'status':<8} {'h':>4}  goal")
        for row in rows:
            when = "later" if row.status == "later" else f"{row.due:%a %d %b}"
            print(f"{row.id:>3}  {when:<10} {row.status:<8} {row.hours:>4g}  {row.title}")
            print(f"{'':>5}{'':<10} {'':<8} {'':>4}  why: {row.why}")
    if load_profile(settings) is None:
        print("\nno profile yet: `onward plan init` adds your target role, what you want to")
        print("learn and the hours you have, and paces the plan to them")
    print("\nonward plan done ID · onward plan skip ID · onward plan review (weekly)")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from onward.tasks.plan.profile import Profile, load_profile, save_profile

    settings: Settings = args.settings
    current = load_profile(settings) or Profile()
    ask = _asker(args)
    position = args.position or ask(
        "Where are you now (current position)?", current.current_position
    )
    roles = args.target_role or _list(
        ask("Target role(s), comma-separated?", ", ".join(current.target_roles))
    )
    skills_text = ",".join(args.skill) if args.skill else ask(
        "Skills with a level (e.g. SQL=advanced, Airflow=beginner)?",
        ", ".join(f"{k}={v}" for k, v in current.skills.items()),
    )  # fmt: skip
    learning = args.learn or _list(
        ask("What do you want to learn or get better at?", ", ".join(current.learning))
    )
    hours = args.hours if args.hours is not None else float(
        ask("Hours a week you can give?", f"{current.hours_per_week:g}") or current.hours_per_week
    )  # fmt: skip
    days = _days(
        args.days
        or ask(
            "Preferred days (e.g. tue,thu,sat)?", ",".join(d[:3] for d in current.preferred_days)
        )
    )
    try:
        profile = Profile(
            current_position=position,
            target_roles=tuple(roles),
            skills=_skills(skills_text),
            learning=tuple(learning),
            hours_per_week=hours,
            preferred_days=days or current.preferred_days,
        )
    except ValueError as exc:
        raise ConfigError(f"profile: {str(exc).splitlines()[-1].strip()}") from None
    path = save_profile(settings, profile)
    print(f"profile saved to {path}")
    _replanned(settings, "your profile changed")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    """Walk through the goals due so far: done, partly, not yet; confidence 1-5; a note."""
    from onward.tasks.plan.goals import evaluate, list_goals, local_today

    settings: Settings = args.settings
    today = local_today(settings)
    due = [g for g in list_goals(settings, include_finished=False) if g.due <= today]
    if not due:
        print("nothing due yet: your next self-evaluation has nothing to ask")
        return 0
    ask = _asker(args)
    print(f"{len(due)} goal(s) to look back on. For each: done, partly or not yet.\n")
    for goal in due:
        print(f"#{goal.id} {goal.title} (due {goal.due:%a %d %b})")
        outcome = _outcome(ask("  done / partly / not yet?", "not yet"))
        confidence_text = ask("  how confident do you feel about it, 1-5?", "")
        confidence = int(confidence_text) if confidence_text.strip().isdigit() else None
        note = ask("  a note (optional)?", "") or None
        evaluate(settings, goal.id, outcome, confidence, note)
    _replanned(settings, "a self-evaluation")
    return 0


def cmd_mark(args: argparse.Namespace) -> int:
    from onward.tasks.plan.goals import set_status

    row = set_status(args.settings, args.id, args.status)
    if args.json:
        print(to_json(row))
    else:
        print(f"#{row.id} {row.title}: {row.status}")
    _replanned(args.settings, f"goal {args.id} {args.status}", quiet=args.json)
    return 0


def _replanned(settings: Settings, reason: str, *, quiet: bool = False) -> None:
    from onward.tasks.plan.goals import refresh_plan

    report = refresh_plan(settings)
    if quiet:
        return
    if not report.started:
        print("the plan starts when your first cooldown ends")
        return
    print(
        f"plan updated ({reason}): {report.added} new goal(s), {report.moved} moved; "
        "`onward plan` shows it, your calendar has it"
    )


def _asker(args: argparse.Namespace) -> Callable[[str, str], str]:
    def ask(question: str, default: str) -> str:
        hint = f" [{default}]" if default else ""
        try:
            answer = input(f"{question}{hint} ").strip()
        except EOFError:
            return default
        return answer or default

    return ask


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _skills(text: str) -> dict[str, str]:
    out = {}
    for item in _list(text):
        name, sep, level = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"skill {item!r}: write NAME=beginner|intermediate|advanced")
        out[name.strip()] = level.strip().lower()
    return out


def _days(text: str) -> tuple[str, ...]:
    days = []
    for item in _list(text.replace(" ", ",")):
        match = [d for d in WEEKDAYS if d.startswith(item.lower()[:3])]
        if not match:
            raise ConfigError(f"{item!r} is not a day of the week")
        days.append(match[0])
    return tuple(days)


def _outcome(text: str) -> Outcome:
    word = text.strip().lower().replace("-", " ").replace("_", " ")
    if word in ("done", "d", "yes", "y"):
        return "done"
    if word in ("partly", "p", "partial", "some"):
        return "partly"
    return "not_yet"
