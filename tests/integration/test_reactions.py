"""Reactions end to end against a real Dovecot: the feedback-request draft and the cooldown.

Every test drives onward the way a person does (``onward connect``, ``onward sync --once``)
and checks the outcome where it lands: the draft in Dovecot's Drafts folder (read with a
separate, read-only IMAP session), the rows in the app database, the calendar file.
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar
from imapclient import IMAPClient
from sqlalchemy import select

from onward.config.settings import Settings, load_settings
from onward.deployments.cli import main
from onward.tasks.feedback.request import plan_feedback_request, save_draft
from onward.tasks.rejections import load_rejection
from onward.tasks.store import Cooldown, DomainEvent, FeedbackRequest, LedgerEntry, Mailbox, Store
from tests.support.dovecot import DovecotServer

pytestmark = pytest.mark.integration

ALICE = "alice@example.org"
PASSWORD = "secret"  # the dovecot fixture's password for alice

REJECTION_TEXT = (
    "Dear Alice,\r\n\r\n"
    "Thank you for applying for the Data Engineer position at Brightforge. After careful "
    "consideration we have decided to move forward with other candidates.\r\n\r\n"
    "Kind regards,\r\n{signature}\r\n"
)


# ------------------------------------------------------------------------------ mail


def raw_mail(
    *,
    from_: str,
    subject: str,
    message_id: str,
    body: str,
    in_reply_to: str | None = None,
    references: str | None = None,
    date: datetime | None = None,
) -> bytes:
    """RFC 5322 bytes written by hand, so header values reach Dovecot exactly as given."""
    when = email.utils.format_datetime(date or datetime.now(UTC) - timedelta(minutes=5))
    lines = [
        f"From: {from_}",
        f"To: Alice Example <{ALICE}>",
        f"Subject: {subject}",
        f"Date: {when}",
        f"Message-ID: {message_id}",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {references}")
    lines += [
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit",
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


def rejection(
    message_id: str,
    *,
    from_: str = "Jordan Hale <jordan.hale@brightforge.example>",
    subject: str = "Your application for Data Engineer",
    company: str = "Brightforge",
    signature: str = "Jordan Hale",
    in_reply_to: str | None = None,
    references: str | None = None,
) -> bytes:
    body = REJECTION_TEXT.format(signature=signature).replace("Brightforge", company)
    return raw_mail(
        from_=from_,
        subject=subject,
        message_id=message_id,
        body=body,
        in_reply_to=in_reply_to,
        references=references,
    )


# ------------------------------------------------------------------------------ onward


@dataclass
class Onward:
    """onward connected to the test Dovecot, with ways to look at what it did."""

    dovecot: DovecotServer
    settings: Settings

    def sync(self, *extra: str) -> None:
        assert main(["sync", "--once", *extra]) == 0

    # -- the app database

    def query(self, model: type[Any], **where: Any) -> list[Any]:
        store = Store.open(self.settings.database_url)
        try:
            with store.unit_of_work() as session:
                stmt = select(model).filter_by(**where).order_by(model.id)
                return list(session.scalars(stmt))
        finally:
            store.close()

    def event_id(self, message_id: str) -> int:
        store = Store.open(self.settings.database_url)
        try:
            with store.unit_of_work() as session:
                stmt = (
                    select(DomainEvent.id)
                    .join(LedgerEntry, LedgerEntry.id == DomainEvent.ledger_id)
                    .where(LedgerEntry.message_id == message_id)
                )
                return int(session.scalars(stmt).one())
        finally:
            store.close()

    def request_for(self, message_id: str) -> FeedbackRequest:
        (entry,) = self.query(LedgerEntry, message_id=message_id)
        (request,) = self.query(FeedbackRequest, ledger_id=entry.id)
        return request  # type: ignore[no-any-return]

    # -- the mailbox, read without changing anything

    def drafts(self) -> list[Draft]:
        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=10)
        try:
            client.login("alice", PASSWORD)
            client.select_folder("Drafts", readonly=True)
            uids = client.search(["ALL"])
            data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
        finally:
            client.logout()
        return [
            Draft(
                uid=uid,
                raw=bytes(data[uid][b"BODY[]"]),
                msg=email.message_from_bytes(data[uid][b"BODY[]"], policy=email.policy.default),
                flags=frozenset(f.decode() for f in data[uid][b"FLAGS"]),
            )
            for uid in sorted(uids)
        ]

    def folder_flags(self) -> dict[str, dict[str, frozenset[str]]]:
        return {f: self.dovecot.flags("alice", f) for f in ("INBOX", "Sent")}


@dataclass
class Draft:
    uid: int
    raw: bytes
    msg: EmailMessage
    flags: frozenset[str]

    def header(self, name: str) -> str | None:
        value = self.msg[name]
        return None if value is None else str(value)


@pytest.fixture
def onward(
    dovecot: DovecotServer,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Onward:
    """`onward connect` to Dovecot as alice, then a first `sync --once` to start the watch."""
    home = tmp_path / "home"
    monkeypatch.setenv("ONWARD_HOME", str(home))
    monkeypatch.setenv("ONWARD_DATABASE_URL", database_url)
    monkeypatch.setenv("ONWARD_TEST_IMAP_PW", PASSWORD)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))  # restored afterwards
    code = main(
        [
            "connect",
            "--host",
            "127.0.0.1",
            "--port",
            str(dovecot.port),
            "--user",
            "alice",
            "--address",
            ALICE,
            "--security",
            "plain",
            "--password-env",
            "ONWARD_TEST_IMAP_PW",
        ]
    )
    assert code == 0
    env = {"ONWARD_HOME": str(home), "ONWARD_DATABASE_URL": database_url}
    world = Onward(dovecot=dovecot, settings=load_settings(environ=env))
    world.sync()  # the first pass only starts the watch
    return world


def encoded_word(text: str) -> str:
    """``text`` as one RFC 2047 encoded word: whatever it holds survives transport."""
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


LINE_BREAKS = ("\r", "\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029")


def assert_clean_headers(draft: Draft) -> None:
    """No header value carries a line break; no Bcc, exactly one From and at most one To."""
    for name, value in draft.msg.items():
        for brk in LINE_BREAKS:
            assert brk not in str(value), (name, brk)
    head = draft.raw.split(b"\r\n\r\n", 1)[0]
    names = [
        line.split(b":", 1)[0].strip().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]
    assert b"bcc" not in names
    assert b"cc" not in names
    assert names.count(b"from") == 1
    assert names.count(b"to") <= 1
    assert names.count(b"subject") == 1


# ------------------------------------------------------------------------------ tests


@pytest.mark.usefixtures("prefect_harness")
def test_a_rejection_yields_one_threaded_draft_and_one_cooldown(onward: Onward) -> None:
    msg_id = "<rej-1@brightforge.example>"
    onward.dovecot.deliver("alice", rejection(msg_id))
    before = onward.folder_flags()
    started = datetime.now(UTC)
    onward.sync()
    finished = datetime.now(UTC)

    (draft,) = onward.drafts()
    assert draft.header("In-Reply-To") == msg_id
    assert (draft.header("References") or "").split()[-1] == msg_id
    subject = draft.header("Subject") or ""
    assert subject == "Re: Your application for Data Engineer"
    assert subject.lower().count("re:") == 1
    to = draft.msg["To"].addresses
    assert [a.addr_spec for a in to] == ["jordan.hale@brightforge.example"]
    assert to[0].display_name == "Jordan Hale"
    assert [a.addr_spec for a in draft.msg["From"].addresses] == [ALICE]
    assert draft.header("X-Onward-Feedback-For") == msg_id
    assert "\\Draft" in draft.flags
    assert "Hi Jordan," in draft.msg.get_content()
    assert_clean_headers(draft)

    (request,) = onward.query(FeedbackRequest)
    assert (request.state, request.to_addr) == ("drafted", "jordan.hale@brightforge.example")
    assert (request.folder, request.draft_uid) == ("Drafts", draft.uid)
    assert request.marker == msg_id

    (cooldown,) = onward.query(Cooldown)
    days = timedelta(days=3)
    assert started - timedelta(seconds=1) <= cooldown.starts_at <= finished
    assert started + days - timedelta(seconds=1) <= cooldown.ends_at <= finished + days
    assert cooldown.days == 3

    calendar = Calendar.from_ical(onward.settings.calendar_file.read_bytes())
    (event,) = calendar.walk("VEVENT")
    assert str(event["uid"]) == cooldown.calendar_uid
    assert event.decoded("dtstart") == cooldown.starts_at.date()
    assert event.decoded("dtend") == cooldown.ends_at.date()
    assert "Jordan Hale" in str(event["description"])

    (event_row,) = onward.query(DomainEvent)
    assert event_row.handled_at is not None
    assert (event_row.payload or {})["sender_kind"] == "person"

    # -- the pass again: nothing new in the mailbox, then a forced re-read with --since
    onward.sync()
    onward.sync("--since", "2000-01-01")
    # -- and the reactions again, as if the first run had died before marking them started
    from onward.flows.watch_inbox import watch_inbox

    _unhandle_all(onward)
    watch_inbox()
    watch_inbox()

    (again,) = onward.drafts()
    assert again.uid == draft.uid
    assert len(onward.query(FeedbackRequest)) == 1
    assert onward.query(FeedbackRequest)[0].state == "drafted"
    (cooldown_again,) = onward.query(Cooldown)
    assert (cooldown_again.id, cooldown_again.ends_at) == (cooldown.id, cooldown.ends_at)
    calendar = Calendar.from_ical(onward.settings.calendar_file.read_bytes())
    assert len(calendar.walk("VEVENT")) == 1
    assert onward.folder_flags() == before


def _unhandle_all(onward: Onward) -> None:
    store = Store.open(onward.settings.database_url)
    try:
        with store.unit_of_work() as session:
            for event in session.scalars(select(DomainEvent)):
                event.handled_at = None
    finally:
        store.close()


@pytest.mark.usefixtures("prefect_harness")
def test_crash_between_append_and_database_write_leaves_one_draft(onward: Onward) -> None:
    from onward.flows.watch_inbox import watch_inbox

    msg_id = "<rej-crash@brightforge.example>"
    onward.dovecot.deliver("alice", rejection(msg_id))
    before = onward.folder_flags()
    watch_inbox(reactions="none")  # the rejection is recorded, its reactions not started
    event_id = onward.event_id(msg_id)

    # The draft half of request_feedback, up to and including the APPEND, then a "crash".
    store = Store.open(onward.settings.database_url)
    try:
        with store.unit_of_work() as session:
            plan = plan_feedback_request(
                load_rejection(session, event_id, onward.settings), onward.settings
            )
            folder = session.get_one(Mailbox, plan.rejection.mailbox_id).drafts_folder
    finally:
        store.close()
    state, ref = save_draft(plan, onward.settings, folder)
    assert state == "drafted"
    assert ref is not None
    (appended,) = onward.drafts()
    assert appended.uid == ref.uid
    assert onward.query(FeedbackRequest) == []

    watch_inbox()  # the next pass picks the unhandled rejection up again

    (draft,) = onward.drafts()
    assert draft.uid == appended.uid
    (request,) = onward.query(FeedbackRequest)
    assert (request.state, request.folder, request.draft_uid) == ("drafted", "Drafts", draft.uid)
    assert len(onward.query(Cooldown)) == 1
    assert onward.folder_flags() == before


@pytest.mark.usefixtures("prefect_harness")
def test_sync_once_picks_up_reactions_a_crash_left_behind(onward: Onward) -> None:
    from onward.flows.watch_inbox import watch_inbox

    msg_id = "<rej-left-behind@brightforge.example>"
    onward.dovecot.deliver("alice", rejection(msg_id))
    watch_inbox(reactions="none")  # as if the run died right after recording the mail
    onward.sync()  # no new mail, but the pending reactions keep the pass from being skipped
    assert len(onward.drafts()) == 1
    assert len(onward.query(FeedbackRequest)) == 1
    assert len(onward.query(Cooldown)) == 1


@pytest.mark.usefixtures("prefect_harness")
def test_no_reply_rejection_goes_to_the_recruiter_in_the_thread(onward: Onward) -> None:
    recruiter_id = "<priya-1@brightforge.example>"
    threaded_id = "<ats-1@mail.brightforge.example>"
    alone_id = "<ats-2@mail.quillworks.example>"
    onward.dovecot.deliver(
        "alice",
        raw_mail(
            from_="Priya Raman <priya@brightforge.example>",
            subject="Data Engineer at Brightforge",
            message_id=recruiter_id,
            body="Hi Alice,\r\n\r\nthanks for the call today. I have passed your CV on to the "
            "hiring manager and will be in touch.\r\n\r\nPriya\r\n",
            date=datetime.now(UTC) - timedelta(days=2),
        ),
    )
    onward.dovecot.deliver(
        "alice",
        rejection(
            threaded_id,
            from_="Brightforge Careers <no-reply@mail.brightforge.example>",
            subject="Re: Data Engineer at Brightforge",
            signature="The Brightforge Talent Team",
            in_reply_to=recruiter_id,
            references=recruiter_id,
        ),
    )
    onward.dovecot.deliver(
        "alice",
        rejection(
            alone_id,
            from_="Quillworks Careers <no-reply@mail.quillworks.example>",
            subject="Your application to Quillworks",
            company="Quillworks",
            signature="The Quillworks Talent Team",
        ),
    )
    before = onward.folder_flags()
    onward.sync()

    drafts = {d.header("X-Onward-Feedback-For"): d for d in onward.drafts()}
    assert set(drafts) == {threaded_id, alone_id}
    for msg_id in (threaded_id, alone_id):
        (event,) = onward.query(DomainEvent, id=onward.event_id(msg_id))
        assert (event.payload or {})["sender_kind"] == "no-reply"

    threaded = drafts[threaded_id]
    assert [a.addr_spec for a in threaded.msg["To"].addresses] == ["priya@brightforge.example"]
    assert threaded.header("In-Reply-To") == threaded_id
    assert (threaded.header("References") or "").split() == [recruiter_id, threaded_id]
    assert threaded.header("Subject") == "Re: Data Engineer at Brightforge"
    assert "Hi Priya," in threaded.msg.get_content()
    request = onward.request_for(threaded_id)
    assert (request.state, request.to_addr) == ("drafted", "priya@brightforge.example")

    alone = drafts[alone_id]
    assert alone.msg["To"] is None
    assert b"\r\nTo:" not in alone.raw.split(b"\r\n\r\n", 1)[0]
    assert alone.header("In-Reply-To") == alone_id
    assert "\\Draft" in alone.flags
    request = onward.request_for(alone_id)
    assert (request.state, request.to_addr) == ("needs_recipient", None)
    assert request.note
    for draft in drafts.values():
        assert_clean_headers(draft)
        assert [a.addr_spec for a in draft.msg["From"].addresses] == [ALICE]

    assert len(onward.query(Cooldown)) == 2
    calendar = Calendar.from_ical(onward.settings.calendar_file.read_bytes())
    assert len(calendar.walk("VEVENT")) == 2
    assert onward.folder_flags() == before


@pytest.mark.usefixtures("prefect_harness")
def test_a_deleted_or_sent_draft_is_not_recreated(onward: Onward) -> None:
    from onward.flows.request_feedback import request_feedback

    deleted_id = "<rej-deleted@brightforge.example>"
    sent_id = "<rej-sent@quillworks.example>"
    onward.dovecot.deliver("alice", rejection(deleted_id))
    onward.dovecot.deliver(
        "alice",
        rejection(
            sent_id,
            from_="Sam Okafor <sam.okafor@quillworks.example>",
            subject="Your application to Quillworks",
            company="Quillworks",
            signature="Sam Okafor",
        ),
    )
    inbox = onward.dovecot.flags("alice")
    onward.sync()
    assert len(onward.drafts()) == 2
    assert onward.request_for(deleted_id).state == "drafted"
    assert onward.request_for(sent_id).state == "drafted"

    # The person sends one reply (it lands in Sent) and deletes both drafts.
    onward.dovecot.deliver(
        "alice",
        raw_mail(
            from_=f"Alice Example <{ALICE}>",
            subject="Re: Your application to Quillworks",
            message_id="<alice-reply-1@example.org>",
            body="Hi Sam,\r\n\r\ncould you tell me what I could do better?\r\n\r\nAlice\r\n",
            in_reply_to=sent_id,
            references=sent_id,
        ),
        folder="Sent",
    )
    onward.dovecot.doveadm("expunge", "-u", "alice", "mailbox", "Drafts", "all")
    assert onward.drafts() == []
    before = onward.folder_flags()

    result = request_feedback(event_id=onward.event_id(deleted_id))
    assert result == {"state": "discarded", "created": False, "folder": "Drafts", "problem": None}
    result = request_feedback(event_id=onward.event_id(sent_id))
    assert result == {"state": "sent", "created": False, "folder": "Drafts", "problem": None}

    assert onward.drafts() == []
    assert onward.request_for(deleted_id).state == "discarded"
    assert onward.request_for(sent_id).state == "sent"
    assert len(onward.query(FeedbackRequest)) == 2
    assert onward.folder_flags() == before
    assert onward.dovecot.flags("alice") == inbox


@pytest.mark.usefixtures("prefect_harness")
def test_hostile_names_and_subjects_cannot_add_headers(onward: Onward) -> None:
    # Encoded words decode to CR LF + "Bcc: ..." in the display names and the subject.
    from_id, reply_to_id = "<rej-hostile-1@corp.example>", "<rej-hostile-2@corp.example>"
    body = REJECTION_TEXT.format(signature="Eve").replace("Brightforge", "Corp")
    hostile_from = raw_mail(
        from_="=?utf-8?q?Eve=0D=0ABcc=3A_victim=40evil=2Eexample?= <eve@corp.example>",
        subject="=?utf-8?q?Your_application=0D=0ABcc=3A_victim=40evil=2Eexample?=",
        message_id=from_id,
        body=body,
    )
    hostile_reply_to = raw_mail(
        from_="Mallory <mallory@corp.example>",
        subject=encoded_word(
            "Re: Re: Your application\r\n\r\nBcc: x@evil.example\u2028Cc: y@evil.example\u0085"
        ),
        message_id=reply_to_id,
        body=body,
    ).replace(
        b"\r\nMIME-Version",
        b"\r\nReply-To: =?utf-8?q?Mal=0ACc=3A_x=40evil=2Eexample=0D=0A?= "
        b"<mallory.hr@corp.example>\r\nMIME-Version",
    )
    onward.dovecot.deliver("alice", hostile_from)
    onward.dovecot.deliver("alice", hostile_reply_to)
    before = onward.folder_flags()
    onward.sync()

    drafts = {d.header("X-Onward-Feedback-For"): d for d in onward.drafts()}
    assert set(drafts) == {from_id, reply_to_id}
    for draft in drafts.values():
        assert_clean_headers(draft)
        assert draft.msg["Bcc"] is None
        assert draft.msg["Cc"] is None
        assert len(draft.msg["To"].addresses) == 1
        assert "evil.example" not in str(draft.msg["To"].addresses[0].addr_spec)
        subject = draft.header("Subject") or ""
        assert subject.startswith("Re: Your application")
        assert subject.lower().count("re:") == 1

    (to,) = drafts[from_id].msg["To"].addresses
    assert to.addr_spec == "eve@corp.example"
    assert drafts[from_id].header("In-Reply-To") == from_id
    (to,) = drafts[reply_to_id].msg["To"].addresses
    assert to.addr_spec == "mallory.hr@corp.example"
    assert drafts[reply_to_id].header("In-Reply-To") == reply_to_id

    for msg_id, addr in ((from_id, "eve@corp.example"), (reply_to_id, "mallory.hr@corp.example")):
        request = onward.request_for(msg_id)
        assert (request.state, request.to_addr) == ("drafted", addr)
        assert "\n" not in (request.to_name or "")
        assert "\r" not in (request.to_name or "")
    assert onward.folder_flags() == before
