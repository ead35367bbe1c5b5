"""Facts about mail addresses that several capabilities need, in one place: who is nobody
(no-reply, notifications, bounces), which domains are free mail (not an organisation),
and an address's organisation domain."""

from __future__ import annotations

import re

_NO_REPLY_LOCAL = re.compile(
    r"no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|notifications?|notify"
    r"|mailer[-_.]?daemon|postmaster|bounces?|auto[-_.]?(?:reply|responder|mailer)"
    r"|unsubscribe",
    re.IGNORECASE,
)
_NO_REPLY_DOMAIN_LABELS = frozenset({"noreply", "no-reply", "bounce", "bounces", "mailer-daemon"})
_SECOND_LEVEL = frozenset({"co", "com", "ac", "org", "net", "gov", "edu", "ne", "or", "go"})
# Free mail: an address there says nothing about the organisation behind it.
FREEMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "yandex.ru",
        "fastmail.com",
        "zoho.com",
    }
)


def is_no_reply(addr: str) -> bool:
    """True for addresses nobody reads: no-reply, notifications, bounces, mailer-daemon."""
    local, _, domain = addr.strip().lower().rpartition("@")
    if _NO_REPLY_LOCAL.search(local or domain):
        return True
    return any(label in _NO_REPLY_DOMAIN_LABELS for label in domain.split("."))


def registered_domain(addr_or_domain: str) -> str:
    """The organisation's domain: ``mail.brightforge.example`` → ``brightforge.example``.

    A heuristic without the public suffix list: two labels, three under ``co.uk``-like
    second levels.
    """
    domain = addr_or_domain.strip().lower().rpartition("@")[2].rstrip(".")
    labels = [label for label in domain.split(".") if label]
    keep = 2
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        keep = 3
    return ".".join(labels[-keep:])
