"""The classifier as watch_inbox's per-message step: verdicts stored, rejections as events."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from onward.tasks.classify.step import ClassifyStep
from onward.tasks.mail.maildir import MaildirMailbox, create_maildir, deliver_to_maildir
from onward.tasks.mail.sync import sync_once
from onward.tasks.store import DomainEvent, LedgerEntry, Store
from tests.support.db import add_mailbox
from tests.support.mailgen import make_mail

REJECTION = (
    "Dear Alice,\n\nThank you for applying for the Data Engineer position at Northwind.\n"
    "After careful consideration we have decided to move forward with other candidates.\n\n"
    "Kind regards,\nNorthwind Recruiting\n"
)
INVITATION = (
    "Hi Alice,\n\nThanks for applying for the Data Engineer role. We would like to invite "
    "you to an interview next week. Which times work for you?\n\nBest,\nJordan\n"
)


def test_verdicts_are_stored_and_a_rejection_is_an_event(store: Store, tmp_path: Path) -> None:
    maildir = create_maildir(tmp_path / "Maildir")
    add_mailbox(store, kind="maildir", path=str(maildir), address="alice@example.org")
    step = ClassifyStep(user_addresses=("alice@example.org",))
    with MaildirMailbox(maildir) as box:
        sync_once(store, "test", box, handler=step)
    deliver_to_maildir(maildir, make_mail(1, subject="Your application", body=REJECTION))
    deliver_to_maildir(maildir, make_mail(2, subject="Interview invitation", body=INVITATION))
    own = make_mail(3, subject="Re: Your application", body=REJECTION, sender="alice@example.org")
    deliver_to_maildir(maildir, own)
    for _ in range(2):  # a second pass adds nothing
        with MaildirMailbox(maildir) as box:
            report = sync_once(store, "test", box, handler=step)
    with store.unit_of_work() as session:
        labels = dict(session.execute(select(LedgerEntry.key, LedgerEntry.label)).all())
        events = session.scalars(select(DomainEvent)).all()
        assert labels["<test-1@company.example>"] == "rejection"
        assert labels["<test-2@company.example>"] == "interview"
        assert labels["<test-3@company.example>"] != "rejection"  # the person's own mail
        assert len(events) == 1
        assert events[0].kind == "rejection.detected"
        payload = events[0].payload or {}
        assert payload["key"] == "<test-1@company.example>"
        assert payload["reasons"]
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.label == "rejection")).one()
        assert entry.verdict is not None
        assert entry.verdict["reasons"][0]["phrase"]
    assert report.recorded == 0
