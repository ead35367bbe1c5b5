"""The classifier: labels on the project's own .eml fixtures, each trap, rules as data, eval."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from onward.deployments import classify_commands
from onward.tasks.classify import (
    LABELS,
    Verdict,
    classify,
    classify_text,
    load_rules,
    message_from_text,
)
from onward.tasks.classify import rules as rules_module
from onward.tasks.classify.evaluate import evaluate, format_report
from onward.tasks.classify.train import without_model
from onward.tasks.errors import ConfigError
from onward.tasks.mail.message import Message
from onward.tasks.mail.parse import parse_message
from tests.support import paths

FIXTURES = paths.FIXTURES / "classify"
CORPUS = paths.CORPUS
ME = "sam.rivera@example.net"


def load(name: str) -> Message:
    return parse_message((FIXTURES / f"{name}.eml").read_bytes())


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.eml"))


@pytest.mark.parametrize("name", fixture_names())
def test_fixture_gets_the_label_in_its_name(name: str) -> None:
    expected = name.split("__")[0]
    verdict = classify(load(name), user_addresses=[ME])
    assert verdict.label == expected, [r.to_dict() for r in verdict.reasons]


def test_long_mail_is_read_where_it_opens_and_where_it_closes() -> None:
    rules = load_rules()
    filler = "Our data team shipped a new platform and opened an office in Lisbon. " * 100
    decision = "We regret that we will not be moving forward with your application."
    assert rules.head_chars + rules.tail_chars < len(filler) < rules.max_chars
    for body in (f"{decision} {filler}", f"{filler} {decision}"):
        verdict = classify_text("Your application", None, body, rules=rules)
        assert verdict.label == "rejection"
        # Offsets are into the mail as written, though its middle was not read.
        fields = {"subject": "Your application", "body": body}
        assert all(fields[r.where][r.start : r.end] == r.phrase for r in verdict.reasons)
    # Between the two, in mail this long, is not read: that keeps long mail cheap.
    middle = f"{filler[:4500]} {decision} {filler[:3000]}"
    assert classify_text("Your application", None, middle, rules=rules).label != "rejection"


def test_every_label_has_a_fixture() -> None:
    assert {n.split("__")[0] for n in fixture_names()} == set(LABELS)


@pytest.mark.parametrize("name", fixture_names())
def test_reasons_point_at_their_phrase(name: str) -> None:
    message = load(name)
    verdict = classify(message, user_addresses=[ME])
    body = message.new_text if (message.new_text or message.quoted_text) else message.text
    fields = {"subject": message.subject, "body": body}
    for reason in verdict.reasons:
        if reason.where in fields:
            text = fields[reason.where]
            assert text[reason.start : reason.end] == reason.phrase


def test_verdict_is_json_ready_and_explains_itself() -> None:
    verdict = classify(load("rejection__ats_other_candidates"))
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["label"] == "rejection"
    assert 0.5 < data["confidence"] <= 1
    assert any("other candidates" in r["phrase"] for r in data["reasons"])
    assert data["company"] == "Northwind Labs"
    assert data["role"] == "Data Analyst"
    assert data["contact"]["kind"] == "ats"
    assert data["contact"]["ats"] == "Greenhouse"


def test_classify_is_deterministic() -> None:
    message = load("rejection__late_in_long_mail")
    verdicts = {classify(message) for _ in range(5)}
    assert len(verdicts) == 1


# --- the traps from the issue -----------------------------------------------------------


def test_boilerplate_acknowledgement_is_not_a_rejection() -> None:
    verdict = classify(load("application_received__boilerplate_unfortunately"))
    assert verdict.label == "application_received"


def test_reschedule_that_says_unfortunately_is_an_interview() -> None:
    verdict = classify(load("interview__reschedule_unfortunately"))
    assert verdict.label == "interview"
    assert not any(r.rule == "rej.unfortunately" for r in verdict.reasons)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("We are pleased to offer you the position of Analyst at Acme.", "offer"),
        ("Unfortunately we are unable to offer you the Analyst position at Acme.", "rejection"),
        ("We would like to move forward with your application to the next round.", "interview"),
        (
            "We have decided to move forward with other candidates for the Analyst role.",
            "rejection",
        ),
        (
            "Thank you for applying. You are not the most qualified applicant for this role.",
            "rejection",
        ),
        ("Thank you for your interest. The role has been closed.", "rejection"),
        (
            "Thanks for applying to the Analyst role. We require work authorization for this "
            "position and you do not have the right to work in this country.",
            "rejection",
        ),
        (
            "Thanks for applying. If you are not selected for this position, we will keep "
            "your resume on file. Our team will review your application shortly.",
            "application_received",
        ),
    ],
)
def test_phrasings_that_trip_keyword_lists(text: str, label: str) -> None:
    assert classify_text(None, None, text).label == label


def test_rejection_late_in_a_long_mail() -> None:
    message = load("rejection__late_in_long_mail")
    assert len(message.new_text) > 5000
    verdict = classify(message)
    assert verdict.label == "rejection"
    assert any(r.start > 4000 for r in verdict.reasons)


def test_html_only_rejection() -> None:
    message = load("rejection__html_only")
    assert message.html_only
    verdict = classify(message)
    assert verdict.label == "rejection"
    assert verdict.ats == "Workday"
    assert verdict.sender_kind == "ats"


def test_quoted_older_rejection_does_not_count() -> None:
    message = load("other__quoted_rejection")
    assert "other candidates" in message.quoted_text.replace("\n", " ")
    verdict = classify(message)
    assert verdict.label != "rejection"
    assert not any(r.label == "rejection" for r in verdict.reasons)


def test_mail_from_the_user_is_never_a_rejection() -> None:
    message = load("other__from_user")
    assert classify(message).label == "rejection"  # the words alone would say so
    verdict = classify(message, user_addresses=[ME.upper()])
    assert verdict.label != "rejection"
    assert verdict.reasons[0].rule == "from.user"
    assert verdict.reasons[0].where == "from"


def test_candidate_declining_an_offer_is_not_a_rejection() -> None:
    assert classify(load("other__own_decline")).label == "other"


def test_feedback_reply_needs_to_be_a_reply() -> None:
    message = load("feedback_reply__after_request")
    assert classify(message).label == "feedback_reply"
    fresh = message_from_text("Feedback", None, message.new_text)
    assert classify(fresh).label != "feedback_reply"


def test_contact_is_the_person_who_wrote() -> None:
    verdict = classify(load("rejection__unable_to_offer"))
    assert verdict.sender_kind == "person"
    assert verdict.contact_name == "Marta Lindqvist"
    assert verdict.contact_addr == "marta.lindqvist@fjordworks.example"


def test_no_reply_sender_is_not_a_contact_address() -> None:
    verdict = classify(load("application_received__boilerplate_unfortunately"))
    assert verdict.sender_kind == "no-reply"
    assert verdict.contact_addr is None


def test_list_mail_leans_away_from_rejection() -> None:
    verdict = classify(load("other__newsletter_unfortunately"))
    assert verdict.label == "other"


# --- rules as data ----------------------------------------------------------------------


def test_user_rules_add_reweight_disable_and_extend_ats(tmp_path: Path) -> None:
    text = "Hello, candidate status: parked. Regards, the hiring team"
    assert classify_text(None, None, text).label == "other"
    user = tmp_path / "classifier.toml"
    user.write_text(
        """
