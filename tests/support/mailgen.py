"""Mail written by the tests themselves: plain, HTML, with attachments, malformed."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime


def make_mail(
    n: int,
    *,
    subject: str | None = None,
    body: str | None = None,
    sender: str = "Jordan Hale <jordan.hale@company.example>",
    to: str = "alice@example.org",
    message_id: str | None = None,
    date: datetime | None = None,
    attachment: bytes | None = None,
    html: str | None = None,
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject or f"Message number {n}"
    msg["Date"] = format_datetime(date or datetime(2026, 11, 20, 9, 0, n % 60, tzinfo=UTC))
    msg["Message-ID"] = message_id or f"<test-{n}@company.example>"
    if html is not None and body is None:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(body or f"Hello Alice,\n\nthis is message {n}.\n\nJordan\n")
        if html is not None:
            msg.add_alternative(html, subtype="html")
    if attachment is not None:
        msg.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename="big.bin"
        )
    return msg.as_bytes()


MALFORMED = b"\x00\x01 this is not a mail message at all \xff\xfe"
