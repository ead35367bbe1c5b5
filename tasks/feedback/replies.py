"""The feedback request: render its text, choose who gets it, build the draft message.

Pure functions: nothing here touches a mailbox; the only I/O is reading templates.
Everything that reaches a mail header is cleaned here, so hostile names and subjects
in a rejection cannot add headers (header injection) to the draft.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
import traceback
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from onward.tasks.errors import ConfigError
from onward.tasks.feedback.addressing import header_address
from onward.tasks.mail.addresses import FREEMAIL_DOMAINS, is_no_reply, registered_domain
from onward.tasks.mail.message import Address, Message
from onward.tasks.mail.message_ids import LONG_ID_DOMAIN

FEEDBACK_TEMPLATE = "feedback_request.txt.j2"
FEEDBACK_HEADER = "X-Onward-Feedback-For"
# config is a plain package on disk (also in the editable install), so this is a real path.
PACKAGED_TEMPLATES = Path(str(resources.files("onward.config").joinpath("templates")))

MAX_REFERENCES = 20
_NAME_LIMIT = 80
_COMPANY_LIMIT = 100
_ROLE_LIMIT = 120
_SUBJECT_LIMIT = 250
_EMPTY_SUBJECT = "your message"

# Characters that end a header line or hide text: C0/C1 controls, format characters
# (bidi overrides, zero-width), and the Unicode line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})

_REPLY_PREFIX = re.compile(
    r"(?:re|aw|sv|vs|antw|antwort|odp)\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*:\s*", re.IGNORECASE
)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# A message id we are willing to copy into a header verbatim: printable ASCII, one <...>.
_MSGID = re.compile(r"<[!-;=?-~]{1,900}>")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TITLES = _words(
    "dr mr mrs ms miss mx prof professor sir dame madam herr frau mme mlle sr sra srta"
)
_SUFFIXES = _words("phd md mba msc bsc ma ba jr sr ii iii iv esq cpa sphr phr")
_TEAM_WORDS = _words(
    "team recruiting recruitment recruiter recruiters talent careers career jobs job hiring"
    " hr people acquisition department dept staffing resources office admin support info"
    " notifications noreply no-reply reply services service group applications candidates"
    " company inc ltd llc gmbh"
)
_COMPANY_SUFFIXES = _words(
    "inc incorporated ltd limited llc llp gmbh ag sa sas bv nv plc corp corporation co"
    " company group holdings"
)
_ROLE_TAIL = re.compile(r"\s+(?:role|position|opening|vacancy|job)$", re.IGNORECASE)


@dataclass(frozen=True)
class ReplyContext:
    """What the feedback request may mention; every field may be unknown except the subject."""

    contact_name: str | None
    company: str | None
    role: str | None
    sender_name: str | None
    original_subject: str
    original_date: datetime | None


# --- cleaning -----------------------------------------------------------------------------


def clean_text(value: str | None, limit: int = 200) -> str:
    """One line of visible text: control characters become spaces, runs of space collapse."""
    if not value:
        return ""
    chars = (" " if unicodedata.category(c) in _HIDDEN_CATEGORIES else c for c in value)
    text = " ".join("".join(chars).split())
    if len(text) > limit:
        text = text[:limit].rstrip()
    return text


def _clean_optional(value: str | None, limit: int) -> str | None:
    return clean_text(value, limit) or None


def first_name(contact_name: str | None, company: str | None = None) -> str | None:
    """The first name to greet, or None when the name is missing, a team, or all capitals."""
    name = clean_text(contact_name, _NAME_LIMIT).strip("\"'()[] ")
    if not name or "@" in name or any(c.isdigit() for c in name):
        return None
    letters = [c for c in name if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return None
    words = [w.strip(".").lower() for w in re.split(r"[\s,/&|]+", name) if w]
    if any(w in _TEAM_WORDS for w in words):
        return None
    company_key = _company_key(company)
    if company_key and company_key in {_alnum(name), *(_alnum(w) for w in words)}:
        return None
    if "," in name:
        before, _, after = name.partition(",")
        after_words = [w.strip(".").lower() for w in after.split()]
        # "Dubois, Renée" is surname first; "Renée Dubois, PhD" only adds a degree.
        surname_first = after_words and not all(w in _SUFFIXES for w in after_words)
        name = after if surname_first else before
    tokens = [t for t in name.split() if t]
    while tokens and tokens[0].rstrip(".").lower() in _TITLES and len(tokens) > 1:
        tokens.pop(0)
    if not tokens:
        return None
    first = tokens[0].strip(".,;:")
    # An initial ("J.") or a lone title ("Dr.") is no name to greet anyone by.
    if sum(c.isalpha() for c in first) < 2 or first.lower() in _TITLES:
        return None
    if first.islower():
        first = first[0].upper() + first[1:]
    return first


def _alnum(value: str) -> str:
    return "".join(c for c in value.lower() if c.isalnum())


def _company_key(company: str | None) -> str:
    words = [w for w in re.split(r"[\s,.]+", clean_text(company, _COMPANY_LIMIT).lower()) if w]
    while len(words) > 1 and words[-1] in _COMPANY_SUFFIXES:
        words.pop()
    key = _alnum("".join(words))
    return key if len(key) >= 3 else ""


def _clean_role(role: str | None) -> str | None:
    text = clean_text(role, _ROLE_LIMIT)
    if text.lower().startswith("the "):
        text = text[4:]
    stripped = _ROLE_TAIL.sub("", text)
    return (stripped or text) or None


# --- rendering ----------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _environment(search_path: tuple[str, ...]) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(list(search_path)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template_variables(context: ReplyContext) -> dict[str, Any]:
    """The cleaned values a feedback template sees (documented in the packaged template)."""
    company = _clean_optional(context.company, _COMPANY_LIMIT)
    return {
        "first_name": first_name(context.contact_name, company),
        "contact_name": _clean_optional(context.contact_name, _NAME_LIMIT),
        "company": company,
        "role": _clean_role(context.role),
        "sender_name": _clean_optional(context.sender_name, _NAME_LIMIT),
        "original_subject": clean_text(context.original_subject, _SUBJECT_LIMIT),
        "original_date": context.original_date,
    }


def render_feedback_request(context: ReplyContext, *, template_dirs: Sequence[Path] = ()) -> str:
    """The feedback request text; a template in ``template_dirs`` overrides the packaged one."""
    search_path = (*(str(d) for d in template_dirs), str(PACKAGED_TEMPLATES))
    env = _environment(search_path)
    try:
        template = env.get_template(FEEDBACK_TEMPLATE)
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or exc.name or FEEDBACK_TEMPLATE}, line {exc.lineno}"
        raise ConfigError(f"template {where}: {exc.message}") from exc
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(
            f"template {FEEDBACK_TEMPLATE} not found in {', '.join(search_path)}"
        ) from exc
    variables = template_variables(context)
    try:
        text = template.render(variables)
    except jinja2.TemplateError as exc:
        filename = template.filename or FEEDBACK_TEMPLATE
        line = _template_line(exc, filename)
        where = f"{filename}, line {line}" if line else filename
        problem = (exc.message or type(exc).__name__).rstrip(".")
        if isinstance(exc, jinja2.UndefinedError):
            problem += f" (a template may use: {', '.join(variables)})"
        raise ConfigError(f"template {where}: {problem}") from exc
    return _tidy(text)


def _template_line(exc: BaseException, filename: str) -> int | None:
    # Jinja rewrites tracebacks so that template frames carry the template's file and line.
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return lines[-1] if lines else None


def _tidy(text: str) -> str:
    # "-- " keeps its space: it is the signature separator mail clients look for.
    lines = [
        line if line == "-- " else line.rstrip() for line in text.replace("\r\n", "\n").split("\n")
    ]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return body + "\n"


# --- subject and addresses ----------------------------------------------------------------


def reply_subject(subject: str) -> str:
    """The reply's subject: one "Re: " in front, unless a single reply prefix is already there."""
    text = clean_text(subject, _SUBJECT_LIMIT)
    prefixes = 0
    rest = text
    while match := _REPLY_PREFIX.match(rest):
        prefixes += 1
        rest = rest[match.end() :]
    if not rest:
        return f"Re: {_EMPTY_SUBJECT}"
    if prefixes == 1:
        return text
    return f"Re: {rest}"


