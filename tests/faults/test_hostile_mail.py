"""A few hundred hostile messages among real rejections, delivered to Dovecot (and to a
Maildir), synced with the real flow under the Prefect harness, on SQLite and PostgreSQL:
no crash, every distinct message recorded once with its reason, every rejection drafted
once (or left for a recipient, with the reason), memory bounded. Prints its figures.

    ONWARD_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
    ONWARD_REQUIRE_DOVECOT=1 ./run pytest -s tests/faults/test_hostile_mail.py
"""

from __future__ import annotations

import base64
import resource
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from onward.tasks.store import FeedbackRequest, LedgerEntry
from tests.support.world import World, rejection_mail, world

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
__all__ = ["world"]

HOSTILE_PER_KIND = 18
REJECTIONS = 12
ODD_SENDERS = [
    "Jordan Hale <jordan.hale@brightforge.example>",
    f"Lo Ng <{'l' * 90}@brightforge.example>",
    "Una Der <una@mail_hr.brightforge.example>",
    "Ip Lit <ip@[127.0.0.1]>",
    "Renée <renée@brightforge.example>",
    "Do Ts <do..ts@brightforge.example>",
]


def _head(n: int, kind: str, extra: str = "", subject: str | None = None) -> str:
    when = format_datetime(datetime.now(UTC) - timedelta(minutes=3))
    return (
        f"From: Sender {n} <sender{n}@news.example>\r\nTo: alice@example.org\r\n"
        f"Subject: {subject or f'{kind} number {n}'}\r\nDate: {when}\r\n"
        f"Message-ID: <{kind}-{n}@hostile.example>\r\n{extra}"
    )


