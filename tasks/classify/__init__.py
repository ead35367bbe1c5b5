"""Rejection detection: explainable rules as data, scored per sentence, with the evidence.

``verdict`` holds what comes out, ``rules`` and ``patterns`` what goes in, ``scoring`` the
classifier itself, ``extraction`` the company, role and sender, ``evaluate`` the scores.
"""

from onward.tasks.classify.rules import DEFAULT_RULES_FILE, Rules, load_rules
from onward.tasks.classify.scoring import classify, classify_text, message_from_text
from onward.tasks.classify.verdict import (
    LABELS,
    REVIEW_BAND,
    STAGES,
    Reason,
    SenderKind,
    Stage,
    Verdict,
)

__all__ = [
    "DEFAULT_RULES_FILE",
    "LABELS",
    "REVIEW_BAND",
    "STAGES",
    "Reason",
    "Rules",
    "SenderKind",
    "Stage",
    "Verdict",
    "classify",
    "classify_text",
    "load_rules",
    "message_from_text",
]
