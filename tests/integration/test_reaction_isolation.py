"""No rejection can block the others: odd addresses are written as RFC 5322 allows or left
for the person, a reaction that fails is recorded on its rejection (with what to do), and
the pass goes on. On IMAP (Dovecot) and Maildir, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from onward.deployments.cli import main
from onward.tasks.events import REJECTION_DETECTED
from onward.tasks.rejections import GIVE_UP_AFTER, record_failure
from onward.tasks.store import (
    Cooldown,
    DomainEvent,
    FeedbackRequest,
    LedgerEntry,
    Mailbox,
    Store,
    pending_rejections,
)
from onward.tasks.store.base import utcnow
from tests.support.db import add_mailbox
from tests.support.world import ALICE, World, connect_world, rejection_mail, world

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]
__all__ = ["world"]

# (Message-ID, From, what the draft's To must end with, or None for "needs a recipient")
ODD_SENDERS = [
    (
        "<long@x>",
        "Lo Ng <" + "l" * 90 + "@brightforge.example>",
        "l" * 90 + "@brightforge.example>",
    ),
    ("<under@x>", "Una Der <una@mail_hr.brightforge.example>", "una@mail_hr.brightforge.example>"),
    ("<literal@x>", "Ip Lit <ip@[127.0.0.1]>", "ip@[127.0.0.1]>"),
    ("<dots@x>", "Do Ts <do..ts@brightforge.example>", '"do..ts"@brightforge.example>'),
    ("<utf8@x>", "Renée <renée@brightforge.example>", None),
]


def test_odd_addresses_never_stop_the_reactions(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    for n, (msg_id, sender, _) in enumerate(ODD_SENDERS):
        world.deliver(rejection_mail(msg_id, from_=sender, company=f"Company{n}"))
    world.deliver(rejection_mail("<after@x>", company="Lastco"))  # after the poison ones
    capsys.readouterr()
    assert world.sync() == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err

    drafts = {str(d["X-Onward-Feedback-For"]): d for d in world.drafts()}
    assert len(drafts) == len(ODD_SENDERS) + 1
    for msg_id, _sender, to in ODD_SENDERS:
        draft = drafts[msg_id]
        assert str(draft["From"]) == ALICE
        (entry,) = world.query(LedgerEntry, message_id=msg_id)
        (request,) = world.query(FeedbackRequest, ledger_id=entry.id)
        if to is None:
            assert draft["To"] is None
            assert request.state == "needs_recipient"
            assert "non-ASCII" in request.note
        else:
            raw_to = draft.as_string().split("\nTo: ", 1)[1].split("\n", 1)[0]
            assert raw_to.rstrip("\r").endswith(to), raw_to
            assert request.state == "drafted"
    assert drafts["<after@x>"]["To"] is not None
    assert not world.query(DomainEvent, handled_at=None)

    assert main(["drafts", "--no-check"]) == 0
    listing = capsys.readouterr().out
    assert "needs_recipient" in listing
    assert "non-ASCII" in listing


def test_from_is_the_address_the_rejection_was_delivered_to(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONWARD_USER_ADDRESSES", "alice.jobs@example.net")
    world.deliver(
        rejection_mail(
            "<to-alias@x>",
            to="Alice <alice.jobs@example.net>",
            extra="Delivered-To: alice.jobs@example.net\r\n",
        )
    )
    world.deliver(rejection_mail("<to-stranger@x>", company="Other", to="list@lists.example"))
    assert world.sync() == 0
    drafts = {str(d["X-Onward-Feedback-For"]): d for d in world.drafts()}
    assert str(drafts["<to-alias@x>"]["From"]) == "alice.jobs@example.net"
    assert str(drafts["<to-stranger@x>"]["From"]) == ALICE


@pytest.mark.parametrize("kind", ["maildir", "imap"])
def test_a_failing_reaction_is_recorded_shown_and_not_repeated(
    kind: str,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    dovecot = request.getfixturevalue("dovecot") if kind == "imap" else None
    w = connect_world(kind, tmp_path, database_url, monkeypatch, dovecot)
    # No address to write the draft from (connect now refuses that for an IMAP login that
    # is not an address; mailboxes connected before, and Maildirs, can still lack one).
    with Store.open(w.settings.database_url) as store, store.unit_of_work() as session:
        for row in session.scalars(select(Mailbox)):
            row.address = None
    w.deliver(rejection_mail("<no-from@x>", to="someone@elsewhere.example"))
    capsys.readouterr()
    assert w.sync() == 1  # something needs attention
    out = capsys.readouterr()
    assert "need attention" in out.err
    assert "onward drafts" in out.err
    (event,) = w.query(DomainEvent)
    assert event.attempts == 1
    assert event.failed_at is not None
    assert event.handled_at is None
    assert "--address" in event.last_error
    # The cooldown, the other reaction, was not held back by the failed draft.
    assert w.query(Cooldown)

    assert main(["drafts", "--no-check"]) == 0
    listing = capsys.readouterr().out
    assert "needs_attention" in listing
    assert "onward connect --address" in listing
    assert "onward drafts --retry" in listing
    assert main(["status"]) == 0
    assert "need attention" in capsys.readouterr().out

    assert w.sync() == 0  # given up: not retried on every pass
    (event,) = w.query(DomainEvent)
    assert event.attempts == 1

    connect_args = ["connect", "--address", ALICE]
    if kind == "maildir":
        assert w.maildir is not None
        connect_args += ["--maildir", str(w.maildir)]
    else:
        assert dovecot is not None
        connect_args += [
            "--host", "127.0.0.1", "--port", str(dovecot.port), "--user", "alice",
            "--security", "plain", "--password-env", "ONWARD_TEST_IMAP_PW",
        ]  # fmt: skip
    assert main(connect_args) == 0
    assert main(["drafts", "--retry"]) == 0
    assert w.sync() == 0
    (draft,) = w.drafts()
    assert str(draft["From"]) == ALICE
    (event,) = w.query(DomainEvent)
    assert event.handled_at is not None


def test_transient_failures_are_retried_later_then_given_up(store: Store) -> None:
    name = add_mailbox(store, kind="maildir", path="/nowhere")
    with store.unit_of_work() as session:
        mailbox_id = session.scalars(select(Mailbox.id).where(Mailbox.name == name)).one()
        entry = LedgerEntry(mailbox_id=mailbox_id, key="<k@x>", status="recorded")
        session.add(entry)
        session.flush()
        event = DomainEvent(kind=REJECTION_DETECTED, mailbox_id=mailbox_id, ledger_id=entry.id)
        session.add(event)
        session.flush()
        event_id = event.id
    now = utcnow()
    outcomes = []
    for attempt in range(GIVE_UP_AFTER):
        with store.unit_of_work() as session:
            outcomes.append(
                record_failure(session, event_id, "server down", transient=True, now=now)
            )
            due = pending_rejections(session, mailbox_id)
            row = session.get_one(DomainEvent, event_id)
            if outcomes[-1] == "retry":
                assert row.retry_at is not None
                assert row.retry_at > now
                assert due == []  # not on the very next pass
                row.retry_at = utcnow() - timedelta(seconds=1)  # its time has come
                session.flush()
                assert pending_rejections(session, mailbox_id) == [event_id]
        now += timedelta(hours=attempt + 1)
    assert outcomes == ["retry"] * (GIVE_UP_AFTER - 1) + ["failed"]
    with store.unit_of_work() as session:
        assert pending_rejections(session, mailbox_id) == []
        assert session.get_one(DomainEvent, event_id).attempts == GIVE_UP_AFTER