def _hostile(n: int) -> list[tuple[str, bytes]]:
    """One message of every hostile kind, numbered ``n`` (each distinct)."""
    text = f"Nothing to see here, message {n}.\r\n"
    boundary = f"b{n}"
    nest = "".join(
        f"Content-Type: multipart/mixed; boundary=n{i}\r\n\r\n--n{i}\r\n" for i in range(60)
    )
    out = [
        (
            "broken-mime",
            (
                _head(n, "broken-mime")
                + f"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary={boundary}"
                + f"\r\n\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n{text}"
                + "--wrong\r\nContent-Type: text/html\r\n\r\n<p>unclosed"
            ).encode(),
        ),
        (
            "unknown-charset",
            _head(
                n, "unknown-charset", f"Content-Type: text/plain; charset=x-nope-{n}\r\n"
            ).encode()
            + b"\r\n\xff\xfe odd bytes "
            + text.encode(),
        ),
        (
            "8bit-headers",
            _head(n, "8bit", subject=f"caf\xe9 {n}").encode("latin-1")
            + b"X-Raw: \xc3\x28\xa0\xa1\r\n\r\n"
            + text.encode(),
        ),
        (
            "huge-header",
            _head(n, "huge-header", "X-Big: " + "a" * 200_000 + "\r\n").encode()
            + b"\r\n"
            + text.encode(),
        ),
        (
            "long-message-id",
            _head(n, "x", subject=f"long id {n}")
            .replace(f"<x-{n}@hostile.example>", f"<{'i' * 1007}-{n}@hostile.example>")
            .encode()
            + b"\r\n"
            + text.encode(),
        ),
        ("no-header", f"\r\n\r\nJust a body, no header at all, number {n}.\r\n".encode()),
        (
            "cr-only",
            _head(n, "cr-only").replace("\r\n", "\r").encode() + b"\r" + text.encode(),
        ),
        ("deep-nesting", (_head(n, "deep") + nest + text).encode()),
        (
            "nul-bytes",
            _head(n, "nul", "X-Nul: a\x00b\r\n").encode()
            + b"\r\nbody\x00with\x00nul "
            + text.encode(),
        ),
        (
            "header-injection",
            (
                _head(n, "inject", subject=f"=?utf-8?q?hi_{n}=0D=0ABcc:_x@evil.example?=").replace(
                    f"Sender {n}", f'"Eve\\r\\nBcc: x@evil.example {n}"'
                )
                + "\r\n"
                + text
            ).encode(),
        ),
        (
            "odd-address",
            _head(n, "odd").replace(f"sender{n}@news.example", f"{'q' * 80}{n}@[10.0.0.1]").encode()
            + b"\r\n"
            + text.encode(),
        ),
    ]
    if n == 0:
        out.append(
            (
                "huge-subject",
                (_head(n, "huge-subject", subject="S" * 2_100_000) + "\r\n" + text).encode(),
            )
        )
        attachment = b"A" * (20 * 1024 * 1024)
        out.append(
            (
                "20mb-attachment",
                (
                    _head(n, "attachment")
                    + "MIME-Version: 1.0\r\n"
                    + f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n"
                    + f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n{text}--{boundary}\r\n"
                    + "Content-Type: application/octet-stream\r\n"
                    + "Content-Transfer-Encoding: base64\r\n\r\n"
                ).encode()
                + base64.encodebytes(attachment)
                + f"--{boundary}--\r\n".encode(),
            )
        )
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_hostile_mail_blocks_nothing(world: World) -> None:
    mail: list[tuple[str, bytes]] = []
    rejection_ids = []
    for n in range(HOSTILE_PER_KIND):
        mail.extend(_hostile(n))
    step = max(1, len(mail) // REJECTIONS)
    for i in range(REJECTIONS):  # spread among the hostile ones, poison senders first
        msg_id = f"<real-{i}@brightforge.example>"
        rejection_ids.append(msg_id)
        raw = rejection_mail(msg_id, from_=ODD_SENDERS[i % len(ODD_SENDERS)], company=f"Firm{i}")
        mail.insert(min(len(mail), i * step + 1), ("rejection", raw))
    kinds = Counter(kind for kind, _ in mail)
    megabytes = sum(len(raw) for _, raw in mail) / 1e6

    started = time.monotonic()
    for _, raw in mail:
        world.deliver(raw)
    delivered = time.monotonic() - started

    rss_before = _rss_mb()
    started = time.monotonic()
    code = world.sync()
    synced = time.monotonic() - started
    rss_after = _rss_mb()
    again = world.sync()

    entries = world.query(LedgerEntry)
    requests = world.query(FeedbackRequest)
    drafts = world.drafts()
    statuses = Counter(e.status for e in entries)
    states = Counter(r.state for r in requests)
    print(
        f"\nhostile mail [{world.kind}, {world.settings.database_url.split(':')[0]}]:"
        f" {len(mail)} messages ({megabytes:.1f} MB; {dict(kinds)}),"
        f" delivered in {delivered:.1f} s, synced in {synced:.1f} s (exit {code}, then {again});"
        f" ledger {len(entries)} rows {dict(statuses)}; requests {dict(states)};"
        f" drafts {len(drafts)}; peak RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after"
    )

    assert code == 0
    assert again == 0
    # Every distinct message recorded exactly once, each with its reason when malformed.
    assert len(entries) == len(mail)
    assert len({e.key for e in entries}) == len(entries)
    assert all(e.error for e in entries if e.status != "recorded")
    # Every real rejection drafted exactly once (or left for a recipient, with the reason).
    by_id = {e.message_id: e for e in entries}
    drafted_for = Counter(str(d["X-Onward-Feedback-For"]) for d in drafts)
    for msg_id in rejection_ids:
        assert by_id[msg_id].label == "rejection", msg_id
        assert drafted_for[msg_id] == 1, msg_id
    assert len(requests) == len(drafts)
    assert all(r.note for r in requests if r.state == "needs_recipient")
    assert not [r for r in requests if r.state not in ("drafted", "needs_recipient")]
    # The 20 MB attachment and the 2 MB subject are never held whole, twice over.
    assert rss_after - rss_before < 200
