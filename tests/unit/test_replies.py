"""Feedback request: template rendering, reply subject, draft message, recipient choice."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from onward.tasks.errors import ConfigError
from onward.tasks.feedback.addressing import UnwritableAddressError
from onward.tasks.feedback.replies import (
    FEEDBACK_TEMPLATE,
    ReplyContext,
    build_reply,
    choose_recipient,
    first_name,
    render_feedback_request,
    reply_subject,
)
from onward.tasks.mail.addresses import is_no_reply, registered_domain
from onward.tasks.mail.message import Address, Message
from onward.tasks.mail.parse import parse_message
from tests.support import paths

SAMPLES = paths.SAMPLES
USER = Address("Sam Rivera", "sam.rivera@example.org")
WHEN = datetime(2026, 11, 26, 2, 15, 31, tzinfo=UTC)

FULL = ReplyContext(
    contact_name="Renée Dubois",
    company="Brightforge",
    role="Data Engineer",
    sender_name="Sam Rivera",
    original_subject="Your application",
    original_date=WHEN,
)
EMPTY = ReplyContext(
    contact_name=None,
    company=None,
    role=None,
    sender_name=None,
    original_subject="",
    original_date=None,
)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def text_of(msg: EmailMessage) -> str:
    content = msg.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


BASE = Message(
    key="<decision-55102@mail.brightforge.example>",
    message_id="<decision-55102@mail.brightforge.example>",
    subject="Your application",
    from_=Address("Renée Dubois", "renee@brightforge.example"),
    references=("<intro-4821@mail.brightforge.example>",),
    in_reply_to="<intro-4821@mail.brightforge.example>",
)


def original(**overrides: Any) -> Message:
    return replace(BASE, **overrides)


def reply(msg: Message | None = None, **overrides: Any) -> EmailMessage:
    kwargs: dict[str, Any] = {
        "from_": USER,
        "to": Address("Renée Dubois", "renee@brightforge.example"),
        "marker": "<decision-55102@mail.brightforge.example>",
        "date": WHEN,
    }
    kwargs.update(overrides)
    return parse(build_reply(msg or original(), "Hi Renée,\n\nThanks.\n", **kwargs))


# --- rendering ----------------------------------------------------------------------------


def test_render_with_all_fields() -> None:
    text = render_feedback_request(FULL)
    assert text.startswith("Hi Renée,\n")
    assert "the Data Engineer role at Brightforge" in text
    assert "stronger candidate" in text
    assert "?" in text
    assert text.rstrip().endswith("Sam Rivera")
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    for junk in ("{", "}", "None", "  "):
        assert junk not in text


def test_render_with_nothing_known() -> None:
    text = render_feedback_request(EMPTY)
    assert text.startswith("Hello,\n")
    assert "the role," in text
    assert "Hi ," not in text
    assert "None" not in text
    assert "{" not in text
    assert "}" not in text
    assert " at ," not in text


def test_render_cleans_values() -> None:
    context = ReplyContext(
        contact_name="Brightforge Recruiting",
        company="Bright\x00forge\r\nBcc: x",
        role="the Data   Engineer position",
        sender_name="Sam\tRivera\u202e",
        original_subject="x",
        original_date=None,
    )
    text = render_feedback_request(context)
    assert text.startswith("Hello,\n")
    assert "the Data Engineer role at Bright forge Bcc: x," in text
    assert "\x00" not in text
    assert "\u202e" not in text
    assert text.rstrip().endswith("Sam Rivera")


def test_first_name() -> None:
    assert first_name("Renée Dubois") == "Renée"
    assert first_name("Dubois, Renée") == "Renée"
    assert first_name("Dr. Renée Dubois") == "Renée"
    assert first_name("Renée Dubois, PhD") == "Renée"
    assert first_name("priya raman") == "Priya"
    assert first_name("Brightforge Recruiting") is None
    assert first_name("Talent Team") is None
    assert first_name("JOHN SMITH") is None
    assert first_name("J. Smith") is None
    assert first_name("Brightforge", "Brightforge Inc.") is None
    assert first_name("Priya", "Brightforge") == "Priya"
    assert first_name(None) is None
    assert first_name("  ") is None


def test_user_template_overrides_packaged(tmp_path: Path) -> None:
    (tmp_path / FEEDBACK_TEMPLATE).write_text(
        "Dear {{ first_name or 'team' }} at {{ company or 'your company' }}\n", encoding="utf-8"
    )
    assert render_feedback_request(FULL, template_dirs=[tmp_path]) == "Dear Renée at Brightforge\n"
    # A user directory without the file falls back to the packaged template.
    assert render_feedback_request(FULL, template_dirs=[tmp_path / "missing"]).startswith("Hi")


def test_undefined_variable_is_config_error(tmp_path: Path) -> None:
    (tmp_path / FEEDBACK_TEMPLATE).write_text("Hello,\n\n{{ recruiter_name }}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        render_feedback_request(FULL, template_dirs=[tmp_path])
    message = str(info.value)
    assert str(tmp_path / FEEDBACK_TEMPLATE) in message
    assert "line 3" in message
    assert "recruiter_name" in message


def test_syntax_error_is_config_error(tmp_path: Path) -> None:
    (tmp_path / FEEDBACK_TEMPLATE).write_text("Hello\n{% if role %}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"feedback_request\.txt\.j2, line \d"):
        render_feedback_request(FULL, template_dirs=[tmp_path])


def test_sandbox_blocks_attribute_access(tmp_path: Path) -> None:
    (tmp_path / FEEDBACK_TEMPLATE).write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="line 1") as info:
        render_feedback_request(FULL, template_dirs=[tmp_path])
    assert "unsafe" in str(info.value) or "__class__" in str(info.value)


# --- subject ------------------------------------------------------------------------------


def test_reply_subject() -> None:
    assert reply_subject("Your application") == "Re: Your application"
    assert reply_subject("Re: Your application") == "Re: Your application"
    assert reply_subject("RE: Your application") == "RE: Your application"
    assert reply_subject("re: Your application") == "re: Your application"
    assert reply_subject("Re[2]: Your application") == "Re[2]: Your application"
    assert reply_subject("AW: Ihre Bewerbung") == "AW: Ihre Bewerbung"
    assert reply_subject("SV: Din ansökan") == "SV: Din ansökan"
    assert reply_subject("Antw: Uw sollicitatie") == "Antw: Uw sollicitatie"
    assert reply_subject("Re: Re: Your application") == "Re: Your application"
    assert reply_subject("RE: re:AW: Your application") == "Re: Your application"
    assert reply_subject("Fwd: Your application") == "Re: Fwd: Your application"
    assert reply_subject("") == "Re: your message"
    assert reply_subject("  Re:  ") == "Re: your message"
    assert reply_subject("Hi\r\nBcc: x@evil.example") == "Re: Hi Bcc: x@evil.example"


# --- draft message ------------------------------------------------------------------------


def test_build_reply_threading_headers() -> None:
    msg = reply()
    assert msg["From"] == "Sam Rivera <sam.rivera@example.org>"
    assert msg["To"] == "Renée Dubois <renee@brightforge.example>"
    assert msg["Subject"] == "Re: Your application"
    assert msg["In-Reply-To"] == "<decision-55102@mail.brightforge.example>"
    assert msg["References"].split() == [
        "<intro-4821@mail.brightforge.example>",
        "<decision-55102@mail.brightforge.example>",
    ]
    assert msg["X-Onward-Feedback-For"] == "<decision-55102@mail.brightforge.example>"
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["Date"].datetime == WHEN
    assert "Auto-Submitted" not in msg
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert text_of(msg) == "Hi Renée,\n\nThanks.\n"


def test_build_reply_crlf_and_ascii_headers() -> None:
    raw = build_reply(original(), "Hi\n", from_=USER, to=None, marker="k1", date=WHEN)
    head = raw.split(b"\r\n\r\n", 1)[0]
    head.decode("ascii")
    assert b"\n" not in head.replace(b"\r\n", b"")


def test_build_reply_subject_re_once() -> None:
    assert reply(original(subject="Re: Re: Your application"))["Subject"] == "Re: Your application"
    assert reply(original(subject="RE: Update"))["Subject"] == "RE: Update"


def test_build_reply_references_capped_in_order() -> None:
    refs = tuple(f"<ref-{i}@example.com>" for i in range(30))
    msg = reply(original(references=refs))
    chain = msg["References"].split()
    assert len(chain) == 20
    assert chain[:-1] == list(refs[-19:])
    assert chain[-1] == "<decision-55102@mail.brightforge.example>"


def test_build_reply_long_ids_stay_verbatim() -> None:
    long_id = "<" + "a" * 150 + "@mail.brightforge.example>"
    msg = reply(original(message_id=long_id, references=()), marker=long_id)
    assert msg["In-Reply-To"] == long_id
    assert msg["References"] == long_id
    assert msg["X-Onward-Feedback-For"] == long_id


def test_build_reply_without_message_id() -> None:
    msg = reply(original(message_id=None, references=()), marker="sha256:abc123")
    assert "In-Reply-To" not in msg
    assert "References" not in msg
    assert msg["X-Onward-Feedback-For"] == "sha256:abc123"


def test_build_reply_without_recipient() -> None:
    msg = reply(to=None)
    assert "To" not in msg
    assert msg["From"] == "Sam Rivera <sam.rivera@example.org>"


def test_build_reply_non_ascii_encoded_and_decoded() -> None:
    raw = build_reply(
        original(subject="Votre candidature à ACME"),
        "Bonjour Renée,\n",
        from_=Address("Zoë Müller", "zoe@example.org"),
        to=Address("Renée Dubois", "renee@brightforge.example"),
        marker="m",
        date=WHEN,
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head
    msg = parse(raw)
    assert msg["Subject"] == "Re: Votre candidature à ACME"
    assert msg["To"].addresses[0].display_name == "Renée Dubois"
    assert msg["From"].addresses[0].display_name == "Zoë Müller"
    assert text_of(msg) == "Bonjour Renée,\n"


def test_build_reply_message_id_domain() -> None:
    assert reply(message_id_domain="onward.example")["Message-ID"].endswith("@onward.example>")


def test_hostile_inputs_cannot_inject_headers() -> None:
    hostile = original(
        subject="Hi\r\nBcc: x@evil.example",
        message_id="<a@b>\r\nBcc: y@evil.example",
        references=("<ok@example.com>", "<bad@x>\nBcc: z@evil.example"),
    )
    raw = build_reply(
        hostile,
        "Hi\r\nBcc: body@evil.example\n",
        from_=Address("Sam\rCc: a@evil.example", "sam.rivera@example.org"),
        to=Address("Eve\r\nBcc: victim@evil.example", "eve@example.com"),
        marker="<m@x>\r\nBcc: w@evil.example",
        date=WHEN,
    )
    msg = parse(raw)
    assert "Bcc" not in msg
    assert "Cc" not in msg
    assert len(msg.get_all("To") or []) == 1
    assert [a.addr_spec for a in msg["To"].addresses] == ["eve@example.com"]
    assert msg["To"].addresses[0].display_name == "Eve Bcc: victim@evil.example"
    assert msg["Subject"] == "Re: Hi Bcc: x@evil.example"
    assert msg["X-Onward-Feedback-For"] == "<m@x> Bcc: w@evil.example"
    assert msg["References"] == "<ok@example.com>"
    assert "In-Reply-To" not in msg
    for name, value in msg.items():
        assert "\r" not in str(value), name
        assert "\n" not in str(value), name
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if not line[:1].isspace()]
    assert b"Bcc" not in names
    assert names.count(b"To") == 1


@pytest.mark.parametrize(
    "addr",
    [
        "eve smith@example.com",
        "eve@exa mple.com",
        "<eve@example.com>",
        "eve@example.com, mallory@evil.example",
        "eve\r\n@example.com",
        "eve@example.com\r\nBcc: x@evil.example",
        "eve",
        "@example.com",
        "eve@",
        "renée@example.com",
        "eve@exa\x00mple.com",
        "eve@ex[ample.com",
    ],
)
def test_unwritable_address_raises(addr: str) -> None:
    with pytest.raises(UnwritableAddressError):
        build_reply(original(), "x", from_=USER, to=Address("Eve", addr), marker="m")
    with pytest.raises(UnwritableAddressError):
        build_reply(original(), "x", from_=Address("Eve", addr), to=None, marker="m")


@pytest.mark.parametrize(
    ("addr", "written"),
    [
        ("a" * 80 + "@example.com", "a" * 80 + "@example.com"),
        ("eve@mail_server.example.com", "eve@mail_server.example.com"),
        ("eve@[127.0.0.1]", "eve@[127.0.0.1]"),
        ("john..doe@example.com", '"john..doe"@example.com'),
        ('"eve"@example.com', "eve@example.com"),
        ("eve(x)@example.com", '"eve(x)"@example.com'),
        ("eve@bücher.example", "eve@xn--bcher-kva.example"),
    ],
)
def test_addresses_the_strict_model_refuses_are_written_as_rfc_5322_allows(
    addr: str, written: str
) -> None:
    raw = build_reply(original(), "x", from_=USER, to=Address("Renée Ö", addr), marker="m")
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    (to_line,) = [line for line in head.split("\r\n") if line.startswith("To: ")]
    assert to_line.endswith(f"<{written}>")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["To"]).startswith("Renée Ö")


# --- recipient ----------------------------------------------------------------------------


def test_is_no_reply() -> None:
    for addr in (
        "no-reply@mail.brightforge.example",
        "noreply@x.example",
        "do-not-reply@x.example",
        "DoNotReply@x.example",
        "notifications@x.example",
        "MAILER-DAEMON@x.example",
        "bounces+123@x.example",
        "jobs-noreply@x.example",
        "priya@users.noreply.example",
    ):
        assert is_no_reply(addr), addr
    for addr in ("priya.raman@brightforge.example", "careers@brightforge.example"):
        assert not is_no_reply(addr), addr


def test_registered_domain() -> None:
    assert registered_domain("no-reply@mail.brightforge.example") == "brightforge.example"
    assert registered_domain("priya@brightforge.example") == "brightforge.example"
    assert registered_domain("a@notifications.acme.co.uk") == "acme.co.uk"


def _msg(key: str, sender: Address, **fields: Any) -> Message:
    return Message(key=key, message_id=key, subject="s", from_=sender, **fields)


PRIYA = Address("Priya Raman", "priya.raman@brightforge.example")
NO_REPLY = Address("Brightforge Recruiting", "no-reply@mail.brightforge.example")
USER_ADDRS = {"sam.rivera@example.org"}


def test_person_with_reply_to() -> None:
    hr = Address("Brightforge HR", "hr@brightforge.example")
    rejection = _msg(
        "<r@x>", PRIYA, reply_to=(Address("", "noreply@brightforge.example"), hr, PRIYA)
    )
    assert choose_recipient(rejection, "person", "Brightforge", [], USER_ADDRS) == hr


def test_person_without_reply_to() -> None:
    rejection = _msg("<r@x>", PRIYA)
    assert choose_recipient(rejection, "person", "Brightforge", [], USER_ADDRS) == PRIYA


def test_person_reply_to_the_user_is_skipped() -> None:
    rejection = _msg("<r@x>", PRIYA, reply_to=(Address("Sam", "Sam.Rivera@example.org"),))
    assert choose_recipient(rejection, "person", None, [], USER_ADDRS) == PRIYA


def test_ats_with_earlier_recruiter_in_thread() -> None:
    intro = parse_message((SAMPLES / "01-recruiter-intro.eml").read_bytes())
    rejection = parse_message((SAMPLES / "05-rejection-ats.eml").read_bytes())
    assert rejection.from_ is not None
    assert rejection.from_.addr == "no-reply@brightforge.example"
    found = choose_recipient(rejection, "no-reply", "Brightforge", [intro], USER_ADDRS)
    assert found is not None
    assert found.addr == "priya.raman@brightforge.example"


def test_ats_latest_human_in_thread_on_other_domain() -> None:
    ats = Address("Brightforge", "brightforge@ats.example")
    agent = Address("Kim Agent", "kim@agency.example")
    older = _msg("<1@agency.example>", agent)
    newer = _msg("<2@agency.example>", Address("Lee Agent", "lee@agency.example"))
    rejection = _msg(
        "<r@ats.example>", ats, references=("<1@agency.example>", "<2@agency.example>")
    )
    found = choose_recipient(rejection, "ats", None, [older, newer], USER_ADDRS)
    assert found == newer.from_


def test_no_reply_matches_subdomain_and_company() -> None:
    rejection = _msg("<r@mail.brightforge.example>", NO_REPLY)
    other_company = _msg("<o@acme.example>", Address("Ann", "ann@acme.example"))
    priya = _msg("<p@brightforge.example>", PRIYA)
    found = choose_recipient(rejection, "no-reply", None, [priya, other_company], USER_ADDRS)
    assert found == PRIYA
    ats_rejection = _msg("<r@ats.example>", Address("", "jobs@ats.example"))
    assert choose_recipient(ats_rejection, "ats", "Brightforge Inc.", [priya], USER_ADDRS) == PRIYA
    assert choose_recipient(ats_rejection, "ats", None, [priya], USER_ADDRS) is None


def test_ats_with_only_no_reply_mail_is_none() -> None:
    rejection = _msg("<r@mail.brightforge.example>", NO_REPLY, references=("<a@x>",))
    earlier = [
        _msg("<a@x>", Address("", "notifications@brightforge.example")),
        _msg("<b@x>", Address("Brightforge", "donotreply@brightforge.example")),
    ]
    assert choose_recipient(rejection, "ats", "Brightforge", earlier, USER_ADDRS) is None


def test_never_returns_the_user() -> None:
    user = Address("Sam Rivera", "sam.rivera@example.org")
    rejection = _msg("<r@mail.brightforge.example>", NO_REPLY, references=("<mine@x>",))
    mine = _msg("<mine@x>", user)
    assert choose_recipient(rejection, "no-reply", "Brightforge", [mine], USER_ADDRS) is None
    from_user = _msg("<r2@x>", user)
    assert choose_recipient(from_user, "person", None, [], {"SAM.RIVERA@example.org"}) is None


def test_earlier_mailing_list_is_not_a_person() -> None:
    rejection = _msg("<r@mail.brightforge.example>", NO_REPLY)
    news = _msg("<n@x>", Address("Brightforge News", "news@brightforge.example"))
    news = replace(news, headers={"list-id": "<news.brightforge.example>"})
    assert choose_recipient(rejection, "no-reply", "Brightforge", [news], USER_ADDRS) is None
