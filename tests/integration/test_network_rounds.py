"""Weekly networking rounds over simulated weeks (explicit dates, no sleeping), on SQLite and
PostgreSQL: the cap, the spacing, no ask before warm, warming up, cooling down, cooldowns,
idempotent re-runs; and four weeks of `onward tasks` on the sample LinkedIn export."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from onward.config.settings import Settings, load_settings
from onward.deployments.network_commands import format_tasks
from onward.tasks.network.contacts import refresh_contacts
from onward.tasks.network.messages import ASK_KINDS
from onward.tasks.network.rounds import RoundResult, run_round
from onward.tasks.network.service import complete_task, import_contacts, list_tasks, skip_task
from onward.tasks.store import Contact, Cooldown, LedgerEntry, Mailbox, NetworkTask, Store
from tests.support.paths import SAMPLES

TZ = ZoneInfo("Europe/Berlin")
FIRST_MONDAY = date(2026, 3, 2)


def _settings(base: Settings, **network: str) -> Settings:
    env = {
        "ONWARD_HOME": str(base.home),
        "ONWARD_DATABASE_URL": base.database_url,
        "ONWARD_USER_TIMEZONE": "Europe/Berlin",
        "ONWARD_USER_NAME": "Sam Rivera",
    }
    env.update({f"ONWARD_NETWORK_{k.upper()}": v for k, v in network.items()})
    return load_settings(environ=env)


def _at(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), TZ)


def _mailbox(store: Store) -> int:
    with store.unit_of_work() as session:
        box = Mailbox(name="test", kind="maildir", path="/x", address="sam@home.example")
        session.add(box)
        session.flush()
        return box.id


def _ledger(store: Store, box: int, key: str, sender: str, at: datetime, label: str) -> int:
    with store.unit_of_work() as session:
        row = LedgerEntry(
            mailbox_id=box,
            key=key,
            message_id=key,
            status="recorded",
            from_addr=sender,
            label=label,
            verdict={"contact": {"kind": "person"}, "company": None},
            sent_at=at,
        )
        session.add(row)
        session.flush()
        return row.id


def _cooldown(
    store: Store, box: int, key: str, start: datetime, end: datetime, ended: bool = True
) -> None:
    ledger_id = _ledger(store, box, key, "hr@somewhere.example", start, "rejection")
    with store.unit_of_work() as session:
        session.add(
            Cooldown(
                mailbox_id=box,
                ledger_id=ledger_id,
                days=(end - start).days,
                starts_at=start,
                ends_at=end,
                calendar_uid=f"cooldown-{key}@onward",
                ended_at=end if ended else None,
            )
        )


def _round(store: Store, settings: Settings, now: datetime) -> tuple[RoundResult, dict[int, str]]:
    """Refresh contacts and run the round, as the flow does; with the stages just before."""
    with store.unit_of_work() as session:
        refresh_contacts(session, settings, now)
    with store.unit_of_work() as session:
        before = {c.id: c.stage for c in session.scalars(select(Contact))}
    with store.unit_of_work() as session:
        return run_round(session, settings, now), before


def test_twelve_weeks_of_rounds(settings: Settings, store: Store) -> None:
    s = _settings(
        settings,
        touches_to_warming="2",
        touches_to_warm="3",
        cool_after_weeks="3",
        target_companies="Brightforge, Lumen Labs",
        target_roles="data engineer",
    )
    import_contacts(s, SAMPLES / "connections.csv", now=_at(FIRST_MONDAY - timedelta(days=30)))
    box = _mailbox(store)
    # No rounds before the first cooldown is over.
    first_end = _at(FIRST_MONDAY, 8)
    _cooldown(store, box, "<r1@x>", first_end - timedelta(days=3), first_end, ended=False)
    early, _ = _round(store, s, _at(FIRST_MONDAY - timedelta(days=7)))
    assert (early.status, early.tasks) == ("waiting", [])
    with store.unit_of_work() as session:
        session.scalars(select(Cooldown)).one().ended_at = first_end
    # A second rejection in week 6: its cooldown runs from Tuesday 10:00 to Friday 10:00.
    week6 = FIRST_MONDAY + timedelta(weeks=5)
    blocked = _at(week6 + timedelta(days=1), 10), _at(week6 + timedelta(days=4), 10)
    _cooldown(store, box, "<r2@x>", *blocked, ended=False)

    with store.unit_of_work() as session:
        names = {c.id: c.name for c in session.scalars(select(Contact))}
        tomas = next(c.id for c in session.scalars(select(Contact)) if c.name == "Tomás Ferreira")
    done_stages: dict[int, list[tuple[int, str]]] = defaultdict(list)
    replied_week: int | None = None
    for week in range(12):
        monday = FIRST_MONDAY + timedelta(weeks=week)
        now = _at(monday)
        result, before = _round(store, s, now)
        assert result.week == monday
        assert result.status == "planned"
        # At most N a week, one per contact, never due inside a cooldown or before day one.
        assert len(result.tasks) <= s.network.tasks_per_week
        assert len({t.contact_id for t in result.tasks}) == len(result.tasks)
        for task in result.tasks:
            assert monday <= task.due < monday + timedelta(days=7)
            start, end = _at(task.due, 0), _at(task.due + timedelta(days=1), 0)
            assert not (start < blocked[1] and end > blocked[0]), task
            assert task.due >= first_end.date()
            # No ask for anyone who was not warm when the round ran.
            if task.kind in ASK_KINDS:
                assert before[task.contact_id] == "warm" == task.stage
            assert task.stage == before[task.contact_id]
        # Running the round again for the same week changes nothing.
        again, _ = _round(store, s, now + timedelta(hours=30))
        assert again.created == []
        assert [t.id for t in again.tasks] == [t.id for t in result.tasks]

        for n, task in enumerate(result.tasks):
            when = _at(task.due, 18)
            if week == 1 and n == 0:
                # A skip midweek is not made up for, not even by a re-run.
                skip_task(s, task.id, now=when)
                rerun, _ = _round(store, s, when + timedelta(hours=1))
                assert rerun.created == []
                assert len(rerun.tasks) == len(result.tasks)
                continue
            if week >= 7:
                continue  # the person goes quiet for the rest of the simulation
            if names[task.contact_id] == "Owen Bell":
                skip_task(s, task.id, now=when)
                continue
            outcome = complete_task(s, task.id, now=when)
            done_stages[task.contact_id].append((week, outcome.stage_after))
            if task.contact_id == tomas and replied_week is None:
                # Tomás answers by mail the day after: one stage up at the next look.
                _ledger(
                    store,
                    box,
                    "<t@x>",
                    "tomas.ferreira@mailbox.example",
                    when + timedelta(days=1),
                    "other",
                )
                replied_week = week
    with store.unit_of_work() as session:
        tasks = session.scalars(select(NetworkTask).order_by(NetworkTask.due)).all()
        contacts = {c.id: c for c in session.scalars(select(Contact))}
        by_week: dict[date, int] = defaultdict(int)
        by_contact: dict[int, list[date]] = defaultdict(list)
        for t in tasks:
            by_week[t.week] += 1
            by_contact[t.contact_id].append(t.due)
            if t.kind in ASK_KINDS:
                assert t.stage == "warm"
    assert len(by_week) == 12
    assert max(by_week.values()) == 3
    for dues in by_contact.values():
        gaps = [(b - a).days for a, b in itertools.pairwise(dues)]
        assert all(gap >= s.network.min_days_between_touches for gap in gaps), dues
    # Rotation is fair: everyone had a turn within twelve weeks.
    assert set(by_contact) == set(contacts)
    # Engagements warm contacts exactly as configured (2 → warming, 3 → warm) ...
    plain = [cid for cid, seen in done_stages.items() if cid != tomas]
    assert any(len(done_stages[cid]) >= 3 for cid in plain)
    for cid in plain:
        for count, (_week, stage) in enumerate(done_stages[cid], 1):
            assert stage == ("warm" if count >= 3 else "warming" if count >= 2 else "cold")
    # ... warm contacts were eventually asked, and Tomás's reply moved him up one stage.
    assert any(t.kind in ASK_KINDS for t in tasks)
    assert replied_week is not None
    # After weeks of silence (nothing done since week 7) warm contacts cooled down.
    warmed = [cid for cid in plain if done_stages[cid][-1][1] == "warm"]
    assert warmed
    assert all(contacts[cid].stage != "warm" for cid in warmed)
    # Skipped and unfinished tasks never count as touches.
    owen = next(c for c in contacts.values() if c.name == "Owen Bell")
    assert owen.touches == 0


def test_four_weeks_of_onward_tasks_on_the_sample(settings: Settings, store: Store) -> None:
    s = _settings(
        settings, target_companies="Brightforge, Lumen Labs", target_roles="data engineer"
    )
    report = import_contacts(
        s, SAMPLES / "connections.csv", now=_at(FIRST_MONDAY - timedelta(days=10))
    )
    box = _mailbox(store)
    _cooldown(store, box, "<r@x>", _at(FIRST_MONDAY - timedelta(days=4)), _at(FIRST_MONDAY, 8))
    print(
        f"\n$ onward contacts import config/samples/connections.csv\n"
        f"  {report.added} added, {report.merged} merged, {len(report.skipped)} skipped"
    )
    listed = []
    for week in range(4):
        monday = FIRST_MONDAY + timedelta(weeks=week)
        _round(store, s, _at(monday))
        tasks = list_tasks(s, now=_at(monday, 10))
        listed.append(tasks)
        print(f"\n$ onward tasks        # {monday:%A %d %B %Y}, after the 09:00 round\n")
        print(format_tasks(tasks))
        for n, task in enumerate(tasks.tasks):
            when = _at(task.due, 19)
            if n == 2 and week % 2 == 1:
                print(f"$ onward tasks skip {task.id}")
                skip_task(s, task.id, now=when)
                continue
            replied = task.contact == "Tomás Ferreira"
            outcome = complete_task(s, task.id, replied=replied, now=when)
            print(
                f"$ onward tasks done {task.id}{' --replied' if replied else ''}"
                f"   # {task.contact}: {outcome.stage_before} → {outcome.stage_after}"
            )
    assert all(len(t.tasks) == 3 for t in listed)
    first = listed[0].tasks
    # Targets first (Brightforge, Lumen Labs, data engineers), all cold: follow them.
    assert {t.company for t in first} <= {"Brightforge", "Lumen Labs"}
    assert {t.kind for t in first} == {"follow"}
    assert all(t.kind not in ASK_KINDS for tl in listed for t in tl.tasks)
