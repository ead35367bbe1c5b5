"""``onward review``: borderline rejections waiting for you to confirm or dismiss."""

from __future__ import annotations

import argparse

from onward.config.settings import Settings
from onward.deployments.output import to_json

SubParsers = argparse._SubParsersAction


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "review",
        help="borderline rejections waiting for you: confirm or dismiss each",
        description="Mail onward is not sure about waits here (and as a form in the Prefect "
        "UI while `onward run` is running). Confirming one drafts the feedback request and "
        "starts the cooldown, as for any rejection; dismissing it means nothing happens.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
    actions = p.add_subparsers(dest="review_command", metavar="ACTION")
    for name, help_text in (
        ("confirm", "yes, it is a rejection: draft the request, start the cooldown"),
        ("dismiss", "no, it is not a rejection: nothing happens"),
    ):
        a = actions.add_parser(name, help=help_text)
        a.add_argument("id", type=int, metavar="ID", help="the number `onward review` shows")
        a.add_argument("--note", help="why, in your words (kept with your decision)")
        a.add_argument("--json", action="store_true", help="machine-readable output")
        a.set_defaults(func=cmd_decide, decision="confirmed" if name == "confirm" else "dismissed")


def cmd_list(args: argparse.Namespace) -> int:
    from onward.tasks.review import list_waiting

    items = list_waiting(args.settings)
    if args.json:
        print(to_json(items))
        return 0
    if not items:
        print("nothing waits for your review")
        return 0
    for item in items:
        received = f"{item.received:%a %d %b}" if item.received else "?"
        print(f"#{item.id:<4} {item.title}  ({received}, confidence {item.confidence:.2f})")
        print(f"      from {item.sender or '?'}: {item.subject or ''}")
        for quote in item.evidence[:3]:
            print(f"      “{quote}”")
    print("\nonward review confirm ID   (a rejection: draft the request, start the cooldown)")
    print("onward review dismiss ID   (not a rejection: nothing happens)")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from onward.tasks.review import decide

    settings: Settings = args.settings
    decided = decide(settings, args.id, args.decision, args.note)
    started = None
    if decided.decision == "confirmed" and decided.changed:
        started = _react_now(args, decided.item.id, decided.item.title)
    if decided.review_run_id and decided.changed:
        _answer_the_ui(settings, decided.review_run_id, decided.decision == "confirmed", args.note)
    if args.json:
        print(to_json({"decided": decided, "reactions": started}))
        return 0
    if not decided.changed:
        print(f"#{args.id} was already {decided.decision}; nothing to do")
    elif decided.decision == "dismissed":
        print(f"#{args.id} dismissed: nothing will happen for {decided.item.title}")
    else:
        print(f"#{args.id} confirmed: {started}")
    return 0


def _react_now(args: argparse.Namespace, event_id: int, title: str) -> str:
    """The same reactions a detected rejection gets, in this process (like `sync --once`):
    the draft now, the cooldown recorded (its end is scheduled by `onward run`)."""
    from onward.flows.common import in_process
    from onward.flows.review import confirmed_rejection

    config = str(args.config.resolve()) if args.config else None
    with in_process():
        done = confirmed_rejection(event_id, title, config)
    if not done:
        return "its reactions could not all start: `onward drafts` says why and what to do"
    return "the feedback request is in your Drafts and the cooldown has started"


def _answer_the_ui(settings: Settings, run_id: str, is_rejection: bool, note: str | None) -> None:
    """The question waiting in the Prefect UI gets the same answer, so it does not hang.
    Only through the running worker's API (or PREFECT_API_URL); when neither is there the
    run finds the decision made when someone resumes it (it checks first)."""
    import contextlib
    import os
    from uuid import UUID

    from onward.tasks.status import read_worker_info

    worker = read_worker_info(settings)
    if "PREFECT_API_URL" not in os.environ:
        if worker is None or not worker.ui:
            return
        os.environ["PREFECT_API_URL"] = worker.ui.rstrip("/") + "/api"
    from prefect.flow_runs import resume_flow_run

    with contextlib.suppress(Exception):
        resume_flow_run(UUID(run_id), run_input={"is_rejection": is_rejection, "note": note or ""})
