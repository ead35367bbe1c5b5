"""The pure parts of networking: stages, picking the week's tasks, messages, the schedule."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from onward.config.settings import NetworkSettings, load_settings
from onward.tasks.errors import ConfigError
from onward.tasks.network import stages
from onward.tasks.network.messages import ASK_KINDS, KINDS, MessageContext, render_message
from onward.tasks.network.rounds import (
    Candidate,
    free_days,
    pick_kind,
    plan_picks,
    round_cron,
    round_week,
    spread,
)
from onward.tasks.store import Contact
from tests.support.paths import ROOT

RULES = NetworkSettings()
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _contact() -> Contact:
    return Contact(
        name="Ada",
        match_key="ada|",
        source="csv",
        touches=0,
        stage="cold",
        stage_changed_at=T0 - timedelta(days=400),
    )


def test_engagements_warm_a_contact_gradually() -> None:
    contact = _contact()
    seen = []
    for week in range(RULES.touches_to_warm):
        stages.record_engagement(contact, RULES, T0 + timedelta(weeks=2 * week))
        seen.append(contact.stage)
    assert seen == ["cold", "warming", "warming", "warm"]


def test_a_reply_moves_up_one_stage_and_only_after_an_engagement() -> None:
    contact = _contact()
    # Mail from someone we never engaged with is an interaction, not a reply.
    assert stages.record_mail(contact, RULES, T0) is False
    assert (contact.stage, contact.touches) == ("cold", 1)
    stages.record_engagement(contact, RULES, T0 + timedelta(days=7))
    assert contact.stage == "warming"
    assert stages.record_mail(contact, RULES, T0 + timedelta(days=8)) is True
    assert contact.stage == "warm"
    # A second mail in the same exchange does not jump again.
    assert stages.record_mail(contact, RULES, T0 + timedelta(days=9)) is False


def test_a_feedback_answer_makes_a_contact_warm() -> None:
    contact = _contact()
    stages.record_feedback_reply(contact, RULES, T0)
    assert contact.stage == "warm"


def test_silence_cools_one_stage_per_period() -> None:
    contact = _contact()
    for i in range(RULES.touches_to_warm):
        stages.record_engagement(contact, RULES, T0 + timedelta(days=i))
    last = T0 + timedelta(days=RULES.touches_to_warm - 1)
    period = timedelta(weeks=RULES.cool_after_weeks)
    assert stages.cool_down(contact, RULES, last + period - timedelta(hours=1)) is False
    assert stages.cool_down(contact, RULES, last + period) is True
    assert contact.stage == "warming"
    assert stages.cool_down(contact, RULES, last + period + timedelta(days=1)) is False
    assert stages.cool_down(contact, RULES, last + 2 * period) is True
    assert contact.stage == "cold"
    assert stages.cool_down(contact, RULES, last + 5 * period) is False


@pytest.mark.parametrize(
    ("stage", "n", "ever", "target"),
    list(itertools.product(["cold", "warming", "warm"], range(7), [False, True], [False, True])),
)
def test_kinds_fit_the_stage_and_only_warm_contacts_are_asked(
    stage: stages.Stage, n: int, ever: bool, target: bool
) -> None:
    kind = pick_kind(stage, n, ever, target)
    assert kind in KINDS
    if kind in ASK_KINDS:
        assert stage == "warm"
    if stage == "cold":
        assert kind in {"follow", "comment", "react", "congratulate"}
    if stage == "warming":
        assert kind in {"share", "check_in"}
    if stage == "warm":
        assert kind in {"advice", "call", "ask_roles", "referral"}


def test_warm_contacts_get_an_ask_in_their_rotation() -> None:
    kinds = {pick_kind("warm", n, True, True) for n in range(3)}
    assert kinds == {"advice", "call", "referral"}
    assert "ask_roles" in {pick_kind("warm", n, True, False) for n in range(3)}


def test_spread_and_free_days() -> None:
    week = date(2026, 3, 2)  # a Monday
    days = [week + timedelta(days=i) for i in range(7)]
    assert [d.strftime("%a") for d in spread(days, 3)] == ["Mon", "Wed", "Fri"]
    assert spread(days[5:], 3) == days[5:]
    tz = ZoneInfo("Europe/Berlin")
    # A cooldown from Tuesday 14:00 to Thursday 14:00 local blocks Tue, Wed and Thu.
    cooldown = (
        datetime.combine(week + timedelta(days=1), time(14), tz),
        datetime.combine(week + timedelta(days=3), time(14), tz),
    )
    free = free_days(week, week + timedelta(days=1), week, [cooldown], tz)
    assert [d.strftime("%a") for d in free] == ["Fri", "Sat", "Sun"]


def test_plan_picks_caps_spaces_and_puts_targets_first() -> None:
    week = date(2026, 3, 2)
    days = [week + timedelta(days=i) for i in range(7)]

    def cand(cid: int, last: date | None, target: bool = False) -> Candidate:
        return Candidate(cid, "cold", last, 0, last is not None, target, False)

    candidates = [
        cand(1, week - timedelta(days=7)),  # touched a week ago: not yet
        cand(2, None),
        cand(3, week - timedelta(days=30)),
        cand(4, week - timedelta(days=60), target=True),
        cand(5, None),
        cand(6, week - timedelta(days=13)),  # 14 days from Monday is Tuesday: later slot
    ]
    picks = plan_picks(candidates, days, 3, RULES)
    assert len(picks) == 3
    assert [p.contact_id for p in picks] == [4, 2, 5]  # target, then never touched
    picks = plan_picks(
        [cand(1, week - timedelta(days=7)), cand(6, week - timedelta(days=13))], days, 3, RULES
    )
    assert [(p.contact_id, p.due.strftime("%a")) for p in picks] == [(6, "Wed")]


def test_round_week_and_cron_follow_the_settings(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "ONWARD_HOME": str(tmp_path),
            "ONWARD_USER_TIMEZONE": "Pacific/Auckland",
            "ONWARD_NETWORK_ROUND_DAY": "Wednesday",
            "ONWARD_NETWORK_ROUND_TIME": "18:30",
        }
    )
    assert round_cron(settings.network) == "30 18 * * 3"
    assert round_cron(NetworkSettings(round_day="sunday", round_time=time(7, 5))) == "5 7 * * 0"
    # Tuesday 20:00 UTC is already Wednesday in Auckland: that Wednesday's round.
    assert round_week(datetime(2026, 3, 3, 20, tzinfo=UTC), settings) == date(2026, 3, 4)
    assert round_week(datetime(2026, 3, 3, 9, tzinfo=UTC), settings) == date(2026, 2, 25)


def test_deployment_schedule_is_the_settings(tmp_path: Path) -> None:
    from onward.deployments.worker import build_deployments

    settings = load_settings(
        environ={
            "ONWARD_HOME": str(tmp_path),
            "ONWARD_USER_TIMEZONE": "America/New_York",
            "ONWARD_NETWORK_ROUND_DAY": "friday",
            "ONWARD_NETWORK_ROUND_TIME": "07:45",
        }
    )
    deployments = {d.name: d for d in build_deployments("box", "/cfg.toml", settings)}
    round_ = deployments["networking-round"]
    assert round_.parameters == {"config_file": "/cfg.toml"}
    (schedule,) = round_.schedules
    assert schedule.schedule.cron == "45 7 * * 5"
    assert schedule.schedule.timezone == "America/New_York"


def test_prefect_yaml_declares_the_default_schedule() -> None:
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    (entry,) = [d for d in spec["deployments"] if d["name"] == "networking-round"]
    assert entry["entrypoint"] == "flows/networking_round.py:networking_round"
    assert entry["schedules"][0]["cron"] == round_cron(NetworkSettings())


def test_messages_render_for_every_kind_and_can_be_overridden(tmp_path: Path) -> None:
    context = MessageContext(
        "Dr. Meera Natarajan", "Brightforge", "Engineering Manager", "warm", "Data Engineer", "Sam"
    )
    for kind in KINDS:
        text = render_message(kind, context)
        assert text.strip(), kind
        assert "{{" not in text
        assert "{%" not in text
    assert render_message("check_in", context).startswith("Hi Meera,")
    mine = tmp_path / "network"
    mine.mkdir()
    (mine / "check_in.txt.j2").write_text("Hey {{ first_name }} from {{ sender_name }}\n")
    assert render_message("check_in", context, template_dirs=[tmp_path]) == "Hey Meera from Sam\n"
    (mine / "share.txt.j2").write_text("line one\n{{ nickname }}\n")
    with pytest.raises(ConfigError, match=r"share.txt.j2, line 2: 'nickname' is undefined"):
        render_message("share", context, template_dirs=[tmp_path])
