"""Reading contacts from files: a LinkedIn ``Connections.csv`` export, vCard, or a CSV.

Pure: a file becomes ``ParsedContact`` rows and ``RowProblem``s (line number and a
readable reason). One bad row never stops the rest.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from onward.tasks.errors import ConfigError
from onward.tasks.feedback.replies import clean_text

Format = Literal["linkedin", "vcard", "csv"]

MAX_BYTES = 20 * 1024 * 1024
_EMAIL = re.compile(r"[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[A-Za-z0-9-]{2,}")
_LINKEDIN_HEADER = ("first name", "last name", "url")

# Column names a plain CSV may use, lower-cased without spaces, dashes or underscores.
_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "fullname", "displayname", "contact", "contactname", "person"),
    "first_name": ("firstname", "givenname", "first"),
    "last_name": ("lastname", "surname", "familyname", "last"),
    "email": ("email", "emailaddress", "mail", "email1", "emailaddress1", "primaryemail"),
    "company": ("company", "organization", "organisation", "org", "employer", "companyname"),
    "position": ("position", "title", "jobtitle", "role", "job"),
    "url": ("url", "profile", "profileurl", "linkedin", "linkedinurl", "website", "link"),
    "connected_on": ("connectedon", "connected", "since", "date"),
}


@dataclass(frozen=True)
class ParsedContact:
    line: int
    name: str
    email: str | None = None
    company: str | None = None
    position: str | None = None
    profile_url: str | None = None
    connected_on: date | None = None


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str


@dataclass(frozen=True)
class ParsedFile:
    format: Format
    contacts: list[ParsedContact]
    problems: list[RowProblem]


def read_contacts_file(path: Path) -> ParsedFile:
    """Parse ``path`` by its content: vCard, a LinkedIn export (with its "Notes:"
    preamble) or a CSV with a header. ConfigError when the file cannot be any of them."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES // 2**20} MB; is it a contacts file?")
    if b"\x00" in raw[:4096]:
        raise ConfigError(f"{path}: a binary file; expected a CSV or vCard (.vcf) export")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "BEGIN:VCARD" in text.upper()[:65536]:
        return parse_vcards(text)
    return parse_csv(text, str(path))


# --- normalising ------------------------------------------------------------------------


def normalise_email(value: str | None) -> str | None:
    text = clean_text(value, 320).strip("<>").lower()
    if text.startswith("mailto:"):
        text = text[7:]
    return text or None


def valid_email(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None


def normalise_url(value: str | None) -> str | None:
    """``https://www.linkedin.com/in/Jane-Doe/?x=1`` → ``linkedin.com/in/jane-doe``."""
    text = clean_text(value, 500)
    if not text:
        return None
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text, flags=re.IGNORECASE)
    text = text.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    text = re.sub(r"^www\.", "", text, flags=re.IGNORECASE).lower()
    return text or None


def valid_url(value: str) -> bool:
    host = value.split("/", 1)[0]
    return "." in host and " " not in value and re.fullmatch(r"[a-z0-9.:-]+", host) is not None


