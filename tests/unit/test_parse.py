"""Tests for the parser: raw mail bytes to Message, quote splitting, partial decoding."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta, timezone

import pytest

from onward.tasks.errors import MalformedMessageError
from onward.tasks.mail.decoding import decode_partial
from onward.tasks.mail.message import Address
from onward.tasks.mail.message_ids import message_id_from_header
from onward.tasks.mail.parse import (
    html_to_text,
    message_key,
    parse_message,
    split_quoted,
    unfold_header,
)
from tests.support import paths

FIXTURES = paths.FIXTURES / "mail"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# ------------------------------------------------------------------------ headers


def test_rfc2047_subject_and_display_names() -> None:
    msg = parse_message(load("rfc2047_headers.eml"))
    assert msg.subject == "Your application à ACME - update"
    assert msg.from_ == Address("Renée Recruiter", "hr@acme.example")
    assert msg.cc == (Address("Jörg Müller", "joerg@acme.example"),)
    assert msg.to == (
        Address("Jordan, Pat", "pat.jordan@example.org"),
        Address("", "sam@example.org"),
    )
    assert msg.reply_to == (Address("Talent Team", "talent@acme.example"),)
    assert msg.defects == ()


def test_ids_date_and_kept_headers() -> None:
    msg = parse_message(load("rfc2047_headers.eml"))
    assert msg.message_id == "<20250304091240.5521@acme.example>"
    assert msg.key == msg.message_id
    assert msg.in_reply_to == "<CAF=pat-1@mail.example.org>"
    assert msg.references == ("<first-1@acme.example>", "<CAF=pat-1@mail.example.org>")
    assert msg.date == datetime(2025, 3, 4, 8, 12, 40, tzinfo=UTC)
    assert msg.date is not None
    assert msg.date.utcoffset() == timedelta(hours=1)
    assert msg.headers["auto-submitted"] == "auto-generated"
    assert msg.headers["precedence"] == "bulk"
    assert msg.headers["return-path"] == "<bounce+4471@mailer.acme.example>"
    assert msg.headers["list-unsubscribe"].startswith("<mailto:unsubscribe@acme.example>")
    assert msg.headers["x-mailer"] == "ACME Hiring Suite 9.2"
    assert msg.headers["x-onward-trace"] == "run-17"
    assert msg.headers["content-type"] == 'text/plain; charset="utf-8"'
    assert "received" not in msg.headers
    assert "subject" not in msg.headers


def test_raw_8bit_header_bytes_are_decoded_not_fatal() -> None:
    msg = parse_message(load("eightbit_header.eml"))
    # Latin-1 bytes are not valid UTF-8, so the cp1252 fallback reads them.
    assert msg.subject == "Gehalt über £80k"
    assert msg.from_ == Address("Jörg Schmidt", "joerg@stark.example")
    assert "8bit-header:subject" in msg.defects


def test_garbage_address_headers_yield_defects_not_exceptions() -> None:
    raw = (
        b'From: <<<@@>>> ,,, "unterminated\n'
        b"To: undisclosed-recipients:;\n"
        b"Cc: not an address at all\n"
        b"Reply-To: Good One <Good@Example.org>\n"
        b"Date: yesterday-ish\n"
        b"Message-ID: no id here\n"
        b"In-Reply-To: (junk)\n"
        b"Subject: =?bogus-charset?q?caf=E9?= and =?utf-8?b?!!!?=\n"
        b"\n"
        b"body\n"
    )
    msg = parse_message(raw)
    assert msg.from_ is None
    assert msg.to == ()
    assert msg.cc == ()
    assert msg.reply_to == (Address("Good One", "good@example.org"),)
    assert msg.date is None
    assert msg.message_id is None
    assert msg.in_reply_to is None
    assert msg.key.startswith("sha256:")
    assert "bad-address:from" in msg.defects
    assert "bad-address:cc" in msg.defects
    assert "bad-address:to" not in msg.defects
    assert "bad-date" in msg.defects
    assert "bad-message-id" in msg.defects
    assert "caf" in msg.subject
    assert msg.text == "body"


def test_naive_date_becomes_utc() -> None:
    raw = b"From: a@b.example\nDate: Mon, 3 Mar 2025 10:00:00 -0000\nSubject: x\n\nhi\n"
    msg = parse_message(raw)
    assert msg.date == datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
    assert msg.date is not None
    assert msg.date.tzinfo is not None


def test_unfold_header() -> None:
    assert unfold_header("a\r\n b\n\tc") == "a b\tc"
    assert unfold_header("plain") == "plain"


# --------------------------------------------------------------------------- bodies


def test_quoted_printable_latin1_body() -> None:
    msg = parse_message(load("qp_latin1.eml"))
    assert "Nous avons bien reçu votre candidature pour le poste d'ingénieur." in msg.text
    # The soft line break in "Apr=\n=E8s" joins the word again.
    assert "Après examen" in msg.text
    assert msg.text.endswith("L'équipe recrutement")
    assert msg.html_only is False
    assert msg.defects == ()


def test_base64_utf8_body() -> None:
    msg = parse_message(load("base64_utf8.eml"))
    assert msg.text.startswith("Hallo Pat,")
    assert "vielen Dank für Ihre Bewerbung" in msg.text
    assert "Mit freundlichen Grüßen" in msg.text


def test_html_only_mail() -> None:
    msg = parse_message(load("html_only.eml"))
    assert msg.html_only is True
    assert msg.text.startswith("Hi Pat,")
    assert "Thank you for your interest in the Platform Engineer position." in msg.text
    assert "careers page" in msg.text
    for noise in ("track(", "color:", "<p>", "Globex\n"):
        assert noise not in msg.text


def test_alternative_prefers_plain() -> None:
    msg = parse_message(load("alternative.eml"))
    assert msg.text == "Hi Pat, plain version: we would like to schedule a call."
    assert msg.html_only is False


def test_alternative_with_empty_plain_uses_html() -> None:
    raw = (
        b"From: a@b.example\nMessage-ID: <e@b.example>\nSubject: x\n"
        b'Content-Type: multipart/alternative; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\n \n"
        b"--B\nContent-Type: text/html\n\n<p>Only the HTML says it.</p>\n--B--\n"
    )
    msg = parse_message(raw)
    assert msg.text == "Only the HTML says it."
    assert msg.html_only is True


def test_attachment_text_never_appears() -> None:
    msg = parse_message(load("attachment.eml"))
    assert msg.text == "Dear Pat, please find the letter attached."
    assert "CONFIDENTIAL" not in msg.text
    assert "PDF" not in msg.text


def test_unknown_charset_falls_back_with_defect() -> None:
    msg = parse_message(load("unknown_charset.eml"))
    assert msg.text.startswith("Your status: r")
    assert "\ufffd" in msg.text
    assert msg.text.endswith("pending.")
    assert "charset-fallback:x-unknown-charset" in msg.defects


def test_missing_closing_boundary_keeps_text() -> None:
    msg = parse_message(load("missing_boundary.eml"))
    assert msg.text == "The panel enjoyed talking with you; the feedback is below."
    assert "CloseBoundaryNotFoundDefect" in msg.defects


def test_crlf_input_parses_the_same() -> None:
    lf = load("alternative.eml")
    crlf = lf.replace(b"\n", b"\r\n")
    a, b = parse_message(lf), parse_message(crlf)
    assert a.text == b.text
    assert a.subject == b.subject
    assert a.key == b.key


def test_text_capped_at_max_text() -> None:
    raw = b"From: a@b.example\nMessage-ID: <big@b.example>\nSubject: x\n\n" + b"abcdefghij\n" * 500
    msg = parse_message(raw, max_text=100)
    assert len(msg.text) == 100
    assert msg.truncated is True
    assert parse_message(raw).truncated is False


def test_malformed_input_raises() -> None:
    with pytest.raises(MalformedMessageError):
        parse_message(b"")
    with pytest.raises(MalformedMessageError):
        parse_message(b"   \r\n\r\n  ")
    with pytest.raises(MalformedMessageError):
        parse_message(b"garbage without headers")
    with pytest.raises(MalformedMessageError):
        parse_message(b"garbage without headers\nSubject: too late\n\nbody")


# ------------------------------------------------------------------------------ keys


def test_missing_message_id_key_is_stable() -> None:
    raw = load("no_message_id.eml")
    first, second = parse_message(raw), parse_message(raw)
    assert first.message_id is None
    assert "missing-message-id" in first.defects
    assert first.key.startswith("sha256:")
    assert len(first.key) == len("sha256:") + 64
    assert first.key == second.key
    # A different body gives a different key.
    other = parse_message(raw.replace(b"Import/Export", b"Latex"))
    assert other.key != first.key


def test_message_key_direct() -> None:
    assert message_key(" <a@b> ", date=None, from_=None, subject=None) == "<a@b>"
    fields = {"date": "Mon, 3 Mar 2025", "from_": "X <x@y>", "subject": "Hi"}
    k1 = message_key(None, body_sample=b"hello\r\nthere", **fields)
    k2 = message_key("", body_sample="hello\nthere", **fields)
    assert k1 == k2
    assert k1.startswith("sha256:")
    # Only the first KiB of the body counts.
    long1 = message_key(None, body_sample=b"x" * 1024 + b"tail-1", **fields)
    long2 = message_key(None, body_sample=b"x" * 1024 + b"tail-2", **fields)
    assert long1 == long2
    # Folding whitespace in the raw header does not change the key.
    folded = message_key(None, date="Mon, 3 Mar\r\n 2025", from_="X <x@y>", subject="Hi")
    assert folded == message_key(None, date="Mon, 3 Mar 2025", from_="X <x@y>", subject="Hi")


# --------------------------------------------------------------------- quote split


def test_gmail_reply_split() -> None:
    msg = parse_message(load("reply_gmail.eml"))
    assert msg.new_text == "Thanks Jane, Thursday at 2pm works for me.\n\nBest,\nPat"
    assert msg.quoted_text.startswith("On Mon, 3 Mar 2025 at 10:00, Jane <j@x.example> wrote:")
    assert "> Could you do a second interview this week?" in msg.quoted_text
    assert "Thursday" not in msg.quoted_text


def test_outlook_original_message_split() -> None:
    msg = parse_message(load("reply_outlook.eml"))
    assert (
        msg.new_text == "Hi Kim,\n\nCould you share any feedback on my interview?\n\nThanks,\nPat"
    )
    assert msg.quoted_text.startswith("-----Original Message-----")
    assert "unfortunately we have filled the position" in msg.quoted_text


def test_attribution_wrapped_over_two_lines() -> None:
    text = (
        "Sounds good.\n\n"
        "On Mon, 3 Mar 2025 at 10:00, Jane Doe from the Hiring Team <\n"
        "jane.doe@x.example> wrote:\n"
        "Older text without quote marks, as HTML mail becomes.\n"
    )
    new, quoted = split_quoted(text)
    assert new == "Sounds good."
    assert quoted.startswith("On Mon, 3 Mar 2025")
    assert quoted.endswith("as HTML mail becomes.")


def test_outlook_from_sent_block_and_separator() -> None:
    text = (
        "Thank you for the update.\n\n"
        "________________________________\n"
        "From: Kim Lee <kim@contoso.example>\n"
        "Sent: Monday, March 3, 2025 4:12 PM\n"
        "To: Pat\n"
        "Subject: Update\n\n"
        "We have filled the role.\n"
    )
    assert split_quoted(text) == (
        "Thank you for the update.",
        text[text.index("_") :].rstrip("\n"),
    )
    bare = "Ok.\nFrom: Kim Lee <kim@contoso.example>\nSent: Monday\nSubject: x\n\nOld.\n"
    assert split_quoted(bare)[0] == "Ok."


@pytest.mark.parametrize(
    "header",
    [
        "Am 03.03.2025 um 10:00 schrieb Jana Schulz <jana@firma.example>:",
        "Le lun. 3 mars 2025 à 10:00, Jeanne <jeanne@agence.example> a écrit :",
        "El lun, 3 mar 2025 a las 10:00, Juana (<juana@x.example>) escribió:",
        "-----Ursprüngliche Nachricht-----",
        "---------- Forwarded message ---------",
    ],
)
def test_non_english_reply_headers(header: str) -> None:
    text = f"Neue Antwort hier.\n\n{header}\nAlte Nachricht.\n"
    new, quoted = split_quoted(text)
    assert new == "Neue Antwort hier."
    assert quoted == f"{header}\nAlte Nachricht."


def test_interleaved_reply_keeps_answers_as_new_text() -> None:
    text = (
        "On Tue, 4 Mar 2025, Kim wrote:\n"
        "> Are you available Friday?\n"
        "Yes, any time after noon.\n"
        "> And could you bring references?\n"
        "Sure.\n"
        "-- \n"
        "Pat Jordan | pat.jordan@example.org\n"
    )
    new, quoted = split_quoted(text)
    assert new == "Yes, any time after noon.\nSure."
    assert quoted.splitlines() == [
        "On Tue, 4 Mar 2025, Kim wrote:",
        "> Are you available Friday?",
        "> And could you bring references?",
    ]


def test_plain_text_without_quotes_is_all_new() -> None:
    text = "On Monday we will call you.\nFrom what we saw, you did well.\n"
    assert split_quoted(text) == (text.strip(), "")


# -------------------------------------------------------------------- decode_partial


def test_decode_partial_base64_cut_anywhere() -> None:
    original = "Grüße aus Köln – voilà, 日本語 too. " * 20
    encoded = base64.encodebytes(original.encode("utf-8"))
    for cut in range(len(encoded) - 60, len(encoded) + 1):
        text = decode_partial(encoded[:cut], cte="base64", charset="utf-8")
        assert original.startswith(text.rstrip("\ufffd"))
        assert len(text) > len(original) - 60
    assert decode_partial(b"SGVsbG8gd29y\r\nbGQ", cte="BASE64", charset=None) == "Hello wor"


def test_decode_partial_qp_cut_inside_escape() -> None:
    data = b"Caf=C3=A9 cr=C3=A8me br=C3=BBl=C3=A9e"
    whole = decode_partial(data, cte="quoted-printable", charset="utf-8")
    assert whole == "Café crème brûlée"
    cut_at = data.index(b"=A9")
    for end in (cut_at - 2, cut_at - 1, cut_at, cut_at + 1, cut_at + 2):
        text = decode_partial(data[:end], cte="quoted-printable", charset="utf-8")
        assert "=" not in text
        assert "\ufffd" not in text
        assert whole.startswith(text)
    assert decode_partial(data[: cut_at + 3], cte="quoted-printable", charset="utf-8") == "Café"


def test_decode_partial_charsets_and_identity() -> None:
    assert decode_partial(b"na\xefve", cte="8bit", charset="iso-8859-1") == "naïve"
    assert decode_partial(b"plain", cte=None, charset=None) == "plain"
    assert decode_partial(b"r\xe9sum\xe9 ok", cte="binary", charset="x-unknown-charset") == (
        "r\ufffdsum\ufffd ok"
    )
    # A cut multi-byte character at the very end is dropped, not turned into U+FFFD.
    assert decode_partial("dé".encode()[:-1], cte="8bit", charset="utf-8") == "d"
    # A codec that is not a text encoding is treated as unknown.
    assert decode_partial(b"aGk=", cte="7bit", charset="base64") == "aGk="
    assert decode_partial(b"!!!!", cte="base64", charset="utf-8") == ""
    assert binascii.a2b_qp(b"x") == b"x"  # sanity: stdlib decoder available


# ---------------------------------------------------------------------- html_to_text


NESTED_HTML = """<html><head><title>Do not show</title>
<style type="text/css">.x { display: none; }</style>
<script>var secret = "<p>not text</p>";</script></head>
<body>
<table><tr><td>
  <table><tr><td>Outer cell</td><td>Inner&nbsp;cell &amp; more</td></tr>
  <tr><td><div>Row <b>two</b></div></td></tr></table>
