"""The learned half of rejection detection: tokens, features, training, evidence, and the
model shipped with onward."""

from __future__ import annotations

import json
import mailbox
from dataclasses import replace
from pathlib import Path

import pytest

from onward.tasks.classify import load_rules
from onward.tasks.classify.learned import (
    LinearModel,
    extract,
    features_of_words,
    load_model,
    sentence_features,
    sentence_words,
    tokens,
    train,
)
from onward.tasks.classify.reading import features_of
from onward.tasks.classify.scoring import classify_text, message_from_text
from onward.tasks.classify.train import train_from_files, without_model
from onward.tasks.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
HELD_OUT = ROOT / "tests" / "data" / "classify-heldout"


def words(text: str) -> list[list[str]]:
    return [[t.word for t in sentence] for sentence in tokens(text)]


def labelled_file(path: Path, rejection: str, other: str, n: int) -> Path:
    """``path`` with n rejections and n other mails, each ``{i}`` numbered apart."""
    rows = [
        {"id": f"{label[0]}{i}", "label": label, "body": body.format(i=i)}
        for label, body in (("rejection", rejection), ("not_rejection", other))
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_contractions_and_light_stems_meet_their_long_forms() -> None:
    assert words("we won't be proceeding.") == [["we", "will", "not", "be", "proceed"]]
    assert words("we will not be proceeding") == words("we won't be proceeding")
    assert words("the team's decision; we've decided") == [
        ["the", "team", "decision"],
        ["we", "have", "decid"],
    ]
    # The Greek question mark (U+037E, not ";") ends a sentence too.
    assert len(words("θα έρθετε\u037e ευχαριστούμε")) == 2


def test_a_decision_and_its_reasons_are_read_as_separate_clauses() -> None:
    # "... other candidates because your answers were thin": the reason's words (answers,
    # design) are interview words and must not weigh on the decision they follow.
    assert words("thanks, but we went with others because your answers were thin") == [
        ["thank"],
        ["but", "we", "went", "with", "other"],
        ["because", "your", "answer", "were", "thin"],
    ]
    # Only whole words: "butter" and "as well" do not start a clause ("as we" does).
    assert len(words("we butter bread as well as buns")) == 1


def test_tokens_keep_offsets_into_the_text() -> None:
    text = "Thanks. Sadly, we can't offer you the role."
    [first, second] = tokens(text.lower())
    assert text[first[0].start : first[0].end] == "Thanks"
    cant = next(t for t in second if t.word == "not")
    assert text[cant.start : cant.end] == "can't"


def test_negation_scope_marks_the_words_after_it() -> None:
    [sentence] = tokens("we will not be moving forward")
    feats = {f for f, _, _ in sentence_features(sentence)}
    assert {"~be", "~mov", "~forward", "not be"} <= feats
    [plain] = tokens("we will be moving forward")
    assert not any(f.startswith("~") for f, _, _ in sentence_features(plain))


@pytest.mark.parametrize(
    "text",
    [
        "we won't be proceeding. thanks!\n\n- item one\n2) item two; the team's call: no",
        "wir haben uns für eine andere kandidatin entschieden... leider! 2024 ist vorbei",
        "unfortunately we cannot move forward, nor will we. it's not you; it's the budget",
        "",
        "...!!! ;; \n\n",
        "l'équipe n'a pas retenu votre candidature. ça arrive.",
    ],
)
def test_fast_words_and_features_are_those_read_with_offsets(text: str) -> None:
    # The model reads every message through sentence_words/features_of_words; evidence
    # is found again with sentence_tokens/sentence_features: both must see the same words
    # (one through the single-word cache, the other through each word's parts).
    read = sentence_words(text)
    assert [w for _, _, w in read] == words(text)
    for (start, end, fast), slow in zip(read, tokens(text), strict=True):
        assert sorted(features_of_words(fast)) == sorted(f for f, _, _ in sentence_features(slow))
        assert all(start <= t.start < t.end <= end for t in slow)


def labelled(texts: dict[str, bool]) -> list[tuple[object, bool, float]]:
    return [(extract("", t.lower(), {}, {}), positive, 1.0) for t, positive in texts.items()]


def test_training_separates_and_evidence_is_the_deciding_sentence() -> None:
    data = {
        "Thanks for applying. We decided not to proceed with your application.": True,
        "Thanks for applying. We will not proceed with your candidacy.": True,
        "Thank you. Sadly we decided to not proceed further.": True,
        "Thanks for applying. We decided to invite you to an interview.": False,
        "Thanks for applying. We will proceed with your interview on Monday.": False,
        "Thank you. We decided to proceed with the next round.": False,
    }
    model = train(labelled(data), epochs=40, min_count=1)  # type: ignore[arg-type]
    for text, positive in data.items():
        assert (model.probability(extract("", text.lower(), {}, {})) > 0.5) is positive
    text = "Hello Sam. Thanks for applying! We decided not to proceed. Best, Lee"
    features = extract("", text.lower(), {}, {})
    where, start, end = model.evidence(features) or ("", 0, 0)
    assert where == "body"
    quote = text[start:end]
    assert "not" in quote
    assert "proceed" in quote
    assert "Thanks" not in quote
    assert "\n" not in quote


def test_model_round_trips_through_json_and_refuses_garbage(tmp_path: Path) -> None:
    model = LinearModel({"not proceed": 1.25, "t:thank": -0.5}, -0.75, {"by": "a test"})
    again = LinearModel.from_json(model.to_json(), "test")
    assert again.weights == model.weights
    assert again.bias == model.bias
    assert again.provenance == {"by": "a test"}
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps({"format": 99, "weights": {}, "bias": 0}), encoding="utf-8")
    with pytest.raises(ConfigError, match="not a classifier model"):
        load_model(bad)


