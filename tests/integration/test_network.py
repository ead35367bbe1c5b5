"""Contacts in the database, on SQLite and PostgreSQL: imports and merges, people from the
mailbox, their mail as interactions, tasks done and skipped, the calendar's to-dos."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from onward.config.settings import Settings
from onward.tasks.errors import ConfigError
from onward.tasks.network.calendar import network_calendar_items
from onward.tasks.network.contacts import refresh_contacts
from onward.tasks.network.service import (
    complete_task,
    import_contacts,
    list_contacts,
    skip_task,
)
from onward.tasks.store import Contact, Interaction, LedgerEntry, Mailbox, NetworkTask, Store
from tests.support.paths import SAMPLES

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _contacts(store: Store) -> dict[str, Contact]:
    with store.unit_of_work() as session:
        return {c.name: c for c in session.scalars(select(Contact))}


def test_import_each_format_and_merge_on_reimport(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    sample = SAMPLES / "connections.csv"
    first = import_contacts(settings, sample, now=T0)
    assert (first.format, first.merged, first.skipped) == ("linkedin", 0, [])
    assert first.added == len(_contacts(store)) >= 10
    again = import_contacts(settings, sample, now=T0)
    assert (again.added, again.merged) == (0, first.added)
    assert len(_contacts(store)) == first.added

    # A vCard of someone already imported (matched by e-mail) and someone new.
    vcf = tmp_path / "phone.vcf"
    vcf.write_text(
        "BEGIN:VCARD\nVERSION:3.0\nFN:Tomás Ferreira\nEMAIL:Tomas.Ferreira@mailbox.example\n"
        "TITLE:Staff Data Engineer\nEND:VCARD\n"
        "BEGIN:VCARD\nVERSION:3.0\nFN:Wen Zhao\nEMAIL:wen@zhao.example\nEND:VCARD\n"
    )
    report = import_contacts(settings, vcf, now=T0)
    assert (report.format, report.added, report.merged) == ("vcard", 1, 1)
    # A plain CSV: by profile URL, by name and company, and one bad row.
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "Name,Email,Company,Title,Profile\n"
        "Meera N.,meera@brightforge.example,Brightforge,Director,"
        "https://linkedin.com/in/meera-natarajan-4b1a2c/\n"
        "hannah okafor,,Northwind Analytics,,\n"
        "Nobody,nobody@,,,\n"
        "Wen Zhao,,,,\n"
    )
    report = import_contacts(settings, csv_file, now=T0)
    assert (report.format, report.added, report.merged) == ("csv", 0, 3)
    assert [(p.line, p.reason) for p in report.skipped] == [
        (4, "e-mail 'nobody@' is not an address")
    ]
    contacts = _contacts(store)
    assert len(contacts) == first.added + 1
    tomas = contacts["Tomás Ferreira"]
    assert (tomas.position, tomas.company) == ("Staff Data Engineer", "Lumen Labs")
    meera = contacts["Meera Natarajan"]
    assert (meera.email, meera.position) == ("meera@brightforge.example", "Director")
    # Imports never touch the stage.
    assert {c.stage for c in contacts.values()} == {"cold"}


def test_import_of_an_unreadable_file_is_one_clear_error(
    settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.csv"
    bad.write_text("just,some,words\n1,2,3\n")
    with pytest.raises(ConfigError, match="no name or e-mail column"):
        import_contacts(settings, bad)


def _mailbox(store: Store, address: str = "me@home.example") -> int:
    with store.unit_of_work() as session:
        box = Mailbox(name="test", kind="maildir", path="/nowhere", address=address)
        session.add(box)
        session.flush()
        return box.id


def _mail(
    store: Store,
    mailbox_id: int,
    key: str,
    from_addr: str,
    *,
    name: str | None = None,
    label: str = "rejection",
    kind: str = "person",
    company: str | None = "Brightforge",
    sent_at: datetime = T0,
    in_reply_to: str | None = None,
) -> int:
    verdict: dict[str, Any] = {
        "label": label,
        "company": company,
        "contact": {"name": name, "addr": from_addr, "kind": kind, "ats": None},
    }
    with store.unit_of_work() as session:
        row = LedgerEntry(
            mailbox_id=mailbox_id,
            key=key,
            message_id=key,
            status="recorded",
            from_addr=from_addr,
            from_name=name,
            label=label,
            verdict=verdict,
            sent_at=sent_at,
            in_reply_to=in_reply_to,
        )
        session.add(row)
        session.flush()
        return row.id


def test_people_from_job_mail_never_robots(settings: Settings, store: Store) -> None:
    box = _mailbox(store)
    _mail(store, box, "<1@x>", "Priya.Raman@brightforge.example", name="Priya Raman")
    _mail(store, box, "<2@x>", "no-reply@brightforge.example", name="Brightforge Recruiting")
    _mail(store, box, "<3@x>", "jobs@greenhouse-mail.example", kind="ats")
    _mail(store, box, "<4@x>", "hiring@lumen.example", kind="no-reply")
    _mail(store, box, "<5@x>", "editor@news.example", label="other", kind="person")
    _mail(store, box, "<6@x>", "me@home.example", label="rejection")
    _mail(
        store,
        box,
        "<7@x>",
        "renee@corvid.example",
        name="Renée Dubois",
        label="feedback_reply",
        company="Corvid",
    )
    with store.unit_of_work() as session:
        report = refresh_contacts(session, settings, T0 + timedelta(days=1))
    assert report.gathered == 2
    contacts = _contacts(store)
    assert set(contacts) == {"Priya Raman", "Renée Dubois"}
    assert contacts["Priya Raman"].email == "priya.raman@brightforge.example"
    assert contacts["Priya Raman"].source == "mailbox"
    # Their mail is an interaction; the answer to a feedback request makes Renée warm.
    assert contacts["Priya Raman"].stage == "cold"
    assert contacts["Renée Dubois"].stage == "warm"
    # Run again: nothing new, nothing counted twice.
    with store.unit_of_work() as session:
        again = refresh_contacts(session, settings, T0 + timedelta(days=2))
        assert (again.gathered, again.interactions) == (0, 0)
        assert session.scalar(select(func.count()).select_from(Interaction)) == 2
    assert _contacts(store)["Priya Raman"].touches == 1


def _task(store: Store, contact_id: int, week: date, kind: str = "comment") -> int:
    with store.unit_of_work() as session:
        task = NetworkTask(
            week=week,
            contact_id=contact_id,
            kind=kind,
            stage="cold",
            due=week,
            message="Hi\n",
            state="open",
            replied=False,
        )
        session.add(task)
        session.flush()
        return task.id


def test_a_reply_in_the_mailbox_advances_the_contact(settings: Settings, store: Store) -> None:
    import_contacts(settings, SAMPLES / "connections.csv", now=T0)
    aiko = _contacts(store)["Aiko Tanaka"]
    box = _mailbox(store)
    task_id = _task(store, aiko.id, T0.date())
    outcome = complete_task(settings, task_id, now=T0 + timedelta(hours=2))
    assert (outcome.stage_before, outcome.stage_after) == ("cold", "cold")
    assert complete_task(settings, task_id, now=T0 + timedelta(hours=3)).note == (
        "already recorded as done"
    )
    assert _contacts(store)["Aiko Tanaka"].touches == 1
    # She answers two days later, and once more: one stage up, not two.
    _mail(
        store,
        box,
        "<a1@x>",
        "aiko.tanaka@fastpost.example",
        label="other",
        sent_at=T0 + timedelta(days=2),
    )
    _mail(
        store,
        box,
        "<a2@x>",
        "Aiko.Tanaka@fastpost.example",
        label="other",
        sent_at=T0 + timedelta(days=2, hours=1),
    )
    result = list_contacts(settings, now=T0 + timedelta(days=3))
    (view,) = [c for c in result.contacts if c.name == "Aiko Tanaka"]
    assert view.stage == "warming"
    with store.unit_of_work() as session:
        kinds = session.scalars(
            select(Interaction.kind)
            .where(Interaction.contact_id == aiko.id)
            .order_by(Interaction.id)
        ).all()
    assert kinds == ["engagement", "reply", "mail"]
    # The person's own reply in that thread is an engagement of theirs.
    _mail(
        store,
        box,
        "<me1@x>",
        "me@home.example",
        label="other",
        sent_at=T0 + timedelta(days=4),
        in_reply_to="<a2@x>",
    )
    list_contacts(settings, now=T0 + timedelta(days=5))
    assert _contacts(store)["Aiko Tanaka"].touches == 4  # 1 + reply (to 2) + mail + yours


def test_done_replied_skip_and_bad_ids(settings: Settings, store: Store) -> None:
    import_contacts(settings, SAMPLES / "connections.csv", now=T0)
    contacts = _contacts(store)
    done = _task(store, contacts["Grace Liu"].id, T0.date())
    skipped = _task(store, contacts["Ravi Shah"].id, T0.date())
    outcome = complete_task(settings, done, replied=True, now=T0)
    assert (outcome.stage_before, outcome.stage_after) == ("cold", "warming")
    assert skip_task(settings, skipped).task.state == "skipped"
    with pytest.raises(ConfigError, match="already done"):
        skip_task(settings, done)
    with pytest.raises(ConfigError, match="no networking task 999"):
        complete_task(settings, 999)
    assert _contacts(store)["Ravi Shah"].touches == 0

    with store.unit_of_work() as session:
        items = {i.key: i for i in network_calendar_items(session, settings)}
    assert set(items) == {f"network-task:{done}"}
    item = items[f"network-task:{done}"]
    assert (item.todo, item.kind, item.status, item.due) == (
        True,
        "network_task",
        "COMPLETED",
        T0.date(),
    )
    assert item.completed_at == T0
    assert "Grace Liu" in item.summary
    assert "onward tasks done" in item.description