</td></tr></table>
<p>Visit <a href="https://x.example">our   site</a>.</p>
<ul><li>One</li><li>Two</li></ul>
<!-- a comment -->
<br><br><br><br>
<p>End &lt;ok&gt;</p>
</body></html>"""


def test_html_to_text_nested_tables_script_style() -> None:
    text = html_to_text(NESTED_HTML)
    lines = text.splitlines()
    assert lines[0] == "Outer cell Inner cell & more"
    assert "Row two" in lines
    assert "Visit our site." in lines
    assert "One" in lines
    assert "Two" in lines
    assert lines[-1] == "End <ok>"
    for noise in ("Do not show", "display", "secret", "not text", "comment"):
        assert noise not in text
    assert "\n\n\n" not in text


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("<p>unclosed <b>bold <i>italic", "unclosed bold italic"),
        ("<div><table><tr><td>cell</div></p></td>", "cell"),
        ("<style>p{}", ""),
        ("<![if gte mso 9]><p>word</p><![endif]>", "word"),
        ("<!x<<a>b</a", "<b"),
        ("&#x110000; &#0; &bogus; <p", "\ufffd \ufffd &bogus;"),
        ("", ""),
    ],
)
def test_html_to_text_reads_broken_html(broken: str, expected: str) -> None:
    # Real mail has broken HTML; the visible words come through, markup does not.
    assert html_to_text(broken) == expected


def test_html_to_text_unclosed_head_does_not_hide_body() -> None:
    assert html_to_text("<html><head><title>T<body><p>Visible</p>") == "Visible"


def test_parse_tolerates_odd_structure() -> None:
    odd = [
        b"Subject: only a header",
        b"\r\n\r\nFrom: a@b.example\r\nSubject: leading blank lines\r\n\r\nbody",
        b"From: a@b.example\nContent-Type: multipart/mixed\n\nno boundary parameter\n",
        b'From: a@b.example\nContent-Type: text/plain; charset=""\n\n\xff\xfe body\n',
        b"From: a@b.example\nContent-Transfer-Encoding: base64\n\n%%%not base64%%%\n",
        b"From: a@b.example\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n",
        b"From: a@b.example\nContent-Type: text/html\n\n<p>x" + b"<div>" * 5000,
    ]
    for raw in odd:
        msg = parse_message(raw)
        assert isinstance(msg.text, str)
    assert parse_message(odd[1]).subject == "leading blank lines"
    assert parse_message(odd[3]).text.endswith("body")


def test_date_timezone_kept() -> None:
    msg = parse_message(load("html_only.eml"))
    assert msg.date == datetime(2025, 3, 7, 16, 45, 10, tzinfo=timezone(timedelta(hours=-5)))


@pytest.mark.parametrize(
    "value",
    [
        b"<a1@example.org>",
        b"  <a2@example.org>  (sent by a gateway)",
        b"a3@example.org",
        b"<a4@exa\r\n mple.org>",
        b"<>",
        b"not an id at all",
        b"<a5@example.org> <a6@example.org>",
    ],
)
def test_the_header_only_message_id_agrees_with_the_parser(value: bytes) -> None:
    # The rescan's known-message check reads only the raw header; the ledger key comes
    # from the parser. If the two disagreed, a rescan would record a message twice.
    raw = b"Message-ID: " + value + b"\r\nSubject: x\r\nFrom: a@b.example\r\n\r\nbody\r\n"
    header = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    assert message_id_from_header(header) == parse_message(raw).message_id
