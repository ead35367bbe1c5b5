"""Measure the classifier on labelled mail: rejection precision, recall, F1, confusion.

Inputs are labelled JSONL files (schema in ``corpus/README.md``) and ``.mbox`` files,
whose messages all count as ordinary mail that must not be taken for a rejection.
"""

from __future__ import annotations

import json
import mailbox
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onward.tasks.classify import LABELS, Rules, Verdict, classify, load_rules, message_from_text
from onward.tasks.errors import ConfigError, MalformedMessageError
from onward.tasks.mail.message import Message

REJECTION = "rejection"
NOT_REJECTION = "not_rejection"
ORDINARY = "ordinary"  # rows from .mbox files: not a rejection, and not job mail either


@dataclass(frozen=True, slots=True)
class LabelledMessage:
    """One message with its true label, ready to classify."""

    id: str
    source: str
    truth: str  # rejection | not_rejection | ordinary
    subclass: str | None
    message: Message


@dataclass(frozen=True, slots=True)
class Miss:
    """A message the classifier got wrong on the rejection question."""

    id: str
    source: str
    truth: str
    subclass: str | None
    predicted: str
    confidence: float
    evidence: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "truth": self.truth,
            "subclass": self.subclass,
            "predicted": self.predicted,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
        }


@dataclass
class SourceCounts:
    rows: int = 0
    rejections: int = 0
    false_alarms: int = 0
    misses: int = 0


@dataclass
class Report:
    """Counts for rejection-vs-not, a confusion table, and every mistake."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    skipped_ambiguous: int = 0
    unreadable: int = 0
    # (true label, predicted label) -> count
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    sources: dict[str, SourceCounts] = field(default_factory=dict)
    mistakes: list[Miss] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def ordinary_rows(self) -> int:
        return sum(n for (truth, _), n in self.confusion.items() if truth == ORDINARY)

    @property
    def ordinary_false_alarms(self) -> int:
        return self.confusion[(ORDINARY, REJECTION)]

    def add(self, item: LabelledMessage, verdict: Verdict) -> None:
        predicted_rejection = verdict.label == REJECTION
        true_rejection = item.truth == REJECTION
        counts = self.sources.setdefault(item.source, SourceCounts())
        counts.rows += 1
        counts.rejections += true_rejection
        self.confusion[(item.truth, verdict.label)] += 1
        if predicted_rejection and true_rejection:
            self.tp += 1
        elif predicted_rejection:
            self.fp += 1
            counts.false_alarms += 1
        elif true_rejection:
            self.fn += 1
            counts.misses += 1
        else:
            self.tn += 1
        if predicted_rejection != true_rejection:
            self.mistakes.append(
                Miss(
                    id=item.id,
                    source=item.source,
                    truth=item.truth,
                    subclass=item.subclass,
                    predicted=verdict.label,
                    confidence=verdict.confidence,
                    evidence=tuple(f"{r.rule}: {r.phrase!r}" for r in verdict.reasons[:4]),
                )
            )

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``onward eval --json``)."""
        return {
            "rejection": {
                "precision": round(self.precision, 4),
                "recall": round(self.recall, 4),
                "f1": round(self.f1, 4),
                "tp": self.tp,
                "fp": self.fp,
                "fn": self.fn,
                "tn": self.tn,
            },
            "ordinary": {"rows": self.ordinary_rows, "false_alarms": self.ordinary_false_alarms},
            "skipped_ambiguous": self.skipped_ambiguous,
            "unreadable": self.unreadable,
            "confusion": [
                {"truth": truth, "predicted": predicted, "count": n}
                for (truth, predicted), n in sorted(self.confusion.items())
            ],
            "sources": {
                name: {
                    "rows": c.rows,
                    "rejections": c.rejections,
                    "false_alarms": c.false_alarms,
                    "misses": c.misses,
                }
                for name, c in sorted(self.sources.items())
            },
            "mistakes": [m.to_dict() for m in self.mistakes],
        }