def test_the_packaged_model_is_used_and_says_why() -> None:
    rules = load_rules()
    assert rules.model is not None
    verdict = classify_text(
        "Following up",
        None,
        "Hi Sam,\n\nThe panel met on Friday. Regrettably we will not be extending you an "
        "offer for the analyst post.\n\nBest,\nLee",
        rules=rules,
    )
    assert verdict.is_rejection
    # The model's evidence and a rule's on the same words are shown once.
    assert any("not be extending" in r.quote for r in verdict.reasons), verdict.reasons
    for reason in verdict.reasons:
        assert "\n" not in reason.quote
        assert "thank" not in reason.quote.lower()
    # Without the model, the rules decide alone.
    alone = classify_text(
        "Hello", None, "See you at the interview on Monday.", rules=without_model(rules)
    )
    assert alone.label != "rejection"


def test_the_packaged_model_was_trained_on_development_data_only() -> None:
    model = load_model()
    assert model is not None
    files = [s["file"] for s in model.provenance["sources"]]
    held_out = {p.name for p in HELD_OUT.glob("*.jsonl")}
    assert files
    assert not held_out & set(files)
    # The two public evaluation sets must never be used for development.
    assert not any(Path(f).stem == "rejections" or "nlp-email" in f for f in files)
    assert model.provenance["by"].startswith("onward train")


def test_the_gate_learns_words_that_open_mail_no_listed_word_opens(tmp_path: Path) -> None:
    # Casual rejections in words the hiring-word list lacks, job mail that is not one,
    # and ordinary mail that talks about the same gala.
    data = labelled_file(
        tmp_path / "casual.jsonl",
        "We're fully staffed for gala {i} now, so no need to come in, cheers.",
        "Thanks for applying to role {i}. We would like to invite you to an interview.",
        8,
    )
    box = mailbox.mbox(tmp_path / "ordinary.mbox")
    for i in range(4):
        box.add(f"From: a@b.example\nSubject: gala {i}\n\nThe gala dinner is on Friday.\n")
    box.close()
    rules = without_model(load_rules())
    model = train_from_files([data, tmp_path / "ordinary.mbox"], rules)
    with_gate = replace(rules, model=model)

    staffed = message_from_text("The gala", None, "We're fully staffed, thanks anyway.")
    gala = message_from_text("The gala", None, "See you at the gala, bring a coat.")
    # The listed hiring words read neither; the learned words read the one that says no,
    # but not the one whose words ordinary mail uses too.
    assert features_of(staffed, rules) is None
    assert features_of(staffed, with_gate) is not None
    assert features_of(gala, with_gate) is None
    assert "gala" not in model.gate
    assert LinearModel.from_json(model.to_json(), "test").gate == model.gate

    # Mail only a learnt word let through is a rejection only when the model is sure (at
    # the review band's upper edge); naming the job, the same words may wait for review.
    def said(subject: str, band: tuple[float, float]) -> bool:
        body = "We're fully staffed, thanks anyway."
        return classify_text(subject, None, body, rules=with_gate, review_band=band).is_rejection

    assert said("The gala", (0.05, 0.05))
    assert not said("The gala", (0.05, 1.0))
    assert said("The gala role", (0.05, 1.0))


def test_training_is_deterministic(tmp_path: Path) -> None:
    data = labelled_file(
        tmp_path / "tiny.jsonl",
        "Thanks for applying to role {i}. "
        "We regret that we will not move forward with your application.",
        "Thanks for applying to role {i}. "
        "We would like to invite you to an interview for the position.",
        6,
    )
    rules = replace(load_rules(), model=None)
    first, second = train_from_files([data], rules), train_from_files([data], rules)
    assert first.weights == second.weights
    assert first.bias == second.bias
    assert first.provenance["sources"][0]["rows"] == {"not_rejection": 6, "rejection": 6}


def test_word_caches_are_bounded_and_refill_together(monkeypatch: pytest.MonkeyPatch) -> None:
    from onward.tasks.classify import learned

    monkeypatch.setattr(learned, "_CACHE_LIMIT", 50)
    for n in range(500):
        learned.sentence_words(f"word{n}x and number {n}")
        learned.tokens(f"other{n}y won't")
    assert len(learned._PARTS_CACHE) <= 60
    assert len(learned._SINGLE_CACHE) <= 60
    # A word remembered by the slow path is taken up by the fast one again.
    learned.tokens("we decided")
    learned._SINGLE_CACHE.clear()
    learned.sentence_words("we decided")
    assert {"we", "decided"} <= learned._SINGLE_CACHE.keys()
