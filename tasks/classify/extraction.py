"""What a verdict names besides its label: the kind of sender, the company, the role and
the person who wrote."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onward.tasks.classify.verdict import SenderKind
from onward.tasks.mail.message import Message

if TYPE_CHECKING:
    from onward.tasks.classify.rules import Rules, _Compiled


@dataclass(frozen=True, slots=True)
class _Sender:
    kind: SenderKind
    ats: str | None
    contact_name: str | None
    contact_addr: str | None
    display: str


def _ats_for(domain: str, ats: Mapping[str, str]) -> str | None:
    parts = domain.lower().split(".")
    for i in range(len(parts) - 1):
        name = ats.get(".".join(parts[i:]))
        if name is not None:
            return name
    return None


def _sender(message: Message, compiled: _Compiled) -> _Sender:
    sender = message.from_
    if sender is None or not sender.addr:
        return _Sender("unknown", None, None, None, "")
    local, _, domain = sender.addr.lower().partition("@")
    ats = _ats_for(domain, compiled.ats)
    no_reply = bool(compiled.no_reply.match(local))
    kind: SenderKind = "ats" if ats else ("no-reply" if no_reply else "person")
    # Replies go to a human: Reply-To first, then From unless nobody reads it.
    addr: str | None = None
    for candidate in (*message.reply_to, sender):
        c_local = candidate.addr.lower().partition("@")[0]
        if candidate.addr and not compiled.no_reply.match(c_local):
            addr = candidate.addr
            break
    name = sender.name.strip().strip('"') or None
    if name is not None and (kind != "person" or _looks_like_team(name)):
        name = None
    return _Sender(kind, ats, name, addr, sender.name)


_TEAM_WORDS = re.compile(
    r"\b(?:team|recruit\w*|talent|careers?|jobs?|hiring|hr|human resources|people|"
    r"notifications?|no-?reply|acquisition|staffing|via)\b",
    re.IGNORECASE,
)


def _looks_like_team(name: str) -> bool:
    return bool(_TEAM_WORDS.search(name)) or "@" in name


_NAME_WORD = r"[A-Z][\w&'’.-]*"
_ORG = rf"(?:{_NAME_WORD}|\[[^\]\n]{{1,40}}\]|\{{\{{?[^}}\n]{{1,40}}\}}?\}}|&|of|and|the|de|for)"
_TEAM = (
    r"(?:[Rr]ecruiting|[Rr]ecruitment|[Tt]alent [Aa]cquisition|[Hh]iring|HR|[Pp]eople|"
    r"[Cc]areers|[Hh]uman [Rr]esources)"
)
_COMPANY_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.MULTILINE)
    for p in (
        # "the Analyst position at Acme", "an opening with Acme"
        rf"\b(?:position|role|opening|opportunity|job|internship|vacancy) (?:at|with) "
        rf"(?P<company>{_ORG}(?: {_ORG}){{0,5}})",
        # "your application to Acme", "interest in Acme", "joining Acme"
        rf"\b(?:[Aa]pplication|[Aa]pplying|[Aa]pplied|[Ii]nterest|[Ii]nterview(?:ing)?|"
        rf"[Cc]areer|[Ee]mployment|[Jj]oin(?:ing)?) (?:to|with|at|in) (?:the )?"
        rf"(?P<company>{_ORG}(?: {_ORG}){{0,5}})",
        # "The Acme Recruiting Team"
        rf"\b[Tt]he (?P<company>{_ORG}(?: {_ORG}){{0,4}}) {_TEAM} [Tt]eam\b",
        # a sign-off line or display name "Acme Talent Acquisition"
        rf"^(?P<company>{_NAME_WORD}(?: {_ORG}){{0,4}}) {_TEAM}(?: [Tt]eam)?\s*$",
    )
)
_ROLE = r"(?P<role>[A-Z0-9\[{(][^\n.,;:!?]{1,80}?)"
_ROLE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        rf"\b(?:the|our|your|an?) {_ROLE} (?:position|role|opening|internship|vacancy)\b",
        rf"\b(?:position|role|post|profile) of {_ROLE}(?= (?:at|with|in|for|on)\b|[.,;\n]|$)",
        rf"\b(?:for|to) (?:the )?{_ROLE} (?:position|role|opening|job)\b",
    )
)
_ROLE_WORD_AFTER = re.compile(
    r"\s+(?:position|role|opening|job|vacancy|internship|program|team\b)", re.IGNORECASE
)
_STOP_COMPANY = {"the", "a", "an", "our", "your", "us", "you", "this", "we", "it", "my", "them"}
_ROLE_STOP = re.compile(
    r"^(?:the|our|this|that|a|an|your|open|available|following|same)\b", re.IGNORECASE
)


def _clean(value: str) -> str | None:
    value = re.split(r"[.!?]\s", value, maxsplit=1)[0]  # never run into the next sentence
    value = value.strip(" \t\"'.,;:-!")
    while value.endswith((" and", " of", " the", " for", " &")):
        value = value.rsplit(" ", 1)[0]
    if not value or value.lower() in _STOP_COMPANY or len(value) > 80:
        return None
    return value


def _extract_company_role(
    subject: str, body: str, message: Message, sender: _Sender, rules: Rules
) -> tuple[str | None, str | None]:
    head = body[:4000]
    tail = body[-1500:]
    company: str | None = None
    for text in (subject, head, tail):
        for pattern in _COMPANY_PATTERNS:
            for m in pattern.finditer(text):
                # "interest in the Data Analyst role": a role, not a company.
                if _ROLE_WORD_AFTER.match(text, m.end()):
                    continue
                company = _clean(m.group("company"))
                if company:
                    break
            if company:
                break
        if company:
            break
    if company is None and sender.display:
        signed = _COMPANY_PATTERNS[3].match(sender.display.strip().strip('"'))
        if signed:
            company = _clean(signed.group("company"))
    if company is None and message.from_ is not None and sender.kind == "person":
        domain = message.from_.addr.lower().partition("@")[2]
        if (
            domain
            and domain not in rules.freemail_domains
            and not _ats_for(domain, rules._compiled.ats)
        ):
            parts = domain.split(".")
            company = parts[-2].capitalize() if len(parts) >= 2 else None
    role: str | None = None
    for text in (subject, head):
        for pattern in _ROLE_PATTERNS:
            for m in pattern.finditer(text):
                candidate = _clean(m.group("role"))
                if candidate and not _ROLE_STOP.match(candidate) and len(candidate.split()) <= 9:
                    role = candidate
                    break
            if role:
                break
        if role:
            break
    return company, role


_SIGN_OFF = re.compile(
    r"^[ \t]*(?:best|kind|warm|warmest)?[ \t]*(?:regards|wishes|sincerely|thanks|thank you|cheers|"
    r"best|yours(?: sincerely| truly)?|respectfully|all the best)[ \t]*[,.!]?[ \t]*\n+[ \t]*"
    r"(?P<name>[A-Z][a-zA-Z'’-]+(?: [A-Z][a-zA-Z'’.-]+){0,2})[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


def _signature_name(body: str, kind: SenderKind) -> str | None:
    """The name under the sign-off, when a person signed the mail."""
    for m in _SIGN_OFF.finditer(body[-1500:]):
        name = m.group("name").strip()
        if name[0].isupper() and not _looks_like_team(name) and name.lower() not in _STOP_COMPANY:
            return name
    return None


# --------------------------------------------------------------------------------------
# Convenience for rows without a raw message (JSONL, tests)
# --------------------------------------------------------------------------------------