def _valid_domain(domain: str) -> str:
    domain = domain.rstrip(".")
    if domain and not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"invalid email domain: {domain!r}") from exc
    if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
        raise ValueError(f"invalid email domain: {domain!r}")
    return domain


def _msgid(value: str | None) -> str | None:
    """``value`` only if it is one well-formed Message-ID, safe to write into a header
    (the parser already normalised it; anything else is dropped, never repaired)."""
    value = (value or "").strip()
    if value.endswith(f"@{LONG_ID_DOMAIN}>"):
        return None  # a digest standing in for an absurdly long id: no real message has it
    return value if _MSGID.fullmatch(value) else None


def _fold_ids(ids: Sequence[str]) -> str:
    return "\r\n ".join(ids)


# Headers holding message ids are set raw and never refolded: the default folder turns
# an id longer than a line into RFC 2047 encoded words, which breaks threading and the
# Drafts SEARCH HEADER for the marker.
_POLICY = email.policy.SMTP.clone(refold_source="none")


def build_reply(
    original: Message,
    body: str,
    *,
    from_: Address,
    to: Address | None,
    marker: str,
    date: datetime | None = None,
    message_id_domain: str | None = None,
) -> bytes:
    """The draft reply as RFC 5322 bytes (CRLF), threaded under ``original``.

    ``to`` None leaves out the To header (the person picks a recipient in their client).
    ``marker`` goes in X-Onward-Feedback-For, the key Drafts are searched by before APPEND.
    Raises ``UnwritableAddressError`` (a ValueError) for an address that cannot be written.
    """
    msg = EmailMessage(policy=_POLICY)
    msg.set_raw("From", header_address(from_, clean_text))
    if to is not None:
        msg.set_raw("To", header_address(to, clean_text))
    msg["Subject"] = reply_subject(original.subject)
    msg["Date"] = email.utils.format_datetime(date or datetime.now(UTC))
    try:
        domain = _valid_domain(message_id_domain or from_.addr.rpartition("@")[2])
    except ValueError:  # a domain literal or an odd name: the id only needs to be unique
        domain = "onward.invalid"
    msg.set_raw("Message-ID", email.utils.make_msgid(domain=domain))

    parent = _msgid(original.message_id)
    if parent:
        msg.set_raw("In-Reply-To", parent)
    references = [r for r in (_msgid(r) for r in original.references) if r and r != parent]
    chain = [*references[-(MAX_REFERENCES - 1) :], *([parent] if parent else [])]
    if chain:
        msg.set_raw("References", _fold_ids(chain))

    key = clean_text(marker, 900)
    if not key:
        raise ValueError("empty feedback marker")
    if key.isascii():
        msg.set_raw(FEEDBACK_HEADER, key)
    else:
        msg[FEEDBACK_HEADER] = key

    msg.set_content(_clean_body(body), subtype="plain", charset="utf-8")
    return msg.as_bytes()


