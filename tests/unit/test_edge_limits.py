"""Limits at the edge: whatever a message holds, the ledger row fits its columns, and
distinct messages keep distinct keys (issue 12, items 2 and 3)."""

from __future__ import annotations

from onward.tasks.mail.decide import MAX_ADDRESS, parse_row
from onward.tasks.mail.mailbox import Fetched
from onward.tasks.mail.message_ids import MAX_MESSAGE_ID, message_id_from_header
from onward.tasks.store import LedgerEntry

COLUMN_LIMITS = {
    c.name: c.type.length
    for c in LedgerEntry.__table__.columns
    if getattr(c.type, "length", None) is not None
}


def _row(raw: bytes, uid: int = 1, uidvalidity: int = 7) -> dict[str, object]:
    return parse_row(Fetched(uid, raw, len(raw)), uidvalidity)


def _fits(row: dict[str, object]) -> None:
    for name, limit in COLUMN_LIMITS.items():
        value = row.get(name)
        assert value is None or len(str(value)) <= limit, (name, len(str(value)))


def test_an_over_long_message_id_is_stored_as_its_digest_everywhere() -> None:
    long_id = "<" + "x" * 1005 + "@example.com>"
    head = f"Message-ID: {long_id}\r\nIn-Reply-To: {long_id}\r\nReferences: {long_id}\r\n"
    raw = (head + "From: a@b.example\r\nSubject: s\r\n\r\nbody\r\n").encode()
    row = _row(raw)
    _fits(row)
    assert row["status"] == "recorded"
    assert row["key"] == row["message_id"] == row["in_reply_to"]
    assert len(str(row["key"])) <= MAX_MESSAGE_ID
    assert row["references"] == [row["key"]]
    # The rescan's known-message check reads the raw header: it must agree.
    assert message_id_from_header(head.encode()) == row["key"]
    other = _row(raw.replace(b"x@example", b"y@example"))
    assert other["key"] != row["key"]


def test_huge_subject_and_address_fit_the_columns() -> None:
    addr = "a" * 400 + "@example.com"
    raw = (
        f"Message-ID: <m@x>\r\nFrom: Big <{addr}>\r\nSubject: {'s' * 2_000_000}\r\n\r\nhi\r\n"
    ).encode()
    row = _row(raw)
    _fits(row)
    assert row["from_addr"] is None  # longer than any deliverable address
    assert len(addr) > MAX_ADDRESS


def test_headerless_messages_keep_distinct_keys() -> None:
    # IMAP: a message without one header field reaches the parser as nothing at all.
    keys = {_row(b"", uid=uid)["key"] for uid in range(1, 30)}
    assert len(keys) == 29
    # Maildir: the bytes themselves tell them apart.
    bodies = {_row(f"just text {n}, no header\r\n".encode())["key"] for n in range(29)}
    assert len(bodies) == 29


def test_cr_only_messages_parse_and_keep_distinct_keys() -> None:
    keys = set()
    for n in range(29):
        raw = f"From: a{n}@b.example\rSubject: hello {n}\r\rbody {n}\r".encode()
        row = _row(raw)
        assert row["status"] == "recorded"
        assert row["from_addr"] == f"a{n}@b.example"
        keys.add(row["key"])
    assert len(keys) == 29


def test_messages_with_no_date_from_or_subject_differ_by_their_header() -> None:
    keys = {_row(f"X-Thing: {n}\r\n\r\nsame body\r\n".encode())["key"] for n in range(10)}
    assert len(keys) == 10


def test_a_digested_id_is_never_written_into_a_reply() -> None:
    from onward.tasks.feedback.replies import build_reply
    from onward.tasks.mail.message import Address
    from onward.tasks.mail.parse import parse_message

    long_id = "<" + "x" * 1005 + "@example.com>"
    raw = f"Message-ID: {long_id}\r\nFrom: a@b.example\r\nSubject: s\r\n\r\nhi\r\n"
    message = parse_message(raw.encode())
    reply = build_reply(
        message, "x", from_=Address("", "me@c.example"), to=None, marker=message.key
    )
    assert b"In-Reply-To" not in reply
    assert b"References" not in reply
