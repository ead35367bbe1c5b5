"""Two workers on one mailbox: a write the other worker already did is the expected,
quiet outcome (INFO, counted), never an IntegrityError or a logged traceback."""

from __future__ import annotations

import logging

import pytest

from onward.tasks import cooldown as cooldowns
from onward.tasks.feedback import request as requests
from onward.tasks.feedback.request import DraftPlan
from onward.tasks.mail.accounts import Account
from onward.tasks.mail.message import Address, Message
from onward.tasks.races import RACES
from onward.tasks.rejections import Rejection
from onward.tasks.store import Cooldown, FeedbackRequest, LedgerEntry, Mailbox, Store

pytestmark = pytest.mark.integration


def _rejection(store: Store) -> Rejection:
    with store.unit_of_work() as session:
        mailbox = Mailbox(name="m", kind="maildir", path="/nowhere", folder="INBOX")
        session.add(mailbox)
        session.flush()
        entry = LedgerEntry(mailbox_id=mailbox.id, key="<r@x>", status="recorded")
        session.add(entry)
        session.flush()
        ids = mailbox.id, entry.id
    return Rejection(
        event_id=1,
        ledger_id=ids[1],
        mailbox_id=ids[0],
        account=Account(name="m", kind="maildir", folder="INBOX", address="a@b.example"),
        message=Message(key="<r@x>", message_id="<r@x>", subject="s", from_=None),
        payload={"company": "Acme"},
        earlier=(),
    )


def test_a_second_worker_finds_the_cooldown_and_request_already_there(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rejection = _rejection(store)
    plan = DraftPlan(rejection, b"raw", Address("", "x@y.example"), "body")
    with store.unit_of_work() as session:  # the first worker
        first = cooldowns.record_cooldown(session, rejection, 3).id
        requests.record_request(session, plan, "drafted", None)
    # The second worker looked before the first one committed: it saw nothing.
    monkeypatch.setattr(cooldowns, "existing_cooldown", lambda *_: None)
    monkeypatch.setattr(requests, "existing_request", lambda *_: None)
    before = RACES.copy()
    caplog.set_level(logging.INFO)
    with store.unit_of_work() as session:
        assert cooldowns.record_cooldown(session, rejection, 3).id == first
        row = requests.record_request(session, plan, "drafted", None)
        assert row.state == "drafted"
    assert RACES["cooldowns"] == before["cooldowns"] + 1
    assert RACES["feedback_requests"] == before["feedback_requests"] + 1
    races = [r for r in caplog.records if "another worker" in r.getMessage()]
    assert len(races) == 2
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in races)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with store.unit_of_work() as session:
        assert len(session.query(Cooldown).all()) == 1
        assert len(session.query(FeedbackRequest).all()) == 1