def _clean_body(body: str) -> str:
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        c if c in "\n\t" or unicodedata.category(c) not in _HIDDEN_CATEGORIES else " " for c in text
    )


# --- recipient ----------------------------------------------------------------------------


def _usable(address: Address, user: frozenset[str]) -> bool:
    addr = address.addr.strip().lower()
    return "@" in addr and addr not in user and not is_no_reply(addr)


def _direct(message: Message, user: frozenset[str]) -> Address | None:
    """Reply-To's first usable address, else From: where a reply to this message goes."""
    for address in message.reply_to:
        if _usable(address, user):
            return address
    if message.from_ is not None and _usable(message.from_, user):
        return message.from_
    return None


def _is_automated(message: Message) -> bool:
    auto = message.headers.get("auto-submitted", "no").strip().lower()
    return "list-id" in message.headers or not auto.startswith("no")


def choose_recipient(
    rejection: Message,
    sender_kind: str,
    company: str | None,
    earlier: Sequence[Message],
    user_addresses: Collection[str],
) -> Address | None:
    """The human to ask for feedback, or None when there is nobody to ask.

    A person's rejection is answered on its own channel. A no-reply or ATS rejection is
    answered to the latest earlier human (``earlier`` is oldest first) from the same
    organisation (registered domain of the rejection's senders, or the company name as
    the domain's name) or from the same thread.
    """
    user = frozenset(a.strip().lower() for a in user_addresses)
    if sender_kind not in ("no-reply", "ats"):
        direct = _direct(rejection, user)
        if direct is not None:
            return direct

    senders = [a for a in (rejection.from_, rejection.sender, *rejection.reply_to) if a]
    org_domains = {registered_domain(a.addr) for a in senders} - FREEMAIL_DOMAINS - {""}
    company_key = _company_key(company)
    thread = {i for i in (*rejection.references, rejection.in_reply_to) if i}

    for message in reversed(earlier):
        if message.key == rejection.key or _is_automated(message):
            continue
        candidate = _direct(message, user)
        if candidate is None:
            continue
        in_thread = message.message_id in thread or bool(
            thread & {*message.references, message.in_reply_to}
        )
        domain = registered_domain(candidate.addr)
        same_org = domain in org_domains or (
            bool(company_key)
            and domain not in FREEMAIL_DOMAINS
            and _alnum(domain.split(".")[0]) == company_key
        )
        if in_thread or same_org:
            return candidate
    return None
