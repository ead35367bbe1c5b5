"""The name of a mailbox's watch slot: one Prefect accepts, distinct per mailbox."""

from __future__ import annotations

from prefect.types.names import BANNED_CHARACTERS

from onward.tasks.mail.watch_slot import watch_slot_name


def test_a_plain_name_is_kept() -> None:
    assert watch_slot_name("alice@example.org") == "onward-watch-alice@example.org"


def test_names_prefect_refuses_are_made_safe_and_stay_distinct() -> None:
    names = [
        "maildir:/home/alice/Mail/work",
        "maildir:/home/alice/Mail/work/",
        "a&b<c>d%e",
        "x" * 500,
        "x" * 501,
    ]
    slots = [watch_slot_name(n) for n in names]
    assert len(set(slots)) == len(slots)
    for slot in slots:
        assert not set(slot) & set(BANNED_CHARACTERS), slot
        assert len(slot) <= 110
