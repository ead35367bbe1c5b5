"""Decide what a job-search mail is (rejection, interview, offer, ...) and say why.

Pure and deterministic: phrase rules from ``config/classifier.toml`` (plus the user's own
rules file) are weighed per sentence of the subject and the message's *new* text, with
contexts that cancel them (``reading.py``); the learned model (``learned.py``) weighs the
words and those scores and decides rejection or not; no network. The verdict carries the
phrases that decided, with their offsets, so a person can check it.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Collection, Mapping

from onward.tasks.classify.evidence import drop_overlaps, ordered
from onward.tasks.classify.extraction import _extract_company_role, _sender, _signature_name
from onward.tasks.classify.reading import _read, _Reading
from onward.tasks.classify.rules import (
    Rules,
    _Compiled,
    load_rules,
)
from onward.tasks.classify.stage import rejection_stage
from onward.tasks.classify.verdict import (
    _TIE_ORDER,
    LABELS,
    REVIEW_BAND,
    LabelPolicy,
    Reason,
    Verdict,
    Where,
)
from onward.tasks.mail.message import Address, Message


def classify(
    message: Message,
    *,
    rules: Rules | None = None,
    user_addresses: Collection[str] = (),
    review_band: tuple[float, float] = REVIEW_BAND,
) -> Verdict:
    """Label one message with its evidence; the same message and rules give the same verdict.

    ``review_band`` is (low, high): a rejection with confidence below ``low`` is not called
    one, one in [low, high) is ``borderline`` (for a person to confirm), one at or above
    ``high`` is certain. Mail that only a word the model learnt let through the gate (no
    listed hiring word) is a rejection only at or above ``high``.
    """
    rules = rules if rules is not None else load_rules()
    compiled = rules._compiled
    reading = _read(message, rules)
    raw_subject, raw_body = reading.raw_subject, reading.raw_body
    subject, body = reading.subject, reading.body
    lowered_subject, lowered_body = reading.lowered_subject, reading.lowered_body
    reasons, scores, is_reply = reading.reasons, reading.scores, reading.is_reply
    job_mail = reading.job_mail
    from_user = _from_user(message, user_addresses)
    eligible: list[str] = []
    for label in LABELS:
        policy = compiled.policies.get(label, LabelPolicy())
        if scores[label] < policy.min_score:
            continue
        if policy.requires_reply and not is_reply:
            continue
        context = compiled.context.get(label)
        if context is not None and not (context.search(body) or context.search(subject)):
            continue
        if label == "rejection" and from_user is not None:
            continue
        eligible.append(label)

    beaten = {
        lost for lb in eligible for lost in compiled.policies.get(lb, LabelPolicy()).wins_over
    }
    contenders = [lb for lb in eligible if lb not in beaten] or eligible
    low, high = review_band
    if reading.learned_gate_only:
        # Mail that names no job (everyday mail in a language the hiring words miss, say)
        # was opened by a word the model learnt, not by its subject: it is a rejection
        # when the model is sure, and otherwise ordinary mail, whatever rules it matched.
        contenders = [lb for lb in contenders if lb == "rejection"]
        low = high
    learned: float | None = None
    if rules.model is not None and job_mail:
        # The model weighs the words and the rules' scores together and has the last
        # word on rejection or not; the rules still name the other labels.
        features = reading.features()
        learned, deciding = rules.model.score(features)
        contenders = [lb for lb in contenders if lb != "rejection"]
        rules_say = (
            scores["rejection"] >= compiled.policies.get("rejection", LabelPolicy()).min_score
        )
        if rules_say and any(r.label == "rejection" and r.rule in rules.own_rules for r in reasons):
            # The person's own rule says rejection: the model may only add confidence.
            learned = max(
                learned, _confidence("rejection", scores, compiled, rules.confidence_scale)
            )
        said = (
            learned >= low
            and from_user is None
            and (rules_say or not _vetoed(compiled, subject, body))
        )
        where_span = rules.model.evidence(features, deciding) if said else None
        if where_span is not None and not rules_say and _pending(where_span, reading, compiled):
            said = False  # the sentence that decided waits on something: no decision yet
        if said:
            contenders = ["rejection"]
            if where_span is not None:
                reasons.append(
                    _learned_reason(
                        where_span,
                        raw_subject
                        if len(raw_subject) == len(lowered_subject)
                        else lowered_subject,
                        raw_body if len(raw_body) == len(lowered_body) else lowered_body,
                        learned,
                    )
                )
    label = max(contenders, key=lambda lb: (scores[lb], -_TIE_ORDER[lb]), default="other")
    confidence = (
        round(min(max(learned, 0.01), 0.99), 3)
        if learned is not None and label == "rejection"
        else _confidence(label, scores, compiled, rules.confidence_scale)
    )
    if label == "rejection" and confidence < low:
        # Too weak to call a rejection: the next contender, or nothing.
        scores["rejection"] = 0.0
        rest = [lb for lb in contenders if lb != "rejection"]
        label = max(rest, key=lambda lb: (scores[lb], -_TIE_ORDER[lb]), default="other")
        confidence = _confidence(label, scores, compiled, rules.confidence_scale)

    chosen = drop_overlaps(r for r in reasons if r.label == label)
    runner_up = max(
        (lb for lb in LABELS if lb != label and scores[lb] > 0),
        key=lambda lb: (scores[lb], -_TIE_ORDER[lb]),
        default=None,
    )
    # A rejection lists only what says rejection: "thank you for applying" is never
    # shown as a reason for one.
    against = [r for r in reasons if r.label == runner_up and label != "rejection"]
    if from_user is not None:
        chosen.insert(0, Reason(from_user, "from.user", label, 0.0, "from", 0, len(from_user)))
    listed = ordered(chosen) + ordered(against)

    sender = _sender(message, compiled)
    # Company and role only matter for job mail; skipping them keeps ordinary mail cheap.
    company, role = (
        _extract_company_role(subject, body, message, sender, rules)
        if label != "other"
        else (None, None)
    )
    return Verdict(
        label=label,
        confidence=confidence,
        reasons=tuple(listed[:10]),
        company=company,
        role=role,
        contact_name=sender.contact_name or _signature_name(body, sender.kind),
        contact_addr=sender.contact_addr,
        sender_kind=sender.kind,
        ats=sender.ats,
        stage=rejection_stage(subject, body, compiled) if label == "rejection" else "unknown",
        borderline=label == "rejection" and confidence < high,
    )


def _vetoed(compiled: _Compiled, subject: str, body: str) -> bool:
    """Whether the candidate is the one deciding (``model_veto``): only asked of mail the
    model calls a rejection, since the search reads the whole text."""
    veto = compiled.model_veto
    return veto is not None and (veto.search(body) is not None or veto.search(subject) is not None)


def _pending(span: tuple[str, int, int], reading: _Reading, compiled: _Compiled) -> bool:
    """Whether the model's evidence sentence says the outcome waits on something ("we
    cannot move your application forward until you upload your transcript")."""
    if compiled.model_veto_sentence is None:
        return False
    where, start, end = span
    text = reading.lowered_subject if where == "subject" else reading.lowered_body
    return compiled.model_veto_sentence.search(text, start, end) is not None


