"""IMAP backend on imapclient 4.1: read-only, PEEK-only, capped, and honest about failures.

What it relies on and why (details in ``../shared/imap-notes.md``):
- the watched folder is opened with EXAMINE, so the server cannot set ``\\Seen``;
- only ``BODY.PEEK`` of chosen header fields, BODYSTRUCTURE and one text part cut at a
  cap are fetched: attachments never leave the server;
- ``fetch`` always gets an explicit UID list (imapclient 4.x raises on string ranges);
- ``UID n:*`` also matches the highest UID, so results are filtered to ``> n``;
- IDLE is only a doorbell; ``idle_check`` swallows EOF, so two immediate empty returns
  in a row count as a dead connection.
"""

from __future__ import annotations

import contextlib
import imaplib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import DRAFTS, SocketTimeout

from onward.tasks.errors import (
    ConfigError,
    MailboxAuthError,
    MailboxConnectError,
    MailboxError,
    MailboxFolderError,
    MailboxTLSError,
    TransientMailboxError,
)
from onward.tasks.mail.decoding import decode_partial
from onward.tasks.mail.mailbox import HEADER_FIELDS, Envelope, Fetched, FolderState, Opened

SECURITY_MODES = ("tls", "starttls", "plain")
_HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS ({})]".format(" ".join(f.upper() for f in HEADER_FIELDS))
_FETCH_CHUNK = 500
# Errors after which the connection is unusable and a reconnect is the cure.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    imaplib.IMAP4.abort,
    OSError,
    EOFError,
    ssl.SSLError,
    TransientMailboxError,
)


@dataclass(frozen=True)
class ImapConfig:
    host: str
    username: str
    port: int | None = None
    security: str = "tls"
    auth: str = "password"  # "password" or "xoauth2"
    folder: str = "INBOX"
    ca_file: str | None = None
    connect_timeout: float = 15.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ConfigError(f"security must be one of {', '.join(SECURITY_MODES)}")
        if self.security == "plain" and not is_loopback(self.host):
            raise ConfigError(
                f"plain IMAP would send your password to {self.host} unencrypted; "
                "use --security tls (or starttls); plain is allowed only to this machine"
            )
        if self.auth not in ("password", "xoauth2"):
            raise ConfigError("auth must be password or xoauth2")

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect_client(config: ImapConfig, secret: str) -> IMAPClient:
    """The one place an IMAP connection is made: connect, secure, log in, translate errors."""
    where = f"{config.host}:{config.effective_port}"
    context = ssl.create_default_context(cafile=config.ca_file) if config.ca_file else None
    try:
        client = IMAPClient(
            config.host,
            port=config.effective_port,
            ssl=config.security == "tls",
            ssl_context=context,
            timeout=SocketTimeout(connect=config.connect_timeout, read=config.read_timeout),
        )
        if config.security == "starttls":
            client.starttls(ssl_context=context)
    except ssl.SSLCertVerificationError as exc:
        raise MailboxTLSError(
            f"the TLS certificate of {where} is not trusted ({exc.verify_message}); "
            "if the server uses a private CA, pass --ca-file PATH"
        ) from exc
    except ssl.SSLError as exc:
        raise MailboxTLSError(
            f"TLS with {where} failed ({exc.reason or exc}); check --port and --security"
        ) from exc
    except socket.gaierror as exc:
        raise MailboxConnectError(f"cannot find host {config.host!r}; check --host") from exc
    except TimeoutError as exc:
        raise MailboxConnectError(
            f"{where} did not answer in time; check --host and --port and your network",
            unreachable=f"{where} (no answer in time)",
        ) from exc
    except (ConnectionError, OSError) as exc:
        raise MailboxConnectError(
            f"cannot connect to {where} ({exc.strerror or exc}); check --host and --port",
            unreachable=f"{where} ({exc.strerror or exc})",
        ) from exc
    except IMAPClientError as exc:
        raise MailboxConnectError(f"{where} refused the session ({exc}); check --security") from exc
    try:
        if config.auth == "xoauth2":
            client.oauth2_login(config.username, secret)
        else:
            client.login(config.username, secret)
    except LoginError as exc:
        _quiet_logout(client)
        what = "access token" if config.auth == "xoauth2" else "password"
        raise MailboxAuthError(
            f"{where} refused the {what} for {config.username}; check it "
            "(many providers need an app password) and run `onward connect` again"
        ) from exc
    except CONNECTION_ERRORS as exc:
        _quiet_logout(client)
        raise TransientMailboxError(f"{where} dropped the connection while logging in") from exc
    client.normalise_times = False  # aware datetimes: INTERNALDATE is compared to watch_start
    return client


def _quiet_logout(client: IMAPClient) -> None:
    # The connection may already be gone; logout errors must not hide the real error.
    with contextlib.suppress(Exception):
        client.logout()


