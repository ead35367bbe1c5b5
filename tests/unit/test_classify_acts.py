"""Issue 11: speech acts over unseen wordings, stage, borderline band, readable evidence,
the lexicon as data, and leave-one-source-out evaluation."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pytest

from onward.deployments import classify_commands
from onward.tasks.classify import REVIEW_BAND, STAGES, classify, classify_text, load_rules
from onward.tasks.classify.evidence import drop_overlaps
from onward.tasks.classify.holdout import fit_bar, format_folds, leave_one_source_out
from onward.tasks.classify.step import rejection_payload
from onward.tasks.classify.train import without_model
from onward.tasks.classify.verdict import Reason
from onward.tasks.errors import ConfigError
from onward.tasks.mail.parse import parse_message
from tests.support import paths

DATA = paths.ROOT / "tests" / "data" / "classify"
FIXTURES = paths.FIXTURES / "classify"

# Wordings written for these tests, none of them in tests/data/classify: each speech act
# in a phrasing the rules do not list.
UNSEEN_REJECTIONS = [
    "Thanks for applying for the Analyst role. We have opted against moving your candidacy "
    "to interviews.",
    "Thank you for your application. The team won't be progressing you to the next step.",
    "Thanks for your time on the Analyst role interviews. We decided to move on with "
    "another finalist.",
    "Thank you for applying. The Analyst vacancy has since been withdrawn by the business.",
    "Thanks for applying. We are no longer recruiting for the Analyst position.",
    "Thank you for applying for the Analyst role. Your background doesn't align with what "
    "this position needs.",
]
UNSEEN_NOT_REJECTIONS = [
    "Thanks for applying for the Analyst role. We cannot move your application forward "
    "until you upload your transcript.",
    "Hi, I'm sorry you have decided not to continue with your application for the Analyst "
    "role. Your candidacy is now withdrawn.",
    "Thanks for your application for the Analyst role. We are still interviewing other "
    "candidates and will decide next week.",
    "Thanks for applying for the Analyst role. Apply soon, before the position is filled!",
    "Hi Jo, thank you for the offer for the Analyst role, but I have decided not to move "
    "forward with your company.",
]


@pytest.mark.parametrize("text", UNSEEN_REJECTIONS)
def test_speech_acts_catch_wordings_no_rule_lists(text: str) -> None:
    assert classify_text(None, None, text).is_rejection
    # The acts alone catch it: with every other rejection rule switched off.
    rules = load_rules()
    acts_only = dataclasses.replace(
        rules,
        rules=tuple(r for r in rules.rules if r.label != "rejection" or r.id.startswith("act.")),
    )
    verdict = classify_text(None, None, text, rules=acts_only)
    assert verdict.is_rejection, [r.to_dict() for r in verdict.reasons]


@pytest.mark.parametrize("text", UNSEEN_NOT_REJECTIONS)
def test_speech_acts_hold_back_on_their_traps(text: str) -> None:
    verdict = classify_text(None, None, text)
    assert not verdict.is_rejection, [r.to_dict() for r in verdict.reasons]


# --- stage -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "text", "stage"),
    [
        (
            None,
            "Thanks for applying to the Analyst role. We won't be moving forward with "
            "your application.",
            "applied",
        ),
        (
            None,
            "Thanks for applying. We will not be inviting you to interview for the Analyst role.",
            "applied",
        ),
        (
            None,
            "Thank you for completing the coding challenge for the Analyst role. We have "
            "decided not to progress your application.",
            "screen",
        ),
        (
            None,
            "Thanks for the phone screen last week. We have decided to move forward with "
            "other candidates for the Analyst role.",
            "screen",
        ),
        (
            None,
            "Thank you for interviewing with us for the Analyst role. We have decided to "
            "move forward with other candidates.",
            "interview",
        ),
        (
            None,
            "Thanks for your time during the interviews. Unfortunately we won't be moving "
            "you on to the final round for the Analyst role.",
            "interview",
        ),
        (
            None,
            "Thank you for coming in for the onsite. We have decided not to extend an "
            "offer for the Analyst role.",
            "final",
        ),
        (
            "Your final interview",
            "We have decided to go with another candidate for the Analyst role.",
            "final",
        ),
        (None, "The Analyst position has been filled.", "unknown"),
    ],
)
def test_stage_of_a_rejection(subject: str | None, text: str, stage: str) -> None:
    verdict = classify_text(subject, None, text)
    assert verdict.is_rejection
    assert verdict.stage == stage
    assert verdict.to_dict()["stage"] == stage


def test_stage_is_unknown_for_what_is_not_a_rejection() -> None:
    verdict = classify_text(None, None, "We would like to invite you to a final interview.")
    assert not verdict.is_rejection
    assert verdict.stage == "unknown"
    assert set(STAGES) == {"applied", "screen", "interview", "final", "unknown"}


def test_rejection_payload_carries_stage_and_borderline() -> None:
    message = parse_message((FIXTURES / "rejection__ats_other_candidates.eml").read_bytes())
    verdict = classify(message)
    payload = rejection_payload(message, verdict)
    assert payload["stage"] == verdict.stage
    assert payload["borderline"] is verdict.borderline is False


# --- borderline band -------------------------------------------------------------------

WEAK = "Thanks for applying for the Analyst role. We don't think there is a strong fit."
STRONG = "Thanks for applying. We have decided to move forward with other candidates for the role."


def test_borderline_is_a_rejection_inside_the_band() -> None:
    # The rules alone: a lone mismatch is borderline (the model may be surer of it).
    rules, band = without_model(None), (0.35, 0.75)  # a band for the rules' scale
    weak = classify_text(None, None, WEAK, rules=rules, review_band=band)
    assert weak.is_rejection
    assert weak.borderline
    assert weak.to_dict()["borderline"] is True
    strong = classify_text(None, None, STRONG, rules=rules, review_band=band)
    assert strong.is_rejection
    assert not strong.borderline
    assert strong.confidence >= band[1]
    # With the model, its probability is the confidence and the default band applies.
    verdict = classify_text(None, None, STRONG)
    assert verdict.confidence >= REVIEW_BAND[1]
    assert not verdict.borderline


def test_below_the_band_is_not_a_rejection() -> None:
    verdict = classify_text(None, None, WEAK, review_band=(0.99, 0.995))
    assert not verdict.is_rejection
    assert not verdict.borderline


def test_default_band_splits_by_confidence() -> None:
    verdict = classify_text(None, None, WEAK)
    low, high = REVIEW_BAND
    assert verdict.borderline == (verdict.is_rejection and low <= verdict.confidence < high)


# --- readable evidence -----------------------------------------------------------------


def test_evidence_is_single_line_and_never_an_acknowledgement() -> None:
    body = (
        "Thank you for applying for the Analyst role.\n\nWe have decided not to move\n"
        "forward with your application."
    )
    verdict = classify_text("Thanks for applying", None, body)
    assert verdict.is_rejection
    assert all(r.label == "rejection" for r in verdict.reasons)
    assert not any("thank" in r.phrase.lower() for r in verdict.reasons)
    for reason in verdict.reasons:
        assert "\n" not in reason.quote
        assert reason.to_dict()["quote"] == reason.quote
    assert any("\n" in r.phrase for r in verdict.reasons)  # the text as written, wrapped


def test_overlapping_evidence_counts_once() -> None:
    def reason(rule: str, weight: float, start: int, end: int) -> Reason:
        return Reason("x" * (end - start), rule, "rejection", weight, "body", start, end)

    kept = drop_overlaps(
        [reason("a", 3.0, 0, 10), reason("b", 4.0, 5, 20), reason("c", 1.0, 30, 35)]
    )
    assert [r.rule for r in kept] == ["b", "c"]
    verdict = classify_text(None, None, STRONG)
    spans = [(r.start, r.end) for r in verdict.reasons if r.where == "body"]
    assert all(
        a_end <= b_start
        for (_, a_end), (b_start, _) in zip(sorted(spans), sorted(spans)[1:], strict=False)
    )


# --- lexicon as data -------------------------------------------------------------------


def test_user_lexicon_extends_a_word_class(tmp_path: Path) -> None:
    text = "Thanks for applying for the role. We will not be elevating your application."
    # The rules alone (the learned model reads more than the lexicon says).
    assert not classify_text(None, None, text, rules=without_model(None)).is_rejection
    user = tmp_path / "classifier.toml"
    base = load_rules()
    assert base.rules  # the packaged lexicon expanded without error
    user.write_text(
        "[lexicon]\nadvance = ['''mov(?:e|ing)''', '''elevat(?:e|ing)''']\n", encoding="utf-8"
    )
    extended = without_model(load_rules(user))
    assert classify_text(None, None, text, rules=extended).is_rejection


def test_unknown_lexicon_name_says_so(tmp_path: Path) -> None:
    user = tmp_path / "classifier.toml"
    user.write_text(
        "[[rule]]\nid='x'\nlabel='rejection'\npattern='''{nosuch} role'''\nweight=1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"\{nosuch\} is not in \[lexicon\]"):
        load_rules(user)


# --- project data and leave-one-source-out ---------------------------------------------


def test_project_data_rows_follow_the_corpus_schema() -> None:
    files = sorted(DATA.glob("*.jsonl"))
    assert len(files) >= 4
    keys = {"id", "label", "subclass", "subject", "from", "body", "ambiguous", "source"}
    ids: set[str] = set()
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert set(row) == keys, path
            assert row["label"] in ("rejection", "not_rejection")
            assert "written" in row["source"]
            assert row["id"] not in ids
            ids.add(row["id"])


def write(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"{path.stem}{i}", "label": label, "body": body}) + "\n"
            for i, (label, body) in enumerate(rows)
        ),
        encoding="utf-8",
    )
    return path


def test_leave_one_source_out_scores_each_file_with_a_bar_fitted_elsewhere(
    tmp_path: Path,
) -> None:
    a = write(
        tmp_path / "a.jsonl",
        [
            ("rejection", STRONG),
            ("rejection", "Thanks for applying. The Analyst position has been filled."),
            ("not_rejection", "We would like to invite you to an interview for the role."),
        ],
    )
    b = write(
        tmp_path / "b.jsonl",
        [
            ("rejection", "Thanks for applying. We will not move forward with your application."),
            ("rejection", "Thanks for applying. Have a nice day."),
            ("not_rejection", "hello"),
        ],
    )
    folds = leave_one_source_out([a, b], rules=without_model(None))
    assert [f.source for f in folds] == ["a.jsonl", "b.jsonl"]
    fa, fb = folds
    assert (fa.rejections, fa.tp, fa.fp, fa.fn) == (2, 2, 0, 0)
    assert (fb.rejections, fb.tp, fb.fp, fb.fn) == (2, 1, 0, 1)
    assert fb.recall == 0.5
    text = format_folds(folds, 0)
    assert "a.jsonl" in text
    assert "bar" in text


def test_fit_bar_prefers_recall_at_the_precision_floor() -> None:
    from onward.tasks.classify.evaluate import LabelledMessage
    from onward.tasks.classify.scoring import message_from_text

    items = [
        LabelledMessage(str(i), "s", truth, None, message_from_text(None, None, "x"))
        for i, truth in enumerate(["rejection", "rejection", "not_rejection"])
    ]
    predictions = {
        2.0: [True, True, True],  # recall 1, precision 0.67
        3.0: [True, True, False],  # recall 1, precision 1
        4.0: [True, False, False],  # recall 0.5
    }
    assert fit_bar(items, predictions) == 3.0


def test_cli_eval_leave_one_source_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.jsonl", [("rejection", STRONG), ("not_rejection", "hello")])
    b = write(tmp_path / "b.jsonl", [("rejection", STRONG)])
    parser = argparse.ArgumentParser(prog="onward")
    classify_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", "--leave-one-source-out", "--json", str(a), str(b)])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["source"] for f in data["folds"]] == ["a.jsonl", "b.jsonl"]
    assert data["folds"][0]["recall"] == 1.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked fold workers")
def test_leave_one_source_out_in_two_processes_gives_the_same_folds() -> None:
    files = [DATA / f for f in ("paraphrase_decision.jsonl", "hard_negatives.jsonl")]
    files.append(DATA / "paraphrase_others_chosen.jsonl")
    one = leave_one_source_out(files, rules=load_rules(None))
    two = leave_one_source_out(files, rules=load_rules(None), jobs=2)
    assert [f.source for f in one] == sorted(f.name for f in files)
    assert one == two
    assert sum(f.tp for f in one) > 0  # a model was trained and found rejections


def test_cli_eval_leave_one_source_out_lists_each_folds_mistakes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "a.jsonl", [("rejection", STRONG), ("not_rejection", "hello")])
    b = write(
        tmp_path / "b.jsonl",
        [("rejection", STRONG), ("rejection", "See you at lunch tomorrow.")],  # missed
    )
    parser = argparse.ArgumentParser(prog="onward")
    classify_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", "--leave-one-source-out", "--mistakes", "5", str(a), str(b)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "b.jsonl: 1 mistakes" in text
    assert "missed: b1 (rejection)" in text
    args = parser.parse_args(["eval", "--leave-one-source-out", str(a), str(b)])
    assert args.func(args) == 0
    assert "mistakes" not in capsys.readouterr().out  # none unless asked
    args = parser.parse_args(["eval", "--leave-one-source-out", "--json", str(a), str(b)])
    assert args.func(args) == 0
    folds = json.loads(capsys.readouterr().out)["folds"]
    assert [m["id"] for m in folds[1]["mistakes"]] == ["b1"]
