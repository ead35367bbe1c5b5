"""The planner and the feedback reader: pure functions, plain data, no database."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import date, timedelta

import pytest

from onward.tasks.feedback.answers import extract_points
from onward.tasks.plan.catalogue import load_catalogue
from onward.tasks.plan.planner import (
    ExistingGoal,
    FeedbackInput,
    GoalSpec,
    PlanInputs,
    pattern,
    plan,
)
from onward.tasks.plan.profile import Profile

CATALOGUE = load_catalogue()
PROFILE = Profile(
    current_position="Data analyst",
    target_roles=("Data Engineer",),
    skills={"SQL": "advanced", "Airflow": "beginner"},
    learning=("dbt", "system design"),
    hours_per_week=5,
    preferred_days=("tuesday", "thursday", "saturday"),
)
FEEDBACK = """Hi Sam,

Thanks for following up, and for your interest in Corvid Labs.

Happy to share a few thoughts. The panel felt your SQL was strong, but you could have
explained your data modelling choices in more depth. We were looking for more hands-on
experience with Airflow in production. I would also recommend brushing up on system design
basics before your next interview.

Best of luck with your search!
Renée
"""


def test_three_actionable_points_are_quoted_word_for_word() -> None:
    points = extract_points(FEEDBACK)
    assert [p.quote for p in points] == [
        "The panel felt your SQL was strong, but you could have explained your data "
        "modelling choices in more depth.",
        "We were looking for more hands-on experience with Airflow in production.",
        "I would also recommend brushing up on system design basics before your next interview.",
    ]
    assert [p.topic for p in points] == [
        "data modelling choices",
        "Airflow",
        "system design basics",
    ]
    assert [p.kind for p in points] == ["interview_stories", "practice_project", "mock_interview"]


@pytest.mark.parametrize(
    "text",
    [
        "Hi Sam, thank you so much for reaching out. It was a pleasure to meet you and we "
        "wish you the best of luck in your search. Kind regards, Dana",
        "Thanks Sam! We'd encourage you to apply again in the future. Best, Lee",
        "Could you send me your availability for next week?",
        "> We were looking for more hands-on experience\n\nThanks, noted!",
    ],
)
def test_a_thank_you_has_no_point(text: str) -> None:
    assert extract_points(text) == []


def test_pattern_is_the_most_frequent_recent_stage() -> None:
    assert pattern(["applied", "applied", "interview", "unknown"]) == ("applied", 2, 3)
    assert pattern(["unknown"]) is None
    assert pattern([]) is None


def inputs(today: date, **kw: object) -> PlanInputs:
    values: dict[str, object] = {
        "today": today,
        "start": today,
        "profile": PROFILE,
        "stages": ["applied", "applied", "screen"],
        "feedback": [],
        "existing": [],
        "cooldowns": [],
    }
    values.update(kw)
    return PlanInputs(**values)  # type: ignore[arg-type]


def check_rules(goals: list[GoalSpec], cooldowns: list[tuple[date, date]], hours: float) -> None:
    days = Counter(g.due for g in goals)
    assert max(days.values(), default=0) <= 1, "two goals due on one day"
    for goal in goals:
        assert not any(a <= goal.due < b for a, b in cooldowns), f"{goal.key} in a cooldown"
    weeks: dict[tuple[int, int], float] = defaultdict(float)
    for goal in goals:
        weeks[goal.due.isocalendar()[:2]] += goal.hours
    assert max(weeks.values(), default=0) <= hours + 1e-9, weeks


def test_goals_are_small_dated_paced_and_say_why() -> None:
    today = date(2026, 3, 2)  # a Monday
    result = plan(inputs(today), CATALOGUE)
    assert result.goals
    check_rules(result.goals, [], PROFILE.hours_per_week)
    for goal in result.goals:
        assert goal.due.weekday() in (1, 3, 5)  # Tue, Thu, Sat
        assert goal.hours <= PROFILE.hours_per_week
        assert goal.why
    sources = {g.source for g in result.goals}
    assert sources == {"pattern", "profile"}
    first = result.goals[0]
    assert first.source == "pattern"  # the pattern comes before the profile's wishes
    assert "2 of your last 3 rejections came right after applying" in first.why
    # A bigger aim is a series of parts, each at most about a week of the person's time.
    course = [g for g in result.goals if g.key.startswith("profile:learn:dbt")]
    assert course
    assert all(":part-" in g.key for g in course)


def test_feedback_goals_come_first_and_quote_the_sentence() -> None:
    points = [
        FeedbackInput(i, "Corvid Labs", p.quote, p.topic, p.kind)
        for i, p in enumerate(extract_points(FEEDBACK), start=1)
    ]
    result = plan(inputs(date(2026, 3, 2), feedback=points), CATALOGUE)
    from_feedback = [g for g in result.goals if g.source == "feedback"]
    # One aim per point (a bigger one is a series of parts), each quoting its sentence.
    aims = {g.key.split(":part-")[0]: g.quote for g in from_feedback}
    assert aims == {f"feedback:{p.point_id}": p.quote for p in points}
    assert all(g.why.startswith("Corvid Labs said: “") for g in from_feedback)
    assert result.goals[0].source == "feedback"


def test_without_a_profile_it_still_plans_and_says_what_a_profile_adds() -> None:
    result = plan(inputs(date(2026, 3, 2), profile=None), CATALOGUE)
    assert {g.source for g in result.goals} == {"pattern"}
    assert any("onward plan init" in note for note in result.notes)


def test_replanning_changes_nothing() -> None:
    today = date(2026, 3, 2)
    first = plan(inputs(today), CATALOGUE)
    existing = [ExistingGoal(g.key, g.due, "planned", 0, g.hours) for g in first.goals]
    again = plan(inputs(today, existing=existing), CATALOGUE)
    assert again.goals == first.goals
    assert again.dropped == []


def test_twelve_weeks_with_rejections_cooldowns_and_missed_goals() -> None:
    """Weekly planning over 12 weeks: new rejections bring cooldowns, some goals are done,
    some missed. The rules hold every week; overdue goals move instead of piling up, and a
    goal missed twice becomes a smaller step."""
    rng = random.Random(7)
    start = date(2026, 3, 2)
    cooldowns: list[tuple[date, date]] = [(start - timedelta(days=3), start)]
    stages = ["applied"]
    goals: dict[str, ExistingGoal] = {}
    specs: dict[str, GoalSpec] = {}
    stubborn: str | None = None
    for week in range(12):
        today = start + timedelta(weeks=week)
        if week in (2, 5, 9):  # a rejection, and its cooldown of 3 days from today
            stages.insert(0, rng.choice(["applied", "screen", "interview"]))
            cooldowns.append((today, today + timedelta(days=3)))
        result = plan(
            inputs(today, start=start, stages=list(stages), existing=list(goals.values()),
                   cooldowns=list(cooldowns)),
            CATALOGUE,
        )  # fmt: skip
        for key in result.dropped:
            goals[key] = replace(goals[key], status="dropped")
        for key in result.queued:
            goals[key] = replace(goals[key], status="queued")
        planned_now = [g for g in result.goals]
        check_rules(planned_now, cooldowns, PROFILE.hours_per_week)
        for goal in planned_now:
            assert goal.due >= today, "a goal planned in the past"
            old = goals.get(goal.key)
            if old is not None and old.status == "planned" and old.due < today:
                assert goal.missed == old.missed + 1  # it moved forward, counted as missed
            goals[goal.key] = ExistingGoal(goal.key, goal.due, "planned", goal.missed, goal.hours)
            specs[goal.key] = goal
        # The week passes: the person does most goals due this week, never the stubborn one.
        stubborn = stubborn or next(g.key for g in planned_now if g.source == "profile")
        for goal in planned_now:
            if goal.due < today + timedelta(days=7) and goal.key != stubborn and rng.random() < 0.8:
                goals[goal.key] = replace(goals[goal.key], status="done")
        overdue = [g for g in goals.values() if g.status == "planned" and g.due < today]
        assert len(overdue) <= 3, "overdue goals pile up"
    assert goals[stubborn].missed >= 2
    assert specs[stubborn].title.startswith("Smaller step: ")
    assert specs[stubborn].hours < CATALOGUE.kind(specs[stubborn].kind).hours
