"""Classifier speed: ``classify`` against a keyword-list classifier, same texts, same run.

    /work/venv/bin/python tests/bench/classify_speed.py [--rounds 3]

Loads every labelled JSONL row and every mbox message of ``../shared/corpus`` (parsed
once, outside the timing), then on one core alternates:
- baseline: the open-source job trackers' approach, lower-case the subject and text and
  look for any of a list of rejection keywords;
- onward: ``classify`` with the packaged rules.
Prints messages per second for both, the ratio (target: onward >= 2,000 messages/s), and
the keyword list's rejection precision / recall on the labelled rows for comparison.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from onward.tasks.classify import classify, load_rules, message_from_text
from onward.tasks.mail.message import Message
from onward.tasks.mail.parse import parse_message

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
KEYWORDS = (
    "unfortunately",
    "regret to inform",
    "other candidates",
    "not moving forward",
    "not be moving forward",
    "decided not to",
    "not selected",
    "position has been filled",
    "another candidate",
    "unable to offer",
)


def keyword_is_rejection(message: Message) -> bool:
    text = f"{message.subject}\n{message.text}".lower()
    return any(k in text for k in KEYWORDS)


def load_corpus() -> tuple[list[Message], list[bool | None]]:
    """Messages and truth (True = rejection, None = ordinary mail)."""
    messages: list[Message] = []
    truth: list[bool | None] = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            row = json.loads(line)
            if row.get("ambiguous"):
                continue
            messages.append(message_from_text(row.get("subject"), row.get("from"), row["body"]))
            truth.append(row["label"] == "rejection")
    for path in sorted((CORPUS / "ordinary_mail").glob("*.mbox")):
        box = mailbox.mbox(path, create=False)
        for key in box.iterkeys():
            messages.append(parse_message(box.get_bytes(key)))
            truth.append(None)
        box.close()
    return messages, truth


def rate(fn: Callable[[Message], object], messages: Sequence[Message], rounds: int) -> float:
    """Best messages per second of CPU time over ``rounds`` passes."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for message in messages:
            fn(message)
        best = min(best, time.process_time() - start)
    return len(messages) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"skipped: the corpus is not at {CORPUS}")
        return 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    messages, truth = load_corpus()
    rules = load_rules()

    def onward(message: Message) -> object:
        return classify(message, rules=rules)

    base = rate(keyword_is_rejection, messages, args.rounds)
    ours = rate(onward, messages, args.rounds)
    print(f"corpus: {len(messages)} messages, one core, best of {args.rounds} (CPU time)")
    print(f"baseline keyword list: {base:10,.0f} messages/s")
    print(f"onward classify:       {ours:10,.0f} messages/s   (target >= 2,000)")
    print(f"ratio onward/baseline: {ours / base:10.3f}")

    tp = fp = fn = 0
    ordinary_alarms = 0
    for message, is_rejection in zip(messages, truth, strict=True):
        said = keyword_is_rejection(message)
        if is_rejection is None:
            ordinary_alarms += said
        elif said and is_rejection:
            tp += 1
        elif said:
            fp += 1
        elif is_rejection:
            fn += 1
    print(
        f"keyword list quality: precision {tp / max(1, tp + fp):.3f}, "
        f"recall {tp / max(1, tp + fn):.3f}, ordinary false alarms {ordinary_alarms}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
