"""The planner: profile, rejection pattern and feedback points become small dated goals.

Pure: it takes what the database holds (as plain data) and the date, and says what the
plan should be. Rules it keeps, whatever the inputs:

- goals start after the cooldown: nothing is due inside a cooldown, nor before the plan
  starts;
- at most one goal is due per day, on the person's preferred days;
- the estimated hours of the goals due in any week never exceed the profile's hours;
- no goal is longer than about a week of the person's time: a bigger aim is a series;
- a goal keeps its date once planned; an overdue one moves to the next free day instead
  of piling up, and one missed twice becomes a smaller step (half its hours);
- every goal has a natural key, so planning again updates the plan and never duplicates.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from onward.config.settings import WEEKDAYS
from onward.tasks.plan.catalogue import Catalogue
from onward.tasks.plan.profile import Profile

# How many recent rejections make the pattern, how many goals stay open at once, and how
# far ahead a planned goal keeps its day when the plan changes (the person may have
# started on this week's; later ones make room for what matters more, like new feedback).
PATTERN_WINDOW = 6
MAX_OPEN_GOALS = 6
KEEP_DAYS = 7
HORIZON_DAYS = 8 * 7
DEFAULT_PROFILE = Profile()
# Goals the planner may (re)schedule: planned ones, and those waiting for room.
OPEN = ("planned", "queued")
STAGE_NAMES = {
    "applied": "after applying",
    "screen": "after a screen or assessment",
    "interview": "after interviews",
    "final": "after a final round",
}


@dataclass(frozen=True)
class FeedbackInput:
    point_id: int
    company: str | None
    quote: str
    topic: str
    kind: str


@dataclass(frozen=True)
class ExistingGoal:
    key: str
    due: date
    status: str  # planned | queued | done | partly | skipped | dropped
    missed: int
    hours: float


@dataclass(frozen=True)
class PlanInputs:
    today: date
    start: date  # the day after the first cooldown ends, or later
    profile: Profile | None
    stages: Sequence[str]  # of recent rejections, newest first
    feedback: Sequence[FeedbackInput]
    existing: Sequence[ExistingGoal]
    cooldowns: Sequence[tuple[date, date]]  # [first day, day after the last)


@dataclass(frozen=True)
class GoalSpec:
    key: str
    kind: str
    title: str
    why: str
    description: str
    source: str  # "profile" | "pattern" | "feedback"
    quote: str | None
    hours: float
    due: date
    missed: int = 0


@dataclass
class Plan:
    goals: list[GoalSpec] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # keys no longer in the plan
    queued: list[str] = field(default_factory=list)  # still wanted, no room for them yet
    notes: list[str] = field(default_factory=list)  # what a profile would add, etc.


@dataclass(frozen=True)
class _Aim:
    key: str
    kind: str
    topic: str
    source: str
    why: str
    quote: str | None = None
    company: str | None = None


def slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:60] or "x"


def pattern(stages: Sequence[str]) -> tuple[str, int, int] | None:
    """(stage, how many, of how many) for the recent rejections, if one stage stands out."""
    known = [s for s in stages[:PATTERN_WINDOW] if s in STAGE_NAMES]
    if not known:
        return None
    stage, count = Counter(known).most_common(1)[0]
    return stage, count, len(known)


def aims(inputs: PlanInputs, catalogue: Catalogue) -> tuple[list[_Aim], list[str]]:
    """Everything the plan should work towards, most important first."""
    profile = inputs.profile or DEFAULT_PROFILE
    out: list[_Aim] = []
    notes: list[str] = []
    for point in inputs.feedback:
        who = point.company or "The hiring manager"
        out.append(
            _Aim(
                key=f"feedback:{point.point_id}",
                kind=point.kind if point.kind in catalogue.kinds else "feedback_followup",
                topic=point.topic,
                source="feedback",
                why=f"{who} said: “{point.quote}”",
                quote=point.quote,
                company=point.company,
            )
        )
    found = pattern(inputs.stages)
    if found is not None:
        stage, count, total = found
        why = catalogue.render(
            catalogue.emphasis_why.get(stage, "{{ count }} of {{ total }} rejections"),
            f"[emphasis_why] {stage}",
            count=count,
            total=total,
            which="Your last rejection"
            if total == 1
            else f"{count} of your last {total} rejections",
        )
        topic = {
            "applied": profile.role,
            "screen": _weakest_skill(profile) or "the skills the postings test",
            "interview": "the questions you were asked",
            "final": profile.role,
        }[stage]
        for kind in catalogue.emphasis.get(stage, ()):
            # Once done, the same kind comes back as a new round while the pattern holds.
            prefix = f"pattern:{stage}:{kind}:"
            round_no = sum(
                1 for g in inputs.existing if g.key.startswith(prefix) and g.status == "done"
            )
            out.append(_Aim(f"{prefix}{round_no}", kind, topic, "pattern", why))
    for item in profile.learning:
        out.append(
            _Aim(
                f"profile:learn:{slug(item)}",
                "course",
                item,
                "profile",
                f"You want to get better at {item} (your profile).",
            )
        )
    for skill, level in profile.skills.items():
        if level == "beginner":
            out.append(
                _Aim(
                    f"profile:skill:{slug(skill)}",
                    "skill_drill",
                    skill,
                    "profile",
                    f"{skill} is a beginner skill in your profile; a little practice each "
                    "week makes it one you can claim.",
                )
            )
    if inputs.profile is None:
        notes.append(
            "No profile yet: goals come from your rejections and feedback only. "
            "`onward plan init` adds your target role, what you want to learn and the hours "
            "you have, and paces the plan to them."
        )
    return out, notes


def _weakest_skill(profile: Profile) -> str | None:
    for wanted in ("beginner", "intermediate"):
        for skill, level in profile.skills.items():
            if level == wanted:
                return skill
    return profile.learning[0] if profile.learning else None


def plan(inputs: PlanInputs, catalogue: Catalogue) -> Plan:
    profile = inputs.profile or DEFAULT_PROFILE
    result = Plan()
    wanted, result.notes = aims(inputs, catalogue)
    existing = {g.key: g for g in inputs.existing}
    calendar = _Calendar(inputs, profile)
    specs: dict[str, GoalSpec] = {}
    # Goals already planned keep their day; overdue ones move; a second miss makes them smaller.
    for aim in wanted:
        for spec in _parts(aim, profile, catalogue):
            old = existing.get(spec.key)
            if old is None or old.status != "planned":
                continue
            soon = inputs.today <= old.due < inputs.today + timedelta(days=KEEP_DAYS)
            if soon and calendar.fits(old.due, old.hours, spec.key):
                specs[spec.key] = _smaller(spec, old.missed, old.hours, old.due)
                calendar.book(old.due, old.hours, spec.key)
    for aim in wanted:
        for spec in _parts(aim, profile, catalogue):
            old = existing.get(spec.key)
            if spec.key in specs or (old is not None and old.status not in OPEN):
                continue
            if len(specs) >= MAX_OPEN_GOALS:
                break
            missed, hours = 0, spec.hours
            if old is not None:
                overdue = old.status == "planned" and old.due < inputs.today
                missed = old.missed + (1 if overdue else 0)
                hours = old.hours
                if missed >= 2 and old.missed < 2:
                    hours = max(0.5, round(hours / 2, 1))  # missed twice: a smaller step
            day = calendar.next_free(hours)
            if day is None:
                break
            specs[spec.key] = _smaller(spec, missed, hours, day)
            calendar.book(day, hours, spec.key)
    result.goals = sorted(specs.values(), key=lambda g: (g.due, g.key))
    for goal in inputs.existing:
        if goal.status in OPEN and goal.key not in specs:
            wanted_still = _still_wanted(goal.key, wanted)
            (result.queued if wanted_still else result.dropped).append(goal.key)
    return result


def _smaller(spec: GoalSpec, missed: int, hours: float, due: date) -> GoalSpec:
    title = f"Smaller step: {spec.title}" if missed >= 2 else spec.title
    return replace(spec, title=title, hours=hours, due=due, missed=missed)


def _still_wanted(key: str, wanted: Iterable[_Aim]) -> bool:
    """A planned goal not scheduled this time (the horizon was full) stays in the plan."""
    return any(key == a.key or key.startswith(a.key + ":") for a in wanted)


def _parts(aim: _Aim, profile: Profile, catalogue: Catalogue) -> list[GoalSpec]:
    kind = catalogue.kind(aim.kind)
    longest = min(kind.max_hours, profile.hours_per_week)
    parts = max(1, math.ceil(kind.hours / longest - 1e-9))
    hours = round(kind.hours / parts, 1)
    out = []
    for part in range(1, parts + 1):
        values = {
            "topic": aim.topic,
            "role": profile.role,
            "part": part,
            "parts": parts,
            "hours": hours,
            "company": aim.company or "The hiring manager",
            "quote": aim.quote or "",
        }
        out.append(
            GoalSpec(
                key=aim.key if parts == 1 else f"{aim.key}:part-{part}",
                kind=aim.kind,
                title=catalogue.render(kind.title, f"[kinds.{aim.kind}] title", **values),
                why=aim.why,
                description=catalogue.render(
                    kind.description, f"[kinds.{aim.kind}] description", **values
                ),
                source=aim.source,
                quote=aim.quote,
                hours=hours,
                due=date.min,
            )
        )
    return out


class _Calendar:
    """Free days for goals: preferred weekdays, outside cooldowns, one goal a day, and the
    week's hours within the profile's."""

    def __init__(self, inputs: PlanInputs, profile: Profile) -> None:
        self.first = max(inputs.start, inputs.today)
        self.cooldowns = list(inputs.cooldowns)
        self.days = {WEEKDAYS.index(d) for d in profile.preferred_days} or {1, 3, 5}
        self.budget = profile.hours_per_week
        self.taken: dict[date, str] = {}
        self.week_hours: dict[tuple[int, int], float] = {}
        # Goals already finished or in review still count against their week and day.
        for goal in inputs.existing:
            if goal.status in ("done", "partly") and goal.due >= inputs.today - timedelta(7):
                self.book(goal.due, goal.hours, goal.key)

    def _week(self, day: date) -> tuple[int, int]:
        iso = day.isocalendar()
        return iso[0], iso[1]

    def _in_cooldown(self, day: date) -> bool:
        return any(first <= day < end for first, end in self.cooldowns)

    def fits(self, day: date, hours: float, key: str) -> bool:
        if day < self.first or self._in_cooldown(day):
            return False
        if self.taken.get(day, key) != key:
            return False
        return self.week_hours.get(self._week(day), 0.0) + hours <= self.budget + 1e-9

    def book(self, day: date, hours: float, key: str) -> None:
        self.taken[day] = key
        week = self._week(day)
        self.week_hours[week] = self.week_hours.get(week, 0.0) + hours

    def next_free(self, hours: float) -> date | None:
        day = self.first
        for _ in range(HORIZON_DAYS):
            if day.weekday() in self.days and day not in self.taken and self.fits(day, hours, ""):
                return day
            day += timedelta(days=1)
        return None