def read_labelled_jsonl(path: Path, report: Report | None = None) -> Iterator[LabelledMessage]:
    """Rows of a labelled JSONL file; ambiguous rows are counted in ``report`` and skipped."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                label = row["label"]
                body = row["body"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"{path}:{number}: not a labelled row ({exc}); see corpus/README.md"
                ) from exc
            if label not in (REJECTION, NOT_REJECTION):
                raise ConfigError(f"{path}:{number}: label must be rejection or not_rejection")
            if row.get("ambiguous"):
                if report is not None:
                    report.skipped_ambiguous += 1
                continue
            row_id = str(row.get("id") or f"{path.name}:{number}")
            yield LabelledMessage(
                id=row_id,
                source=path.name,
                truth=label,
                subclass=row.get("subclass"),
                message=message_from_text(row.get("subject"), row.get("from"), body, key=row_id),
            )


def read_mbox(path: Path, report: Report | None = None) -> Iterator[tuple[str, Message]]:
    """Each parseable message of an mbox file with an id ``<file>#<index>``."""
    from onward.tasks.mail.parse import parse_message

    box = mailbox.mbox(path, create=False)
    try:
        for index, key in enumerate(box.iterkeys()):
            try:
                yield f"{path.name}#{index}", parse_message(box.get_bytes(key))
            except MalformedMessageError:
                if report is not None:
                    report.unreadable += 1
    finally:
        box.close()


def iter_labelled(paths: Iterable[Path], report: Report | None = None) -> Iterator[LabelledMessage]:
    """Labelled messages from JSONL files and (all ordinary) mbox files, in order."""
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        if path.suffix == ".mbox":
            for msg_id, message in read_mbox(path, report):
                yield LabelledMessage(msg_id, path.name, ORDINARY, None, message)
        elif path.suffix in (".jsonl", ".json"):
            yield from read_labelled_jsonl(path, report)
        else:
            raise ConfigError(f"{path}: expected a labelled .jsonl file or an .mbox file")


def evaluate(
    paths: Sequence[Path],
    *,
    rules: Rules | None = None,
    user_addresses: Iterable[str] = (),
) -> Report:
    """Classify every labelled message in ``paths`` and count right and wrong."""
    rules = rules if rules is not None else load_rules()
    mine = tuple(user_addresses)
    report = Report()
    for item in iter_labelled(paths, report):
        report.add(item, classify(item.message, rules=rules, user_addresses=mine))
    return report


def format_report(report: Report, *, show_mistakes: int = 20) -> str:
    """The report as text for a terminal: scores, the confusion table, then mistakes."""
    lines = [
        f"rejection  precision {report.precision:.3f}  recall {report.recall:.3f}  "
        f"F1 {report.f1:.3f}   (tp {report.tp}, fp {report.fp}, fn {report.fn}, tn {report.tn})",
    ]
    if report.ordinary_rows:
        lines.append(
            f"ordinary mail: {report.ordinary_false_alarms} of {report.ordinary_rows} "
            "taken for a rejection"
        )
    if report.skipped_ambiguous or report.unreadable:
        lines.append(
            f"skipped: {report.skipped_ambiguous} ambiguous, {report.unreadable} unreadable"
        )
    truths = [
        t for t in (REJECTION, NOT_REJECTION, ORDINARY) if any(k[0] == t for k in report.confusion)
    ]
    predicted = [lb for lb in LABELS if any(k[1] == lb for k in report.confusion)]
    width = max([len(t) for t in truths] + [10])
    header = (
        "truth \\ predicted".ljust(width + 2)
        + "".join(f"{_short(p):>9}" for p in predicted)
        + f"{'total':>9}"
    )
    lines += ["", header]
    for truth in truths:
        row = [report.confusion[(truth, p)] for p in predicted]
        lines.append(truth.ljust(width + 2) + "".join(f"{n:>9}" for n in row) + f"{sum(row):>9}")
    lines += ["", "per file: rows / rejections / false alarms / misses"]
    for name, c in sorted(report.sources.items()):
        lines.append(f"  {name}: {c.rows} / {c.rejections} / {c.false_alarms} / {c.misses}")
    if report.mistakes and show_mistakes:
        lines += ["", f"mistakes ({len(report.mistakes)}):"]
        lines += [f"  {format_miss(m)}" for m in report.mistakes[:show_mistakes]]
        if len(report.mistakes) > show_mistakes:
            lines.append(f"  ... {len(report.mistakes) - show_mistakes} more (--json lists all)")
    return "\n".join(lines)


def format_miss(m: Miss) -> str:
    """One mistake on one line: what it was, what it was taken for, and why."""
    kind = "false alarm" if m.predicted == REJECTION else "missed"
    sub = f"/{m.subclass}" if m.subclass else ""
    return f"{kind}: {m.id} ({m.truth}{sub}) -> {m.predicted} {m.confidence:.2f}" + (
        f"  [{'; '.join(m.evidence)}]" if m.evidence else ""
    )


_SHORT = {
    "application_received": "received",
    "recruiter_outreach": "outreach",
    "feedback_reply": "feedback",
    "assessment": "assess",
    "rejection": "reject",
    "interview": "interv",
    "job_alert": "alert",
}


def _short(label: str) -> str:
    return _SHORT.get(label, label)
