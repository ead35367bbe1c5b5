"""The feedback loop and the plan with real flows (Prefect harness) on a Maildir, SQLite and
PostgreSQL: a hiring manager's answer with three points becomes three goals quoting them;
a thank-you adds none; a changed subject still matches the thread; running again changes
nothing; the goals are in the calendar; `onward drafts` and `onward plan` show it."""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlalchemy import select

from onward.config.settings import Settings
from onward.deployments.cli import main
from onward.flows.common import in_process
from onward.flows.cooldown import pick_yourself_up
from onward.flows.watch_inbox import watch_inbox
from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
from onward.tasks.store import Cooldown, FeedbackPoint, FeedbackRequest, Goal, LedgerEntry, Store
from tests.support.db import add_mailbox
from tests.unit.test_plan import FEEDBACK

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

REJECTION = (
    "Dear Sam,\n\nThank you for interviewing for the Data Engineer position at Corvid Labs. "
    "After careful consideration we have decided to move forward with other candidates.\n\n"
    "Kind regards,\nRenée Dubois\n"
)
OTHER = (
    "Hi Sam,\n\nUnfortunately we will not be moving forward with your application for the "
    "Analytics Engineer role at Brightforge.\n\nBest,\nLee Park\n"
)
RENEE = "Renée Dubois <renee@corvid.example>"
LEE = "Lee Park <lee@brightforge.example>"
THANKS = "Hi Sam,\n\nThank you for reaching out, and best of luck with your search!\n\nLee\n"


def mail(
    msg_id: str, sender: str, subject: str, body: str, *, reply_to_ids: tuple[str, ...] = ()
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = "Sam Rivera <sam@example.org>"
    msg["Subject"] = subject
    msg["Message-ID"] = msg_id
    msg["Date"] = "Mon, 30 Nov 2026 09:00:00 +0000"
    if reply_to_ids:
        msg["In-Reply-To"] = reply_to_ids[-1]
        msg["References"] = " ".join(reply_to_ids)
    msg.set_content(body)
    return bytes(msg)


@pytest.fixture
def maildir(
    settings: Settings, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    root = create_maildir(tmp_path / "Maildir")
    add_mailbox(
        store, name="box", kind="maildir", path=str(root), folder="INBOX",
        drafts_folder="Drafts", address="sam@example.org",
    )  # fmt: skip
    monkeypatch.setenv("ONWARD_HOME", str(settings.home))
    monkeypatch.setenv("ONWARD_DATABASE_URL", settings.database_url)
    with in_process():
        watch_inbox(mailbox="box")
    return root


def rows(store: Store, model: type) -> list:  # type: ignore[type-arg]
    with store.unit_of_work() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def test_feedback_becomes_goals_that_quote_it(
    maildir: Path, store: Store, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    deliver_to_maildir(maildir, mail("<r1@corvid.example>", RENEE, "Your application", REJECTION))
    deliver_to_maildir(maildir, mail("<r2@brightforge.example>", LEE, "Your application", OTHER))
    with in_process():
        watch_inbox(mailbox="box")
        for cooldown in rows(store, Cooldown):
            pick_yourself_up(cooldown_id=cooldown.id)
    before = {g.key for g in rows(store, Goal)}
    assert before, "the plan starts when the cooldown ends"
    assert not any(k.startswith("feedback:") for k in before)
    corvid, brightforge = rows(store, FeedbackRequest)
    assert corvid.draft_message_id

    # Renée answers the draft (only its Message-ID), with a new subject; Lee says thanks.
    to_draft = (corvid.draft_message_id,)
    deliver_to_maildir(
        maildir,
        mail("<a1@corvid.example>", RENEE, "Some thoughts", FEEDBACK, reply_to_ids=to_draft),
    )
    to_rejection = ("<r2@brightforge.example>",)
    deliver_to_maildir(
        maildir,
        mail(
            "<a2@brightforge.example>",
            LEE,
            "Re: Your application",
            THANKS,
            reply_to_ids=to_rejection,
        ),
    )
    with in_process():
        watch_inbox(mailbox="box")
    corvid, brightforge = rows(store, FeedbackRequest)
    assert (corvid.state, brightforge.state) == ("answered", "answered")
    points = rows(store, FeedbackPoint)
    assert len(points) == 3
    assert {p.request_id for p in points} == {corvid.id}
    goals = rows(store, Goal)
    quoted = {g.key.split(":part-")[0]: g.quote for g in goals if g.source == "feedback"}
    assert quoted == {f"feedback:{p.id}": p.quote for p in points}
    assert all(f"Corvid Labs said: “{g.quote}”" == g.why for g in goals if g.source == "feedback")
    answer = next(e for e in rows(store, LedgerEntry) if e.message_id == "<a1@corvid.example>")
    assert answer.label == "feedback_reply"

    snapshot = [(g.key, g.due, g.title, g.status) for g in rows(store, Goal)]
    calendar = settings.calendar_file.read_bytes()
    with in_process():  # again: nothing changes
        watch_inbox(mailbox="box")
        watch_inbox(mailbox="box")
    assert [(g.key, g.due, g.title, g.status) for g in rows(store, Goal)] == snapshot
    assert len(rows(store, FeedbackPoint)) == 3
    assert settings.calendar_file.read_bytes() == calendar

    todos = [c for c in Calendar.from_ical(calendar).walk("VTODO")]
    summaries = {str(t["SUMMARY"]) for t in todos}
    assert {g.title for g in rows(store, Goal) if g.status == "planned"} <= summaries

    assert main(["drafts", "--json", "--no-check"]) == 0
    states = {d["company"]: d["state"] for d in json.loads(capsys.readouterr().out)}
    assert states["Corvid Labs"] == "answered"
    assert main(["plan", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert any(g["quote"] == points[0].quote for g in listed)

    first = next(g for g in listed if g["source"] == "feedback")
    assert main(["plan", "done", str(first["id"])]) == 0
    assert "done" in capsys.readouterr().out
    todo = next(
        t for t in Calendar.from_ical(settings.calendar_file.read_bytes()).walk("VTODO")
        if str(t["SUMMARY"]) == first["title"]
    )  # fmt: skip
    assert str(todo["STATUS"]) == "COMPLETED"
