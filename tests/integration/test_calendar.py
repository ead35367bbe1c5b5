"""The calendar over the app database (SQLite and PostgreSQL): stable UIDs, SEQUENCE only on
visible change, CANCELLED instead of vanishing, the cooldown blocks' old UIDs, the file and
the feed with ETag and 304."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select

from onward.config.settings import Settings
from onward.tasks.calendar.entries import published, reconcile
from onward.tasks.calendar.feed import FEED_PATH, CalendarFeed
from onward.tasks.calendar.model import CalendarItem
from onward.tasks.calendar.publish import publish, refresh, upcoming
from onward.tasks.store import CalendarEntry, Cooldown, LedgerEntry, Mailbox, Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def goal(due: date, summary: str = "Finish the SQL course, module 3") -> CalendarItem:
    return CalendarItem(key="goal:sql-3", kind="goal", summary=summary, due=due, todo=True)


def entry(store: Store, key: str) -> CalendarEntry:
    with store.unit_of_work() as session:
        return session.scalars(select(CalendarEntry).where(CalendarEntry.key == key)).one()


def test_sequence_rises_only_on_visible_change(store: Store) -> None:
    with store.unit_of_work() as session:
        assert reconcile(session, [goal(date(2026, 3, 6))], now=T0).added == 1
    first = entry(store, "goal:sql-3")
    for hour in range(1, 4):  # regenerated again and again, nothing changed
        with store.unit_of_work() as session:
            report = reconcile(session, [goal(date(2026, 3, 6))], now=T0 + timedelta(hours=hour))
            assert (report.added, report.changed, report.cancelled) == (0, 0, 0)
    again = entry(store, "goal:sql-3")
    assert (again.uid, again.sequence, again.changed_at) == (first.uid, 0, first.changed_at)

    with store.unit_of_work() as session:  # the date moves
        assert reconcile(session, [goal(date(2026, 3, 9))], now=T0 + timedelta(days=1)).changed
    moved = entry(store, "goal:sql-3")
    assert moved.uid == first.uid
    assert moved.sequence == 1
    assert moved.changed_at == T0 + timedelta(days=1)


def test_a_removed_item_is_cancelled_not_gone(store: Store) -> None:
    other = CalendarItem(key="goal:portfolio", kind="goal", summary="Portfolio piece", todo=True)
    with store.unit_of_work() as session:
        reconcile(session, [goal(date(2026, 3, 6)), other], now=T0)
    with store.unit_of_work() as session:
        assert reconcile(session, [other], now=T0 + timedelta(hours=1)).cancelled == 1
        rows = {p.item.key: p for p in published(session)}
    assert rows["goal:sql-3"].item.status == "CANCELLED"
    assert rows["goal:sql-3"].sequence == 1
    assert rows["goal:portfolio"].item.status == "CONFIRMED"
    with store.unit_of_work() as session:  # cancelled stays cancelled, once
        assert reconcile(session, [other], now=T0 + timedelta(hours=2)).cancelled == 0
    with store.unit_of_work() as session:  # and comes back with a higher SEQUENCE
        assert reconcile(session, [goal(date(2026, 3, 6)), other], now=T0).changed == 1
    assert entry(store, "goal:sql-3").sequence == 2


def add_cooldown(
    store: Store,
    *,
    ended: bool = False,
    start: datetime = datetime(2026, 3, 27, 23, 30, tzinfo=UTC),
) -> str:
    with store.unit_of_work() as session:
        mailbox = Mailbox(name="m", kind="maildir", path="/x", folder="INBOX")
        session.add(mailbox)
        session.flush()
        ledger = LedgerEntry(
            mailbox_id=mailbox.id,
            key="<r1@brightforge.example>",
            status="recorded",
            subject="Your application",
            from_addr="jobs@brightforge.example",
            label="rejection",
            verdict={"company": "Brightforge", "role": "Data Engineer"},
        )
        session.add(ledger)
        session.flush()
        uid = "cooldown-0123456789abcdef@onward"
        session.add(
            Cooldown(
                mailbox_id=mailbox.id,
                ledger_id=ledger.id,
                days=3,
                starts_at=start,
                ends_at=start + timedelta(days=3),
                calendar_uid=uid,
                ended_at=start + timedelta(days=3, minutes=1) if ended else None,
            )
        )
    return uid


def berlin(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"user": settings.user.model_copy(update={"timezone": "Europe/Berlin"})}
    )


def test_cooldown_keeps_its_old_uid_and_names_the_application(
    store: Store, settings: Settings
) -> None:
    uid = add_cooldown(store)
    path, report = publish(berlin(settings))
    assert report.added == 1
    event = next(iter(Calendar.from_ical(path.read_bytes()).walk("VEVENT")))
    assert str(event["UID"]) == uid  # calendars that imported the old file see no double
    assert str(event["SUMMARY"]) == "Cooldown after Brightforge — Data Engineer"
    # 23:30 UTC on the 27th is the 28th in Berlin; back on the 31st (local), exclusive end.
    assert event["DTSTART"].dt == date(2026, 3, 28)
    assert event["DTEND"].dt == date(2026, 3, 31)
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    again, report = publish(berlin(settings))
    assert (report.added, report.changed) == (0, 0)
    assert again.read_bytes() == path.read_bytes()


def test_the_rhythm_starts_when_the_first_cooldown_ends(store: Store, settings: Settings) -> None:
    add_cooldown(store, ended=False)
    with store.unit_of_work() as session:
        refresh(session, settings)
        assert {p.item.kind for p in published(session)} == {"cooldown"}
    with store.unit_of_work() as session:
        session.scalars(select(Cooldown)).one().ended_at = datetime.now(UTC)
    items = upcoming(berlin(settings), today=date(2026, 3, 29))
    kinds = [i.kind for i in items]
    assert kinds.count("evaluation") == 1
    assert kinds.count("review") == 1
    evaluation = next(i for i in items if i.kind == "evaluation")
    assert evaluation.when == "every Sunday at 18:00"
    assert evaluation.starts is not None
    assert datetime.fromisoformat(evaluation.starts).date() == date(2026, 4, 5)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_feed_serves_the_calendar_with_etag_and_304(store: Store, settings: Settings) -> None:
    add_cooldown(store)
    path, _ = publish(settings)
    with CalendarFeed(path, 0) as feed:
        url = f"http://127.0.0.1:{feed.port}{FEED_PATH}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
            etag = response.headers["ETag"]
            assert response.headers["Content-Type"].startswith("text/calendar")
            assert response.headers["Last-Modified"]
        assert body == path.read_bytes()
        request = urllib.request.Request(url, headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as not_modified:
            urllib.request.urlopen(request, timeout=5)
        assert not_modified.value.code == 304
        with store.unit_of_work() as session:  # a change: a new ETag, a full answer
            session.scalars(select(Cooldown)).one().ends_at += timedelta(days=1)
        publish(settings)
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            assert response.headers["ETag"] != etag
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{feed.port}/other", timeout=5)
        assert missing.value.code == 404
