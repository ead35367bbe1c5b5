"""What the classifier says about a message: labels, verdicts with their reasons, and the
rule types they come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

LABELS: tuple[str, ...] = (
    "rejection",
    "interview",
    "assessment",
    "offer",
    "application_received",
    "recruiter_outreach",
    "job_alert",
    "feedback_reply",
    "other",
)
# On equal scores the earlier label wins: a missed "not a rejection" costs less than a
# "thanks for the feedback" draft sent in reply to an interview invitation.
_TIE_ORDER = {
    label: i
    for i, label in enumerate(
        (
            "offer",
            "interview",
            "assessment",
            "feedback_reply",
            "application_received",
            "recruiter_outreach",
            "job_alert",
            "other",
            "rejection",
        )
    )
}

Where = Literal["subject", "body", "from", "header"]
SenderKind = Literal["person", "no-reply", "ats", "unknown"]
# Where in the hiring process a rejection came: after applying, after a screen or an
# assessment, after interviews, after a final round or onsite; "unknown" when the text
# does not say (and for every verdict that is not a rejection).
Stage = Literal["applied", "screen", "interview", "final", "unknown"]
STAGES: tuple[str, ...] = ("applied", "screen", "interview", "final", "unknown")
# Rejection confidence in [low, high) is borderline: still a rejection, but for a person
# to confirm before anything reacts. Below low it is not called a rejection at all. With
# the learned model the confidence is its probability: 0.5 is where it is as sure of a
# rejection as not, and leave-one-source-out over the development data put precision at
# 0.98 and above from 0.8 (see tests/data/classify/README.md).
REVIEW_BAND: tuple[float, float] = (0.5, 0.8)


@dataclass(frozen=True, slots=True)
class Reason:
    """One piece of evidence: ``text[start:end] == phrase`` in the field named by ``where``.

    For ``where == "body"`` the offsets are into the message's new text (``new_text``,
    or ``text`` when the message has no quoted part).
    """

    phrase: str
    rule: str
    label: str
    weight: float
    where: Where
    start: int
    end: int

    @property
    def quote(self) -> str:
        """The phrase on one line, as a person reads it (line wraps become spaces)."""
        return " ".join(self.phrase.split())

    def to_dict(self) -> dict[str, Any]:
        return {
            "phrase": self.phrase,
            "quote": self.quote,
            "rule": self.rule,
            "label": self.label,
            "weight": self.weight,
            "where": self.where,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a message is, how sure we are, the evidence, and who and what it is about.

    ``stage`` says where a rejection came (``STAGES``); ``borderline`` is True for a
    rejection whose confidence lies in the review band passed to ``classify``: a certain
    rejection is ``is_rejection and not borderline``.
    """

    label: str
    confidence: float
    reasons: tuple[Reason, ...]
    company: str | None = None
    role: str | None = None
    contact_name: str | None = None
    contact_addr: str | None = None
    sender_kind: SenderKind = "unknown"
    ats: str | None = None
    stage: Stage = "unknown"
    borderline: bool = False

    @property
    def is_rejection(self) -> bool:
        return self.label == "rejection"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape ``onward classify`` prints, without the id)."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "reasons": [r.to_dict() for r in self.reasons],
            "company": self.company,
            "role": self.role,
            "stage": self.stage,
            "borderline": self.borderline,
            "contact": {
                "name": self.contact_name,
                "addr": self.contact_addr,
                "kind": self.sender_kind,
                "ats": self.ats,
            },
        }


# --------------------------------------------------------------------------------------
# Rules as data
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A weighted phrase for one label; see the header of ``config/classifier.toml``."""

    id: str
    label: str
    pattern: str
    weight: float
    where: Literal["body", "subject", "any"] = "body"
    unless: tuple[str, ...] = ()
    requires: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """A context that cancels evidence for some labels in the same sentence."""

    id: str
    labels: frozenset[str]
    pattern: str
    scope: Literal["before", "sentence"] = "sentence"
    window: int = 160


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """Evidence from a header: present (and matching ``pattern``) adds ``weight``."""

    id: str
    header: str
    label: str
    weight: float
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class LabelPolicy:
    min_score: float = 3.0
    requires_context: str | None = None
    requires_reply: bool = False
    # Labels this one beats whenever both reach their bar (a feedback reply often
    # repeats the rejection it follows up on).
    wins_over: frozenset[str] = frozenset()
