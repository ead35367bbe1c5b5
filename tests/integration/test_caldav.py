"""CalDAV delivery against a real Radicale: onward's own collection, updates in place, the
person's own events untouched, a server that goes away, a crash after a PUT, a wrong
password."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from icalendar import Calendar
from sqlalchemy import select

from onward.config.settings import Settings
from onward.deployments.cli import main
from onward.tasks.calendar.caldav_sync import CalDavLogin, connect_caldav, push_all
from onward.tasks.calendar.publish import publish
from onward.tasks.store import CalDavAccount, CalDavResource, Cooldown, Store
from tests.integration.test_calendar import add_cooldown
from tests.support.radicale import PASSWORD, USER, RadicaleServer

pytestmark = pytest.mark.integration


def login(server: RadicaleServer, password: str = PASSWORD) -> CalDavLogin:
    return CalDavLogin(server.url, USER, password, "onward")


def pushed(server: RadicaleServer, store: Store, settings: Settings) -> str:
    """A cooldown, CalDAV connected, the calendar published and pushed once; its UID."""
    uid = add_cooldown(store)
    connect_caldav(settings, login(server))
    publish(settings)
    push_all(settings)
    return uid


def events(server: RadicaleServer) -> dict[str, list[tuple[str, int, str]]]:
    """(UID, SEQUENCE, STATUS) of each resource, by collection/file."""
    out: dict[str, list[tuple[str, int, str]]] = {}
    for name, data in server.resources().items():
        cal = Calendar.from_ical(data)
        out[name] = [
            (str(c["UID"]), int(c.get("SEQUENCE", 0)), str(c.get("STATUS", "")))
            for c in cal.walk()
            if c.name in ("VEVENT", "VTODO")
        ]
    return out


def onward_collection(server: RadicaleServer) -> str:
    names = {name.split("/")[0] for name in server.resources()}
    assert len(names) == 1, names
    return names.pop()


def test_cooldown_block_lands_in_onwards_own_collection(
    radicale: RadicaleServer, store: Store, settings: Settings
) -> None:
    uid = add_cooldown(store)
    connect_caldav(settings, login(radicale))
    publish(settings)
    [report] = push_all(settings)
    assert (report.created, report.error) == (1, None)
    found = events(radicale)
    assert list(found.values()) == [[(uid, 0, "CONFIRMED")]]
    # Pushing again sends nothing.
    [again] = push_all(settings)
    assert (again.created, again.updated) == (0, 0)


def test_moving_an_item_updates_the_same_resource(
    radicale: RadicaleServer, store: Store, settings: Settings
) -> None:
    uid = pushed(radicale, store, settings)
    before = dict(radicale.resources())
    with store.unit_of_work() as session:
        session.scalars(select(Cooldown)).one().ends_at += timedelta(days=2)
    publish(settings)
    [report] = push_all(settings)
    assert report.updated == 1
    after = radicale.resources()
    assert list(after) == list(before)  # same href
    assert list(events(radicale).values()) == [[(uid, 1, "CONFIRMED")]]
    assert next(iter(after.values())) != next(iter(before.values()))


def test_an_event_the_person_made_is_left_alone(
    radicale: RadicaleServer, store: Store, settings: Settings
) -> None:
    import caldav

    add_cooldown(store)
    connect_caldav(settings, login(radicale))
    with caldav.DAVClient(url=radicale.url, username=USER, password=PASSWORD) as client:
        [calendar] = [c for c in client.principal().calendars() if c.get_display_name() == "onward"]
        mine = calendar.add_event(
            dtstart=datetime(2026, 4, 1, 10, tzinfo=UTC),
            dtend=datetime(2026, 4, 1, 11, tzinfo=UTC),
            summary="Dentist",
            uid="dentist-1@example.org",
        )
        mine_href = str(mine.url)
    personal = {n: d for n, d in radicale.resources().items() if b"Dentist" in d}
    publish(settings)
    push_all(settings)
    with store.unit_of_work() as session:
        session.scalars(select(Cooldown)).one().ends_at += timedelta(days=1)
    publish(settings)
    push_all(settings)
    now = radicale.resources()
    assert {n: now[n] for n in personal} == personal  # byte for byte
    assert len(now) == 2
    assert unquote(mine_href).endswith(next(iter(personal)).split("/")[-1])


def test_server_down_during_a_change_then_back_arrives_once(
    radicale: RadicaleServer, store: Store, settings: Settings
) -> None:
    uid = pushed(radicale, store, settings)
    radicale.stop()
    with store.unit_of_work() as session:
        session.scalars(select(Cooldown)).one().ends_at += timedelta(days=1)
    publish(settings)
    [down] = push_all(settings)
    assert down.error is not None
    assert "cannot be reached" in down.error
    with store.unit_of_work() as session:
        account = session.scalars(select(CalDavAccount)).one()
        assert account.last_error is not None
        assert "onward retries" in account.last_error
    radicale.start()
    [back] = push_all(settings)
    assert (back.updated, back.created, back.error) == (1, 0, None)
    assert list(events(radicale).values()) == [[(uid, 1, "CONFIRMED")]]
    [after] = push_all(settings)
    assert (after.updated, after.created) == (0, 0)
    with store.unit_of_work() as session:
        assert session.scalars(select(CalDavAccount)).one().last_error is None


def test_crash_between_put_and_database_write_duplicates_nothing(
    radicale: RadicaleServer, store: Store, settings: Settings
) -> None:
    uid = pushed(radicale, store, settings)
    with store.unit_of_work() as session:  # as if the process died right after the PUT
        for resource in session.scalars(select(CalDavResource)):
            session.delete(resource)
    [report] = push_all(settings)
    assert (report.adopted, report.created) == (1, 0)
    assert list(events(radicale).values()) == [[(uid, 0, "CONFIRMED")]]
    # An update whose database write was lost: the server has the new SEQUENCE already.
    with store.unit_of_work() as session:
        session.scalars(select(Cooldown)).one().ends_at += timedelta(days=1)
    publish(settings)
    push_all(settings)
    with store.unit_of_work() as session:
        resource = session.scalars(select(CalDavResource)).one()
        resource.pushed_sequence, resource.etag = 0, '"stale"'
    [report] = push_all(settings)
    assert (report.adopted, report.created, report.updated) == (1, 0, 0)
    assert list(events(radicale).values()) == [[(uid, 1, "CONFIRMED")]]


def test_a_cancelled_item_is_cancelled_on_the_server(
    radicale: RadicaleServer, store: Store, settings: Settings
) -> None:
    uid = pushed(radicale, store, settings)
    with store.unit_of_work() as session:
        session.delete(session.scalars(select(Cooldown)).one())
    publish(settings)
    push_all(settings)
    assert list(events(radicale).values()) == [[(uid, 1, "CANCELLED")]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_connect_from_the_command_line(
    radicale: RadicaleServer,
    settings: Settings,
    store: Store,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONWARD_HOME", str(settings.home))
    monkeypatch.setenv("ONWARD_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CAL_PW", "wrong-password")
    args = ["calendar", "connect", "--url", radicale.url, "--user", USER, "--password-env"]
    assert main([*args, "CAL_PW"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "refused the password for sam" in err
    assert "onward calendar connect" in err
    assert "wrong-password" not in err
    add_cooldown(store, start=datetime.now(UTC))
    monkeypatch.setenv("CAL_PW", PASSWORD)
    assert main([*args, "CAL_PW"]) == 0
    out = capsys.readouterr().out
    assert "first push: 1 item(s) created" in out
    assert PASSWORD not in out
    assert main(["calendar", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["caldav"][0]["error"] is None
    assert view["items"][0]["summary"] == "Cooldown after Brightforge — Data Engineer"
    secret = next(Path(settings.home, "secrets").iterdir())
    assert secret.read_text() == PASSWORD
    assert secret.stat().st_mode & 0o077 == 0
    assert onward_collection(radicale)


@pytest.mark.usefixtures("prefect_harness")
def test_a_pass_that_records_a_rejection_puts_its_cooldown_in_caldav(
    radicale: RadicaleServer,
    store: Store,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from onward.flows.common import in_process
    from onward.flows.watch_inbox import watch_inbox
    from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
    from tests.support.db import add_mailbox
    from tests.support.mailgen import make_mail

    monkeypatch.setenv("ONWARD_HOME", str(settings.home))
    monkeypatch.setenv("ONWARD_DATABASE_URL", settings.database_url)
    maildir = create_maildir(tmp_path / "Maildir")
    add_mailbox(
        store, name="box", kind="maildir", path=str(maildir), folder="INBOX",
        drafts_folder="Drafts", address="sam@example.org",
    )  # fmt: skip
    connect_caldav(settings, login(radicale))
    with in_process():
        watch_inbox(mailbox="box")
        body = (
            "Dear Sam,\n\nThank you for applying for the Platform Engineer position at Firmly. "
            "After careful consideration we have decided to move forward with other "
            "candidates.\n\nKind regards,\nMorgan Lee\n"
        )
        deliver_to_maildir(maildir, make_mail(1, subject="Your application", body=body))
        watch_inbox(mailbox="box")
    with store.unit_of_work() as session:
        uid = session.scalars(select(Cooldown.calendar_uid)).one()
    assert list(events(radicale).values()) == [[(uid, 0, "CONFIRMED")]]
    summary = next(iter(radicale.resources().values()))
    assert b"SUMMARY:Cooldown after Firmly" in summary
