"""The review queue: a borderline rejection waits; confirming it gives exactly one draft and
one cooldown, dismissing it gives none, also after a restart (a fresh process and store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from onward.config.settings import Settings
from onward.deployments.cli import main
from onward.flows.common import in_process
from onward.flows.watch_inbox import watch_inbox
from onward.tasks.classify.scoring import classify_text
from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
from onward.tasks.store import Cooldown, DomainEvent, FeedbackRequest, Store
from tests.support.db import add_mailbox
from tests.support.mailgen import make_mail

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

NOT_A_FIT = (
    "Hi Sam,\n\nThanks for your time last week. We will probably look at other people for "
    "this role.\n\nBest,\nDana Cole\n"
)
CERTAIN = (
    "Hi Sam,\n\nUnfortunately we will not be moving forward with your application for the "
    "Data Engineer role.\n\nBest,\nLee Park\n"
)


@pytest.fixture
def onward_home(
    settings: Settings, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    maildir = create_maildir(tmp_path / "Maildir")
    add_mailbox(
        store,
        name="box",
        kind="maildir",
        path=str(maildir),
        folder="INBOX",
        drafts_folder="Drafts",
        address="sam@example.org",
    )
    monkeypatch.setenv("ONWARD_HOME", str(settings.home))
    monkeypatch.setenv("ONWARD_DATABASE_URL", settings.database_url)
    # The band sits between the two mails' confidences, whatever the shipped model says of
    # them: this tests the queue, not where the model puts the line.
    low, high = review_band()
    monkeypatch.setenv("ONWARD_CLASSIFIER_REVIEW_LOW", str(low))
    monkeypatch.setenv("ONWARD_CLASSIFIER_REVIEW_HIGH", str(high))
    with in_process():
        watch_inbox(mailbox="box")  # the first pass starts the watch
    return maildir


def review_band() -> tuple[float, float]:
    def confidence(body: str) -> float:
        verdict = classify_text("Your application", None, body, review_band=(0.01, 0.999))
        assert verdict.is_rejection
        return verdict.confidence

    border, certain = confidence(NOT_A_FIT), confidence(CERTAIN)
    assert border < certain - 0.02, (border, certain)
    return round(max(border - 0.1, 0.01), 3), round((border + certain) / 2, 3)


def deliver(maildir: Path, n: int, body: str, sender: str) -> None:
    deliver_to_maildir(maildir, make_mail(n, subject="Your application", body=body, sender=sender))


def counts(store: Store) -> tuple[int, int, int]:
    drafts = store.unit_of_work()
    with drafts as session:
        return (
            session.scalar(select(func.count()).select_from(FeedbackRequest)) or 0,
            session.scalar(select(func.count()).select_from(Cooldown)) or 0,
            session.scalar(select(func.count()).select_from(DomainEvent)) or 0,
        )


def draft_files(maildir: Path) -> int:
    return len(list((maildir / ".Drafts" / "cur").iterdir()))


def review_list(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["review", "--json"]) == 0
    items: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return items


def test_borderline_waits_then_confirm_reacts_once(
    onward_home: Path, store: Store, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    maildir = onward_home
    deliver(maildir, 1, NOT_A_FIT, "Dana Cole <dana@acme.example>")
    deliver(maildir, 2, CERTAIN, "Lee Park <lee@brightforge.example>")
    with in_process():
        watch_inbox(mailbox="box")
    # The certain one reacted at once; the borderline one waits.
    assert counts(store) == (1, 1, 2)
    [waiting] = review_list(capsys)
    assert waiting["state"] == "waiting"
    assert "other people" in " ".join(waiting["evidence"])  # type: ignore[arg-type]

    assert main(["review", "confirm", str(waiting["id"]), "--note", "they said no"]) == 0
    assert "confirmed" in capsys.readouterr().out
    assert counts(store) == (2, 2, 2)
    assert draft_files(maildir) == 2
    assert review_list(capsys) == []
    with in_process():  # the next passes change nothing
        watch_inbox(mailbox="box")
        watch_inbox(mailbox="box")
    assert counts(store) == (2, 2, 2)
    assert draft_files(maildir) == 2
    assert main(["review", "confirm", str(waiting["id"])]) == 0  # twice: nothing new
    assert "already confirmed" in capsys.readouterr().out
    assert counts(store) == (2, 2, 2)
    decisions = (settings.home / "review-decisions.jsonl").read_text().splitlines()
    assert [json.loads(line)["label"] for line in decisions] == ["rejection"]
    assert (settings.home / "review-decisions.jsonl").stat().st_mode & 0o077 == 0


def test_dismissed_never_reacts_also_after_a_restart(
    onward_home: Path, store: Store, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    maildir = onward_home
    deliver(maildir, 3, NOT_A_FIT, "Dana Cole <dana@acme.example>")
    with in_process():
        watch_inbox(mailbox="box")
    [waiting] = review_list(capsys)
    assert main(["review", "dismiss", str(waiting["id"])]) == 0
    assert "nothing will happen" in capsys.readouterr().out
    assert counts(store) == (0, 0, 1)
    # A restart: a new store on the same database, and more passes.
    with Store.open(settings.database_url) as again:
        with in_process():
            watch_inbox(mailbox="box")
        assert counts(again) == (0, 0, 1)
    assert not (maildir / ".Drafts" / "cur").exists() or draft_files(maildir) == 0
    assert review_list(capsys) == []
    assert main(["review", "confirm", str(waiting["id"])]) == 2  # a decision stands
    assert "already dismissed" in capsys.readouterr().err
    assert counts(store) == (0, 0, 1)