disable = ["rej.unfortunately"]

[weights]
"rej.keep_on_file" = 0.25

[[rule]]
id = "my.parked"
label = "rejection"
pattern = '''candidate status: parked'''
weight = 4.0

[ats_domains]
"hire.example-ats.test" = "ExampleATS"
""",
        encoding="utf-8",
    )
    rules = load_rules(user)
    assert classify_text(None, None, text, rules=rules).label == "rejection"
    assert not any(r.id == "rej.unfortunately" for r in rules.rules)
    assert next(r for r in rules.rules if r.id == "rej.keep_on_file").weight == 0.25
    verdict = classify_text(None, "Jobs <jobs@eu.hire.example-ats.test>", text, rules=rules)
    assert (verdict.sender_kind, verdict.ats) == ("ats", "ExampleATS")
    # The packaged rules are untouched by a user's file.
    assert any(r.id == "rej.unfortunately" for r in load_rules().rules)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[rule]]\nid='x'\nlabel='nonsense'\npattern='a'\nweight=1\n", "unknown label"),
        ("[[rule]]\nid='x'\nlabel='rejection'\npattern='(unclosed'\nweight=1\n", "bad pattern"),
        ("disable = ['no.such.rule']\n", "unknown rule"),
        ("[weights]\n'no.such.rule' = 1.0\n", "unknown rule"),
        ("[typo]\n", "unknown section"),
        ("this is = not toml [", "not valid TOML"),
        ("[settings]\nhead_chars = -1\n", "head_chars must be a whole number"),
    ],
)
def test_bad_user_rules_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    user = tmp_path / "rules.toml"
    user.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_rules(user)


def test_default_rules_are_loaded_once() -> None:
    assert load_rules() is load_rules()


def test_word_prefilter_never_changes_a_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    # The cheap word test before each regex must be exact: compare with rules whose
    # regexes always run, on every fixture.
    fast = without_model(load_rules())  # the rules' own prefilter; the model reads job mail
    monkeypatch.setattr(rules_module, "_word_hints", lambda pattern: ())
    slow = replace(fast, job_words=frozenset())  # compiled again, without hints
    for name in fixture_names():
        message = load(name)
        assert classify(message, rules=fast) == classify(message, rules=slow), name


def test_no_rule_names_a_company() -> None:
    # Rules must generalise: phrases, never an employer's name (ATS domains are data).
    text = (resources.files("onward.config") / "classifier.toml").read_text()
    patterns = " ".join(re.findall(r"pattern = '''(.*?)'''", text))
    for name in ("amazon", "microsoft", "tiktok", "ibm", "intel", "booz", "raytheon"):
        assert not re.search(rf"\b{name}\b", patterns, re.IGNORECASE), name


# --- eval and the command line ------------------------------------------------------------


def write_jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


TINY = [
    {
        "id": "r1",
        "label": "rejection",
        "subclass": None,
        "subject": None,
        "from": None,
        "body": "We have decided to move forward with other candidates for the role.",
        "ambiguous": False,
        "source": "test",
    },
    {
        "id": "r2",
        "label": "rejection",
        "subclass": None,
        "subject": None,
        "from": None,
        "body": "Thanks for applying. Have a nice day.",
        "ambiguous": False,
        "source": "test",
    },
    {
        "id": "n1",
        "label": "not_rejection",
        "subclass": "interview_invite",
        "subject": None,
        "from": None,
        "body": "We would like to invite you to an interview for the role.",
        "ambiguous": False,
        "source": "test",
    },
    {
        "id": "a1",
        "label": "not_rejection",
        "subclass": None,
        "subject": None,
        "from": None,
        "body": "Unfortunately we have decided to move forward with other candidates.",
        "ambiguous": True,
        "source": "test",
    },
]


def test_eval_counts_on_a_tiny_labelled_file(tmp_path: Path) -> None:
    report = evaluate([write_jsonl(tmp_path / "tiny.jsonl", TINY)])
    assert (report.tp, report.fp, report.fn, report.tn) == (1, 0, 1, 1)
    assert report.precision == 1.0
    assert report.recall == 0.5
    assert report.f1 == pytest.approx(2 / 3)
    assert report.skipped_ambiguous == 1
    assert report.confusion[("rejection", "other")] == 1
    assert report.confusion[("not_rejection", "interview")] == 1
    assert [m.id for m in report.mistakes] == ["r2"]
    text = format_report(report)
    assert "precision 1.000" in text
    assert "recall 0.500" in text


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="onward")
    classify_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_classify_jsonl_and_eml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = write_jsonl(
        tmp_path / "rows.jsonl",
        [{"id": "x", "subject": "Update", "from": "HR <hr@acme.test>", "body": TINY[0]["body"]}],
    )
    eml = FIXTURES / "offer__pleased_to_offer.eml"
    assert run(["classify", str(eml), "--jsonl", str(rows)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["label"] for o in out] == ["offer", "rejection"]
    assert out[1]["id"] == "x"
    assert set(out[1]) == {
        "id",
        "label",
        "confidence",
        "reasons",
        "company",
        "role",
        "stage",
        "borderline",
        "contact",
    }


def test_cli_classify_bad_row_fails_but_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('not json\n{"id": "ok", "body": "hello"}\n', encoding="utf-8")
    assert run(["classify", "--jsonl", str(rows)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["id"] == "ok"
    assert "rows.jsonl:1" in captured.err


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["classify"]) == 2
    assert run(["classify", str(tmp_path / "missing.eml")]) == 2
    assert run(["eval", str(tmp_path / "missing.jsonl")]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[typo]\n", encoding="utf-8")
    assert run(["eval", "--rules", str(bad), str(write_jsonl(tmp_path / "t.jsonl", TINY))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("onward: ") for line in err)


def test_cli_eval_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["eval", "--json", str(write_jsonl(tmp_path / "t.jsonl", TINY))]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rejection"]["precision"] == 1.0
    assert data["rejection"]["recall"] == 0.5


# --- the development corpus ---------------------------------------------------------------


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.skip(f"the corpus is not at {CORPUS} (it lives beside the project)")
    return sorted(CORPUS.glob("*.jsonl")) + sorted((CORPUS / "ordinary_mail").glob("*.mbox"))


@pytest.mark.slow
def test_corpus_targets() -> None:
    report = evaluate(corpus_files())
    summary = format_report(report)
    assert report.precision >= 0.97, summary
    assert report.recall >= 0.95, summary
    assert report.ordinary_rows == 4150, summary
    assert report.ordinary_false_alarms <= 4, summary


def test_verdict_type_is_frozen() -> None:
    verdict = classify_text(None, None, "hello")
    assert isinstance(verdict, Verdict)
    with pytest.raises(AttributeError):
        verdict.label = "rejection"  # type: ignore[misc]


def test_reasons_quote_the_text_as_written() -> None:
    body = "Hi Sam,\n\nWe\u2019ve decided we won\u2019t be moving forward with your application."
    verdict = classify_text(None, None, body)
    assert verdict.label == "rejection"
    reason = verdict.reasons[0]
    assert body[reason.start : reason.end] == reason.phrase
    assert "\u2019" in reason.phrase


def test_feedback_reply_that_restates_the_rejection_is_feedback() -> None:
    body = (
        "Hi Sam,\n\nHappy to share some feedback. We decided to move forward with other "
        "candidates because the panel felt your system design answers were thin. You could "
        "strengthen how you discuss trade-offs.\n\nBest, Marta"
    )
    # The same decision as the first word on it (no feedback was asked for) is a rejection.
    first_word = body.replace("Happy to share some feedback.", "Thank you for interviewing.")
    assert classify_text(None, None, first_word).label == "rejection"
    assert classify_text("Re: Feedback request", None, body).label == "feedback_reply"


@pytest.mark.parametrize(
    ("subject", "body", "read"),
    [
        (None, "not gonna work out on our end, sorry!! appreciate you tho", True),
        ("Saturday trial", "Thanks for coming in. We won't be taking you on.", True),
        ("Absage: Ihre Bewerbung", "Leider müssen wir Ihnen mitteilen ...", True),
        ("Dinner", "See you at eight, bring the salad.", False),
        # A long newsletter that only says sorry is ordinary mail: not read.
        ("Weekly digest", "sorry for the late issue. " + "Lorem ipsum dolor sit. " * 80, False),
    ],
)
def test_which_mail_is_read_at_all(subject: str | None, body: str, read: bool) -> None:
    """Mail naming no job is not read by the listed words (an inbox stays cheap), except
    short mail that says a decision or names the work, and hiring mail in other languages;
    the model's learnt gate words are left out here (see test_learned)."""
    from onward.tasks.classify.reading import features_of

    message = message_from_text(subject, "Kim <kim@firm.example>", body)
    assert (features_of(message, without_model(load_rules(None))) is not None) is read
