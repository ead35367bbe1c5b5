"""The per-message step of watch_inbox: classify each new message, record what it is.

Steps are picklable (dataclass instances) because a big backlog is decided in a worker
process; the rules are compiled once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onward.tasks.classify import Rules, Verdict, classify, load_rules
from onward.tasks.classify.verdict import REVIEW_BAND
from onward.tasks.events import REJECTION_DETECTED
from onward.tasks.mail.decide import MessageHandler, StepResult
from onward.tasks.mail.message import Message

if TYPE_CHECKING:
    from onward.config.settings import Settings
    from onward.tasks.mail.accounts import Account


# The event payload is stored as JSON and emitted to Prefect: text from mail is capped here.
PAYLOAD_TEXT = 500
MAX_RECIPIENTS = 20


def _bounded(value: str | None) -> str | None:
    return value[:PAYLOAD_TEXT] if value else value


@lru_cache(maxsize=4)
def _rules(rules_file: str | None) -> Rules:
    return load_rules(Path(rules_file) if rules_file else None)


@dataclass(frozen=True)
class ClassifyStep:
    """Classify a message; a rejection also becomes a ``rejection.detected`` event."""

    user_addresses: tuple[str, ...] = ()
    rules_file: str | None = None
    review_band: tuple[float, float] = REVIEW_BAND

    def __call__(self, message: Message) -> StepResult:
        verdict = classify(
            message,
            rules=_rules(self.rules_file),
            user_addresses=self.user_addresses,
            review_band=self.review_band,
        )
        events: tuple[tuple[str, dict[str, Any]], ...] = ()
        if verdict.is_rejection:
            events = ((REJECTION_DETECTED, rejection_payload(message, verdict)),)
        kept = verdict.to_dict()
        reply = reply_text(message, self.user_addresses)
        if reply:
            kept["reply_text"] = reply
        return StepResult(
            label=verdict.label,
            confidence=verdict.confidence,
            verdict=kept,
            events=events,
        )


# What is kept of a reply's own words: enough for the feedback a hiring manager writes.
REPLY_TEXT_LIMIT = 8000


def reply_text(message: Message, user_addresses: tuple[str, ...]) -> str | None:
    """The new text of a reply from someone else (quoted mail removed), kept so an answer
    to a feedback request can be read for its points later; other mail keeps no text."""
    if not (message.in_reply_to or message.references) or message.from_ is None:
        return None
    if message.from_.addr.lower() in user_addresses:
        return None
    text = (message.new_text or message.text).strip()
    return text[:REPLY_TEXT_LIMIT] or None


def rejection_payload(message: Message, verdict: Verdict) -> dict[str, Any]:
    """What the reactions need to know about a rejection, without reading the mail again."""
    return {
        "message_id": message.message_id,
        "key": message.key,
        "subject": message.subject[:PAYLOAD_TEXT],
        "reply_to": [
            {"name": a.name[:PAYLOAD_TEXT], "addr": a.addr}
            for a in message.reply_to[:5]
            if len(a.addr) <= PAYLOAD_TEXT  # a longer one is nobody to reply to
        ],
        # Where it was delivered, first the most precise: the person's address on this channel.
        "recipients": list(
            dict.fromkeys(
                a.addr
                for a in (*message.delivered_to, *message.to, *message.cc)[:MAX_RECIPIENTS]
                if len(a.addr) <= PAYLOAD_TEXT
            )
        ),
        "company": _bounded(verdict.company),
        "role": _bounded(verdict.role),
        "contact_name": _bounded(verdict.contact_name),
        "contact_addr": _bounded(verdict.contact_addr),
        "sender_kind": verdict.sender_kind,
        "confidence": verdict.confidence,
        "stage": verdict.stage,
        "borderline": verdict.borderline,
        "reasons": [r.to_dict() for r in verdict.reasons[:5]],
    }


def message_step(settings: Settings, account: Account) -> MessageHandler:
    """The step for new messages of ``account``: the classifier, with the user's rules."""
    addresses = {a.lower() for a in settings.user.addresses}
    if account.address:
        addresses.add(account.address.lower())
    rules_file = settings.classifier_rules_file
    return ClassifyStep(
        user_addresses=tuple(sorted(addresses)),
        rules_file=str(rules_file) if rules_file else None,
        review_band=(settings.classifier.review_low, settings.classifier.review_high),
    )
