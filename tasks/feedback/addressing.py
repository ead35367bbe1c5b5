"""Writing addresses into a draft's header as RFC 5322 allows, and choosing the From.

Python's header model refuses addresses that RFC 5322 accepts (a local part over 64
characters, one that needs quoting, an underscore in the domain, a domain literal such as
``[127.0.0.1]``). Those are written here by hand: a dot-atom where the text allows it, a
quoted-string otherwise, a domain-literal as it came. What cannot be written in a 7-bit
header (a non-ASCII local part, control characters) raises ``UnwritableAddressError`` with a
sentence a person can act on; the caller then leaves the To out.
"""

from __future__ import annotations

import email.header
import email.utils
import re
from collections.abc import Collection, Sequence
from typing import Any

from onward.tasks.mail.message import Address

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_DOMAIN_LITERAL = re.compile(r"\[[!-Z^-~]*\]")  # dtext: printable ASCII but [ ] \
_PRINTABLE = re.compile(r"[ -~]*")
_AMBIGUOUS = re.compile(r'[\s@,;:<>"\\]')
# RFC 5321's longest path; nothing longer is an address a mail server would deliver to.
MAX_ADDRESS = 254
_NAME_LIMIT = 80


class UnwritableAddressError(ValueError):
    """An address that cannot be written into a draft's header; ``str()`` says why."""


def addr_spec(addr: str) -> str:
    """``local@domain`` as RFC 5322 writes it: the local part quoted when it must be."""
    text = addr.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise UnwritableAddressError(f"{_show(text)} is not an e-mail address")
    if len(text) > MAX_ADDRESS:
        raise UnwritableAddressError(f"the address {_show(text)} is too long to reply to")
    return f"{_local_part(local, text)}@{_domain(domain, text)}"


def _local_part(local: str, whole: str) -> str:
    if _DOT_ATOM.fullmatch(local):
        return local
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        local = re.sub(r"\\(.)", r"\1", local[1:-1])  # already quoted: write it afresh
    if not local.isascii():
        raise UnwritableAddressError(
            f"the address {_show(whole)} has non-ASCII characters before the @, which a"
            " draft's header cannot carry"
        )
    if not _PRINTABLE.fullmatch(local) or _AMBIGUOUS.search(local):
        # Quoting would make these one address, but they read as several, or as a
        # header trick: not written on a guess.
        raise UnwritableAddressError(f"{_show(whole)} is not an e-mail address onward can write")
    if _DOT_ATOM.fullmatch(local):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _domain(domain: str, whole: str) -> str:
    domain = domain.rstrip(".")
    if _DOMAIN_LITERAL.fullmatch(domain):
        return domain
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UnwritableAddressError(
                f"the domain of {_show(whole)} is not a valid name"
            ) from exc
    if not _DOT_ATOM.fullmatch(domain):
        raise UnwritableAddressError(f"the domain of {_show(whole)} is not a valid name")
    return domain


def _show(text: str) -> str:
    visible = "".join(c if c.isprintable() else "?" for c in text)
    return repr(visible if len(visible) <= 80 else visible[:77] + "...")


def header_address(address: Address, clean_name: Any = None) -> str:
    """The header value ``Name <local@domain>``, on one line, 7-bit."""
    spec = addr_spec(address.addr)
    name = address.name
    if clean_name is not None:
        name = clean_name(name, _NAME_LIMIT)
    if not name:
        return spec
    if name.isascii():
        return email.utils.formataddr((name, spec))
    encoded = email.header.Header(name, "utf-8").encode()
    # Folding whitespace between encoded words is ignored (RFC 2047 §6.2): keep one line.
    return f"{' '.join(encoded.split())} <{spec}>"


def writable(address: Address) -> bool:
    try:
        addr_spec(address.addr)
    except UnwritableAddressError:
        return False
    return True


def unwritable_reason(address: Address) -> str:
    try:
        addr_spec(address.addr)
    except UnwritableAddressError as exc:
        return str(exc)
    return ""


def choose_from(
    recipients: Sequence[str], account_address: str | None, user_addresses: Collection[str]
) -> str | None:
    """The person's address on the channel the rejection came by: the first address it was
    delivered to (Delivered-To, To, Cc) that is theirs, else the account's address."""
    own = {a.strip().lower() for a in user_addresses if a}
    if account_address:
        own.add(account_address.strip().lower())
    for addr in recipients:
        candidate = addr.strip().lower()
        if candidate in own and writable(Address("", candidate)):
            return candidate
    return account_address
