"""Answers to feedback requests: recognise them by their thread, and read their points.

An answer is a reply from someone else whose In-Reply-To or References name the rejection
or our draft, whatever its subject says. Its actionable points (what to improve, what was
missing, what they recommend) are the sentences that say so; each is kept word for word,
so the goal made from it can quote it. A thank-you with no such sentence has no point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from onward.tasks.mail.message_ids import message_id_list, normalise_message_id
from onward.tasks.store import FeedbackPoint, FeedbackRequest, LedgerEntry, utcnow

# States in which an answer can still come (a deleted draft may have been sent anyway).
WAITING = ("drafted", "needs_recipient", "sent", "discarded")

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])|\n\s*\n|\n\s*[-*•]\s*|\n(?=\d+[.)]\s)")
# Sentences that ask for change: improvement, a gap, a recommendation.
_ACTIONABLE = re.compile(
    r"\b(?:improve|improving|work(?:ing)? on|brush(?:ing)? up|strengthen|deepen|practi[cs]e"
    r"|recommend|suggest|advise|encourage|consider|focus(?:ing)? on|would (?:have )?(?:liked|"
    r"wanted|expected|needed) (?:to see|more)|we (?:were )?looking for|lack(?:ed|ing)?"
    r"|missing|was missing|gap|weak(?:er|ness)?|not (?:yet )?strong|could (?:have )?(?:been|"
    r"shown|gone|explained|demonstrated)|should|next time|more (?:depth|experience|detail|"
    r"examples?|hands-on|exposure|practice|familiarity)|less (?:than|experience)"
    r"|(?:didn't|did not|couldn't|could not) (?:quite )?(?:show|demonstrate|explain|answer"
    r"|articulate|cover|go))\b",
    re.IGNORECASE,
)
# Pleasantries that carry no point even when they contain a cue word.
_PLEASANTRY = re.compile(
    r"^(?:thanks?|thank you|good luck|best of luck|all the best|best wishes|kind regards|"
    r"regards|cheers|it was (?:a pleasure|great)|we enjoyed|feel free|don't hesitate|"
    r"i hope this helps|happy to|please keep in touch|we'd encourage you to apply again)",
    re.IGNORECASE,
)
_STOP = (
    r"(?!(?:and|or|but|as|to|for|if|so|before|after|when|while|because|which|in|at|on|of|by"
    r"|from|during|than|your|the|a|an|more)\b)"
)
_TOPIC = rf"(?P<topic>{_STOP}[A-Za-z][\w+#./-]*(?:\s+{_STOP}[A-Za-z][\w+#./-]*){{0,3}})"
# "experience with Airflow" names its topic after "with"; otherwise the words after the cue.
_TOPIC_WITH = re.compile(rf"\b(?:with|in)\s+(?:the\s+|a\s+|an\s+)?{_TOPIC}")
_TOPIC_AFTER = re.compile(
    rf"\b(?:on|in|with|of|around|up on|up|about|your|explained|explain|show|demonstrate"
    rf"|lacked|lacking|missing|to see)\s+"
    rf"(?:your\s+|the\s+|a\s+|an\s+|more\s+)?{_TOPIC}",
)
# Topic words to goal kinds, first match wins.
_KIND_BY_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind)
    for pattern, kind in (
        (r"\b(?:cv|resume|résumé|cover letter|application)\b", "application_review"),
        (r"\bportfolio|case stud", "portfolio_piece"),
        (r"\bcertif", "certification"),
        (
            r"\b(?:communicat|present|stor(?:y|ies)|behaviou?ral|star\b|explain|articulat)",
            "interview_stories",
        ),
        (r"\b(?:interview|whiteboard|system design|design round|live coding)", "mock_interview"),
        (r"\b(?:read|book|paper|article)", "reading"),
        (r"\b(?:hands-on|experience with|project|production|built|build)", "practice_project"),
        (r"\b(?:course|fundamentals|theory|concepts?)\b", "course"),
    )
)


@dataclass(frozen=True)
class Point:
    quote: str
    topic: str
    kind: str


def split_sentences(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    flat = "\n".join(lines)
    return [" ".join(part.split()) for part in _SENTENCE.split(flat) if part and part.strip()]


def extract_points(text: str) -> list[Point]:
    """The actionable sentences of an answer, in order, each with a topic and a goal kind."""
    points = []
    for sentence in split_sentences(text):
        if len(sentence) < 12 or sentence.endswith("?") or _PLEASANTRY.match(sentence):
            continue
        if not _ACTIONABLE.search(sentence):
            continue
        points.append(Point(sentence[:500], topic_of(sentence), kind_of(sentence)))
    return points


def topic_of(sentence: str) -> str:
    cue = _ACTIONABLE.search(sentence)
    rest = sentence[cue.start() :] if cue else sentence
    found = _TOPIC_WITH.search(rest) if re.search(r"experience\s+with", rest) else None
    found = found or _TOPIC_AFTER.search(rest)
    topic = found.group("topic") if found else ""
    topic = re.sub(r"[.,;:!]+$", "", topic).strip()
    return topic[:80] or "what they pointed out"


def kind_of(sentence: str) -> str:
    for pattern, kind in _KIND_BY_WORDS:
        if pattern.search(sentence):
            return kind
    return "skill_drill"


@dataclass(frozen=True)
class Answered:
    request_id: int
    ledger_id: int
    company: str | None
    sender: str | None
    points: int


def match_answers(session: Session, mailbox_id: int, user_addresses: set[str]) -> list[Answered]:
    """Find replies to our feedback requests, mark them answered, keep their points.
    Safe to repeat: an answered request is not matched again, points are unique."""
    requests = session.scalars(
        select(FeedbackRequest).where(
            FeedbackRequest.mailbox_id == mailbox_id,
            FeedbackRequest.state.in_(WAITING),
            FeedbackRequest.answered_ledger_id.is_(None),
        )
    ).all()
    if not requests:
        return []
    by_thread: dict[str, FeedbackRequest] = {}
    for request in requests:
        rejection = session.get_one(LedgerEntry, request.ledger_id)
        for msg_id in (rejection.message_id, request.draft_message_id):
            if normal := normalise_message_id(msg_id):
                by_thread[normal] = request
    earliest = min(r.created_at for r in requests)
    candidates = session.scalars(
        select(LedgerEntry)
        .where(
            LedgerEntry.mailbox_id == mailbox_id,
            LedgerEntry.status == "recorded",
            LedgerEntry.recorded_at >= earliest,
            LedgerEntry.in_reply_to.is_not(None) | LedgerEntry.references.is_not(None),
        )
        .order_by(LedgerEntry.id)
    ).all()
    found = []
    for entry in candidates:
        if (entry.from_addr or "").lower() in user_addresses:
            continue
        thread = {*message_id_list(entry.in_reply_to), *(entry.references or ())}
        match = next((by_thread[i] for i in thread if i in by_thread), None)
        if match is None or match.answered_ledger_id is not None or entry.id == match.ledger_id:
            continue
        request = match
        request.state, request.answered_ledger_id = "answered", entry.id
        request.answered_at = request.updated_at = utcnow()
        entry.label = "feedback_reply"  # what it is, whatever the classifier thought
        points = extract_points(str((entry.verdict or {}).get("reply_text") or ""))
        for position, point in enumerate(points):
            session.add(
                FeedbackPoint(
                    request_id=request.id,
                    ledger_id=entry.id,
                    position=position,
                    quote=point.quote,
                    topic=point.topic,
                    kind=point.kind,
                )
            )
        sender = f"{entry.from_name} <{entry.from_addr}>" if entry.from_name else entry.from_addr
        found.append(Answered(request.id, entry.id, request.company, sender, len(points)))
    session.flush()
    return found
