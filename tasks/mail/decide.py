"""Deciding about fetched messages: parse each, run the per-message step, build ledger rows.

Kept free of database and network imports: a big backlog is decided in a worker process,
and this module is all that process needs to import.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from onward.tasks.errors import MalformedMessageError
from onward.tasks.mail.mailbox import Fetched
from onward.tasks.mail.message import Message
from onward.tasks.mail.parse import parse_message

log = logging.getLogger("onward.sync")


@dataclass(frozen=True)
class StepResult:
    """What the per-message step decided; the sync records it with the message."""

    label: str | None = None
    confidence: float | None = None
    verdict: dict[str, Any] | None = None
    # Domain events to record with the message, as (kind, payload); unique per message.
    events: tuple[tuple[str, dict[str, Any]], ...] = ()


# The per-message step (the classifier, later more). It only decides: it is pure, so a
# batch can be decided first and written in one statement.
MessageHandler = Callable[[Message], StepResult]


def warm_up() -> None:
    """Nothing: submitted first so the worker process starts before it is needed."""


def record_only(message: Message) -> StepResult:
    """The step that decides nothing: the message is only recorded."""
    return StepResult()


Decided = tuple[list[dict[str, Any]], list[tuple[str, str, dict[str, Any]]], int]


def decide_batch(
    mailbox_id: int,
    uidvalidity: int,
    fetched: list[Fetched],
    handler: MessageHandler | None,
) -> Decided:
    """Parse and run the step for each message: ledger rows, (key, kind, payload) events,
    and how many messages repeated one already in the batch."""
    rows: dict[str, dict[str, Any]] = {}
    duplicates = 0
    events: list[tuple[str, str, dict[str, Any]]] = []
    for item in fetched:
        row = parse_row(item, uidvalidity)
        if row["status"] == "recorded" and handler is not None and "message" in row:
            try:
                result = handler(row["message"])
            except Exception as exc:
                log.exception("the message step failed for %s", row["key"])
                row["status"], row["error"] = "failed", f"{type(exc).__name__}: {exc}"
            else:
                row["label"], row["confidence"] = result.label, result.confidence
                row["verdict"] = result.verdict
                events.extend((row["key"], kind, payload) for kind, payload in result.events)
        row.pop("message", None)
        row.update(mailbox_id=mailbox_id, uidvalidity=uidvalidity, uid=item.uid)
        if row["key"] in rows:  # the same message twice in one batch
            duplicates += 1
            continue
        rows[row["key"]] = row
    return list(rows.values()), events, duplicates


# What the ledger's String(n) columns hold; anything longer from mail is cut or left out
# here, at the edge, the same way on SQLite and PostgreSQL.
MAX_ADDRESS = 320
MAX_TEXT = 2000
MAX_REFERENCES = 20


def parse_row(item: Fetched, uidvalidity: int = 0) -> dict[str, Any]:
    try:
        message = parse_message(item.raw)
    except MalformedMessageError as exc:
        reason = str(exc)
    except Exception as exc:  # a parser bug must not stop the watch either
        log.exception("parsing UID %s failed", item.uid)
        reason = f"parser error: {exc!r}"
    else:
        sender = message.from_
        # An address longer than any mail server delivers to is no one to reply to.
        usable = sender is not None and len(sender.addr) <= MAX_ADDRESS
        return {
            "message": message,
            "key": message.key,
            "message_id": message.message_id,
            "status": "recorded",
            "error": None,
            "subject": message.subject[:MAX_TEXT],
            "from_addr": sender.addr if sender is not None and usable else None,
            "from_name": sender.name[:MAX_TEXT] if sender is not None else None,
            "sent_at": message.date,
            "in_reply_to": message.in_reply_to,
            "references": list(message.references[-MAX_REFERENCES:]),
        }
    log.warning("UID %s is malformed and was skipped: %s", item.uid, reason)
    return {
        "key": malformed_key(item, uidvalidity),
        "status": "malformed",
        "error": reason[:MAX_TEXT],
    }


def malformed_key(item: Fetched, uidvalidity: int) -> str:
    """The ledger key of a message that could not be parsed: from its own bytes, so a
    renumbered folder does not record it twice; from its UID when onward holds none of its
    bytes (an IMAP message without a single header field: only its text was fetchable)."""
    if not item.raw.strip():
        return f"uid:{uidvalidity}:{item.uid}"
    return "raw:" + hashlib.sha256(item.raw[:8192]).hexdigest()