def parse_date(value: str) -> date | None:
    """LinkedIn writes "12 Mar 2024"; ISO dates are accepted too. None when empty."""
    text = value.strip()
    if not text:
        return None
    for fmt in ("%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%b %d, %Y", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date like 12 Mar 2024")


def _contact(
    line: int,
    name: str,
    email: str | None,
    company: str | None,
    position: str | None,
    url: str | None,
    connected: str | None,
) -> ParsedContact:
    """One checked contact; ValueError with the reason when the row cannot be used."""
    clean_name = clean_text(name, 200)
    mail = normalise_email(email)
    if mail is not None and not valid_email(mail):
        raise ValueError(f"e-mail {email!r} is not an address")
    profile = normalise_url(url)
    if profile is not None and not valid_url(profile):
        raise ValueError(f"URL {url!r} is not a web address")
    if not clean_name:
        if mail is None:
            raise ValueError("no name and no e-mail address")
        clean_name = mail
    return ParsedContact(
        line=line,
        name=clean_name,
        email=mail,
        company=clean_text(company, 200) or None,
        position=clean_text(position, 200) or None,
        profile_url=profile,
        connected_on=parse_date(connected) if connected else None,
    )


# --- CSV and the LinkedIn export ---------------------------------------------------------


def _key(column: str) -> str:
    return re.sub(r"[\s_\-.]+", "", column.strip().lower())


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields); a quoted field may span lines."""
    reader = csv.reader(io.StringIO(text))
    start = 1
    try:
        for fields in reader:
            yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from exc


def _header_index(lines: list[str]) -> tuple[int, Format]:
    """Where the header is: LinkedIn puts a few "Notes:" lines before it."""
    for index, line in enumerate(lines[:30]):
        columns = [_key(c) for c in next(csv.reader([line]), [])]
        if all(_key(h) in columns for h in _LINKEDIN_HEADER):
            return index, "linkedin"
    for index, line in enumerate(lines):
        if line.strip():
            return index, "csv"
    return 0, "csv"


def parse_csv(text: str, origin: str = "file") -> ParsedFile:
    lines = text.split("\n")
    skip, fmt = _header_index(lines)
    body = "\n".join(lines[skip:])
    try:
        records = list(_records(body))
    except ValueError as exc:
        raise ConfigError(f"{origin}: not a readable CSV ({exc})") from exc
    if not records:
        raise ConfigError(f"{origin}: empty; expected a CSV with a header row")
    header_line, header = records[0]
    columns: dict[str, int] = {}
    for position, column in enumerate(header):
        for field, aliases in _ALIASES.items():
            if _key(column) in aliases and field not in columns:
                columns[field] = position
    if not {"name", "first_name", "last_name", "email"} & columns.keys():
        raise ConfigError(
            f"{origin}, line {header_line + skip}: no name or e-mail column in the header "
            f"({', '.join(h.strip() for h in header) or 'empty'}); expected columns like "
            "name, email, company, position, url"
        )
    contacts: list[ParsedContact] = []
    problems: list[RowProblem] = []
    for start, fields in records[1:]:
        line = start + skip
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            problems.append(RowProblem(line, f"expected {len(header)} fields, found {len(fields)}"))
            continue

        def get(field: str, row: list[str] = fields) -> str:
            return row[columns[field]].strip() if field in columns else ""

        name = get("name") or " ".join(p for p in (get("first_name"), get("last_name")) if p)
        try:
            contacts.append(
                _contact(
                    line,
                    name,
                    get("email"),
                    get("company"),
                    get("position"),
                    get("url"),
                    get("connected_on"),
                )
            )
        except ValueError as exc:
            problems.append(RowProblem(line, str(exc)))
    return ParsedFile(fmt, contacts, problems)


# --- vCard -------------------------------------------------------------------------------


def _cards(text: str) -> Iterator[tuple[int, str]]:
    """(line of BEGIN:VCARD, the card's text); each card is parsed on its own."""
    start: int | None = None
    block: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        upper = line.strip().upper()
        if upper == "BEGIN:VCARD":
            if start is not None:  # an unterminated card: report it, go on
                yield start, "\n".join(block)
            start, block = number, [line]
        elif start is not None:
            block.append(line)
            if upper == "END:VCARD":
                yield start, "\n".join(block)
                start, block = None, []
    if start is not None:
        yield start, "\n".join(block)


def _value(card: object, name: str) -> str:
    prop = getattr(card, name, None)
    value = getattr(prop, "value", None)
    if isinstance(value, list | tuple):
        value = " ".join(str(v) for v in value if v)
    return str(value).strip() if value else ""


def parse_vcards(text: str) -> ParsedFile:
    import vobject  # type: ignore[import-untyped]

    contacts: list[ParsedContact] = []
    problems: list[RowProblem] = []
    for line, block in _cards(text):
        if not block.strip().upper().endswith("END:VCARD"):
            problems.append(RowProblem(line, "the card has no END:VCARD"))
            continue
        try:
            card = vobject.readOne(block)
        except Exception as exc:  # vobject raises assorted errors for broken cards
            problems.append(RowProblem(line, f"not a readable vCard ({exc})".replace("\n", " ")))
            continue
        name = _value(card, "fn")
        if not name and hasattr(card, "n"):
            n = card.n.value
            name = " ".join(p for p in (n.given, n.additional, n.family) if p)
        org = getattr(card, "org", None)
        company = ""
        if org is not None:
            parts = org.value if isinstance(org.value, list) else [org.value]
            company = str(parts[0]) if parts else ""
        try:
            contacts.append(
                _contact(
                    line,
                    name,
                    _value(card, "email"),
                    company,
                    _value(card, "title"),
                    _value(card, "url"),
                    None,
                )
            )
        except ValueError as exc:
            problems.append(RowProblem(line, str(exc)))
    if not contacts and not problems:
        raise ConfigError("no vCards found (expected BEGIN:VCARD ... END:VCARD)")
    return ParsedFile("vcard", contacts, problems)