class ImapMailbox(Opened):
    """The watched folder of one IMAP account."""

    def __init__(
        self,
        config: ImapConfig,
        secret: Callable[[], str],
        *,
        on_connect: Callable[[IMAPClient], None] | None = None,
    ) -> None:
        self.config = config
        self._secret = secret
        self._on_connect = on_connect
        self.client: IMAPClient | None = None
        self.capabilities: frozenset[bytes] = frozenset()
        # BODYSTRUCTURE from the envelope pass, used by the following fetch of the text part.
        self._structure: dict[int, Any] = {}

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise MailboxError("mailbox is not open")
        return self.client

    def open(self) -> FolderState:
        if self.client is None:
            # The secret is read at every connect: an OAuth2 token may have been refreshed.
            self.client = connect_client(self.config, self._secret())
            if self._on_connect is not None:
                self._on_connect(self.client)
            self.capabilities = frozenset(self.client.capabilities())
        try:
            status = self.client.select_folder(self.config.folder, readonly=True)
        except IMAPClientError as exc:
            if isinstance(exc, imaplib.IMAP4.abort):
                raise TransientMailboxError(str(exc)) from exc
            raise MailboxFolderError(
                f"cannot open folder {self.config.folder!r} ({exc}); check --folder"
            ) from exc
        except CONNECTION_ERRORS as exc:
            raise TransientMailboxError(f"connection lost opening {self.config.folder}") from exc
        uidvalidity = int(status[b"UIDVALIDITY"])
        uidnext = status.get(b"UIDNEXT")
        if uidnext is None:  # optional in RFC 3501; derive it from the highest UID
            uids = self.client.search(["ALL"])
            uidnext = max(uids, default=0) + 1
        return FolderState(uidvalidity=uidvalidity, uidnext=int(uidnext))

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            _quiet_logout(client)

    def uids_after(self, last_uid: int) -> list[int]:
        found = self._call(lambda c: c.search(["UID", f"{last_uid + 1}:*"]))
        return sorted(uid for uid in found if uid > last_uid)

    def settled(self, uid: int) -> int:
        return uid  # the server never hands out a UID twice

    def uids_since(self, since: datetime) -> list[int]:
        # SEARCH SINCE has day granularity in the server's time zone, so only the days
        # around ``since`` need their INTERNALDATE checked; everything later is in.
        day = since.date()
        candidates = set(self._call(lambda c: c.search(["SINCE", day - timedelta(days=1)])))
        certain = set(self._call(lambda c: c.search(["SINCE", day + timedelta(days=2)])))
        keep = candidates & certain
        border = sorted(candidates - certain)
        for chunk in _chunks(border, _FETCH_CHUNK):
            data = self._fetch(chunk, ["INTERNALDATE"])
            keep.update(uid for uid, item in data.items() if item[b"INTERNALDATE"] >= since)
        return sorted(keep)

    def envelopes(self, uids: Sequence[int]) -> list[Envelope]:
        out: list[Envelope] = []
        for chunk in _chunks(list(uids), _FETCH_CHUNK):
            data = self._fetch(
                chunk, [_HEADER_ITEM, "BODYSTRUCTURE", "RFC822.SIZE", "INTERNALDATE"]
            )
            for uid in chunk:
                item = data.get(uid)
                if item is None:  # expunged between SEARCH and FETCH
                    continue
                header = _find_item(item, b"BODY[HEADER") or b""
                env = Envelope(
                    uid=uid,
                    header=header,
                    size=int(item.get(b"RFC822.SIZE") or 0),
                )
                self._structure[uid] = item.get(b"BODYSTRUCTURE")
                out.append(env)
        return out

    def fetch(self, envelopes: Sequence[Envelope], max_text_bytes: int) -> list[Fetched]:
        by_section: dict[str, list[Envelope]] = {}
        chosen: dict[int, TextPart | None] = {}
        for env in envelopes:
            part = best_text_part(self._structure.pop(env.uid, None))
            chosen[env.uid] = part
            if part is not None:
                by_section.setdefault(part.section, []).append(env)
        bodies: dict[int, bytes] = {}
        for section, group in by_section.items():
            item_name = f"BODY.PEEK[{section}]<0.{max_text_bytes}>"
            wanted = f"BODY[{section}]<0>".encode()
            for chunk in _chunks([e.uid for e in group], _FETCH_CHUNK):
                data = self._fetch(chunk, [item_name])
                for uid, item in data.items():
                    body = item.get(wanted)
                    if body is None:
                        body = _find_item(item, f"BODY[{section}]".encode())
                    bodies[uid] = body or b""
        out: list[Fetched] = []
        for env in envelopes:
            part = chosen[env.uid]
            raw = compose_raw(env.header, part, bodies.get(env.uid, b""), max_text_bytes)
            out.append(Fetched(env.uid, raw, env.size))
        return out

    def wait_for_news(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """IDLE until EXISTS/EXPUNGE, ``timeout`` or ``stop``; NOOP-poll without IDLE."""
        client = self._client()
        # Short slices when someone may ask us to stop, so shutdown is prompt.
        slice_seconds = 1.0 if stop is not None else 30.0
        if b"IDLE" not in self.capabilities:
            if stop is not None:
                stop.wait(timeout)
            else:
                time.sleep(timeout)
            self._call(lambda c: c.noop())
            return True
        deadline = time.monotonic() + timeout
        news = False
        try:
            client.idle()
            early = 0
            while not news:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (stop is not None and stop.is_set()):
                    break
                started = time.monotonic()
                responses = client.idle_check(timeout=min(slice_seconds, remaining))
                if any(r and r[0] == b"BYE" for r in responses):
                    raise TransientMailboxError("server closed the connection (BYE)")
                # idle_check swallows EOF and returns [] at once: twice in a row is a dead socket.
                early = early + 1 if not responses and time.monotonic() - started < 0.5 else 0
                if early >= 2:
                    raise TransientMailboxError("connection lost while idling (EOF)")
                news = any(len(r) > 1 and r[1] in (b"EXISTS", b"EXPUNGE") for r in responses)
            client.idle_done()
            client.noop()  # proves the socket still answers before the next sync
        except TransientMailboxError:
            raise
        except (*CONNECTION_ERRORS, IMAPClientError) as exc:
            raise TransientMailboxError(f"connection lost while idling ({exc})") from exc
        return news

    def find_drafts_folder(self) -> str:
        client = self._client()
        found = client.find_special_folder(DRAFTS)
        if found:
            return str(found)
        if not client.folder_exists("Drafts"):
            client.create_folder("Drafts")
        return "Drafts"

    def _fetch(self, uids: list[int], items: list[str]) -> dict[int, dict[bytes, Any]]:
        # Always an explicit UID list: imapclient 4.x raises on string ranges.
        result: dict[int, dict[bytes, Any]] = self._call(lambda c: c.fetch(uids, items))
        return result

    def _call(self, fn: Callable[[IMAPClient], Any]) -> Any:
        return call_translated(self._client(), fn)


def call_translated(
    client: IMAPClient, fn: Callable[[IMAPClient], Any], on_lost: Callable[[], None] = lambda: None
) -> Any:
    """Run one IMAP command; a dropped connection becomes TransientMailboxError (``on_lost``
    runs first, e.g. to close the dead client), a refusal MailboxError."""
    try:
        return fn(client)
    except CONNECTION_ERRORS as exc:
        on_lost()
        raise TransientMailboxError(f"connection lost ({exc})") from exc
    except IMAPClientError as exc:
        if isinstance(exc, imaplib.IMAP4.abort):
            on_lost()
            raise TransientMailboxError(f"connection lost ({exc})") from exc
        raise MailboxError(f"the server refused a command ({exc})") from exc


@dataclass(frozen=True, slots=True)
class TextPart:
    section: str
    subtype: str  # "plain" or "html"
    encoding: str | None
    charset: str | None


def best_text_part(structure: Any) -> TextPart | None:
    """The part to read: the first inline text/plain, else the first inline text/html."""
    found: list[TextPart] = []
    _walk(structure, "", found)
    for subtype in ("plain", "html"):
        for part in found:
            if part.subtype == subtype:
                return part
    return None


def _walk(node: Any, prefix: str, found: list[TextPart]) -> None:
    if not node:
        return
    if isinstance(node[0], list):  # multipart: (parts, subtype, ...)
        for i, child in enumerate(node[0], start=1):
            _walk(child, f"{prefix}.{i}" if prefix else str(i), found)
        return
    maintype = _text(node[0]).lower()
    subtype = _text(node[1]).lower()
    if maintype != "text" or subtype not in ("plain", "html"):
        return
    disposition = node[9] if len(node) > 9 else None
    if (
        isinstance(disposition, tuple)
        and disposition
        and _text(disposition[0]).lower() == "attachment"
    ):
        return
    params = node[2] if isinstance(node[2], tuple) else ()
    charset = None
    for key, value in zip(params[::2], params[1::2], strict=False):
        if _text(key).lower() == "charset":
            charset = _text(value)
    encoding = _text(node[5]).lower() if len(node) > 5 and node[5] else None
    found.append(TextPart(prefix or "1", subtype, encoding, charset))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return "" if value is None else str(value)


def compose_raw(header: bytes, part: TextPart | None, body: bytes, cap: int) -> bytes:
    """An RFC 822 message of the fetched header fields and the decoded text part.

    The part may be cut mid-character or mid-base64-quantum; it is decoded here, leniently,
    so the parser always sees clean UTF-8 with no transfer encoding.
    """
    if not header.strip():
        return b""  # no header field at all: the parser records it as malformed
    header = header.rstrip(b"\r\n") + b"\r\n"
    if part is None:
        return header + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    text = decode_partial(body, cte=part.encoding, charset=part.charset)
    cut = b"X-Onward-Truncated: yes\r\n" if len(body) >= cap else b""
    return (
        header
        + cut
        + b"MIME-Version: 1.0\r\nContent-Type: text/"
        + part.subtype.encode()
        + b"; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + text.encode("utf-8", "replace")
    )


def _find_item(item: dict[bytes, Any], prefix: bytes) -> bytes | None:
    for key, value in item.items():
        if isinstance(key, bytes) and key.startswith(prefix):
            return bytes(value) if value is not None else None
    return None


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