def _learned_reason(
    where_span: tuple[str, int, int], subject: str, body: str, probability: float
) -> Reason:
    """The model's evidence, quoted from ``subject`` or ``body``: as written when
    lower-casing kept the length (offsets then agree), else as read."""
    where, start, end = where_span
    text = subject if where == "subject" else body
    weight = round(4.0 * probability, 2)
    field: Where = "subject" if where == "subject" else "body"
    return Reason(text[start:end], "learned", "rejection", weight, field, start, end)


def _confidence(
    label: str, scores: Mapping[str, float], compiled: _Compiled, scale: float
) -> float:
    """A calibrated-ish confidence from how far the winner clears its bar and its rivals."""

    def sigmoid(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    if (
        label == "other"
        and scores["other"] < compiled.policies.get("other", LabelPolicy()).min_score
    ):
        # Nothing won: the closer any label came to its bar, the less sure "other" is.
        gap = min(
            compiled.policies.get(lb, LabelPolicy()).min_score - scores[lb]
            for lb in LABELS
            if lb != "other"
        )
        value = sigmoid((gap + 0.5) / scale)
    else:
        top = scores[label]
        rival = max((s for lb, s in scores.items() if lb != label), default=0.0)
        bar = compiled.policies.get(label, LabelPolicy()).min_score
        value = sigmoid(min(top - bar + 1.0, top - rival) / scale)
    return round(min(max(value, 0.01), 0.99), 3)


def _from_user(message: Message, user_addresses: Collection[str]) -> str | None:
    if not user_addresses or message.from_ is None:
        return None
    mine = {a.strip().lower() for a in user_addresses}
    return message.from_.addr if message.from_.addr.lower() in mine else None


# --------------------------------------------------------------------------------------
# Sender and extraction
# --------------------------------------------------------------------------------------


def message_from_text(
    subject: str | None,
    sender: str | None,
    body: str,
    *,
    key: str = "",
    headers: Mapping[str, str] | None = None,
    in_reply_to: str | None = None,
) -> Message:
    """A Message built from plain fields, with quoted older mail split off the body."""
    from onward.tasks.mail.parse import split_quoted

    from_: Address | None = None
    if sender:
        name, addr = email.utils.parseaddr(sender)
        if addr or name:
            from_ = Address(name=name, addr=addr.lower())
    new_text, quoted = split_quoted(body)
    return Message(
        key=key,
        message_id=None,
        subject=subject or "",
        from_=from_,
        text=body,
        new_text=new_text,
        quoted_text=quoted,
        in_reply_to=in_reply_to,
        headers=dict(headers or {}),
    )


def classify_text(
    subject: str | None,
    sender: str | None,
    body: str,
    *,
    key: str = "",
    rules: Rules | None = None,
    user_addresses: Collection[str] = (),
    headers: Mapping[str, str] | None = None,
    review_band: tuple[float, float] = REVIEW_BAND,
) -> Verdict:
    """``classify`` for a subject, a From line and a body, as in a JSONL row."""
    message = message_from_text(subject, sender, body, key=key, headers=headers)
    return classify(message, rules=rules, user_addresses=user_addresses, review_band=review_band)
