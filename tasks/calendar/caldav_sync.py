"""Pushing the calendar into the person's own CalDAV account (Nextcloud, Fastmail, iCloud,
Radicale ...).

onward works in a calendar collection of its own, created when missing, and only ever
writes resources it created, at an href derived from the item's UID: create with
``If-None-Match: *``, update with ``If-Match`` on the stored ETag, cancel by updating to
STATUS:CANCELLED. Because the href is deterministic, a crash between a PUT and the
database write is recognised on the next push (the server answers 412 and holds our
item with its SEQUENCE): nothing is lost and nothing is duplicated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

from sqlalchemy import select
from sqlalchemy.orm import Session

from onward.config.settings import Settings
from onward.tasks.calendar.entries import Published, published
from onward.tasks.calendar.ics import render_one
from onward.tasks.errors import (
    CalDavAuthError,
    CalDavError,
    CalDavUnavailableError,
    ConfigError,
)
from onward.tasks.secrets import load_secret, store_secret
from onward.tasks.store import CalDavAccount, CalDavResource, Store, utcnow

log = logging.getLogger("onward.calendar.caldav")

DEFAULT_CALENDAR = "onward"
UNAVAILABLE = "unavailable: "
_SEQUENCE_RE = re.compile(rb"^SEQUENCE:(\d+)\r?$", re.MULTILINE)
_UID_RE = re.compile(rb"^UID:(.+?)\r?$", re.MULTILINE)


@dataclass(frozen=True)
class CalDavLogin:
    url: str
    user: str
    password: str
    calendar: str = DEFAULT_CALENDAR


@contextmanager
def _client(login: CalDavLogin) -> Iterator[Any]:
    from caldav.davclient import DAVClient

    client = DAVClient(url=login.url, username=login.user, password=login.password, timeout=30)
    try:
        yield client
    except (OSError, ConnectionError) as exc:
        raise CalDavUnavailableError(_unreachable(login.url, exc)) from exc
    finally:
        client.close()


def _unreachable(url: str, exc: BaseException) -> str:
    return f"the CalDAV server at {url} cannot be reached ({type(exc).__name__}); onward retries"


def _translate(login: CalDavLogin, exc: Exception) -> CalDavError:
    from caldav.lib import error

    if isinstance(exc, error.AuthorizationError):
        return CalDavAuthError(
            f"the CalDAV server refused the password for {login.user}; check it (many "
            "providers want an app password) and run `onward calendar connect` again"
        )
    if isinstance(exc, CalDavError):
        return exc
    text = str(exc).lower()
    if isinstance(exc, OSError) or "connect" in text or "timed out" in text:
        return CalDavUnavailableError(_unreachable(login.url, exc))
    return CalDavError(f"the CalDAV server at {login.url} failed: {type(exc).__name__}: {exc}")


def find_or_create_calendar(login: CalDavLogin) -> str:
    """The URL of onward's own collection in the account, created when missing."""
    try:
        with _client(login) as client:
            principal = client.principal()
            for calendar in principal.calendars():
                if (calendar.get_display_name() or "") == login.calendar:
                    return str(calendar.url)
            return str(principal.make_calendar(name=login.calendar).url)
    except Exception as exc:
        raise _translate(login, exc) from exc


@dataclass(frozen=True)
class CalDavConnected:
    name: str
    url: str
    user: str
    calendar: str
    calendar_url: str
    secret: str


def connect_caldav(
    settings: Settings, login: CalDavLogin, *, secret_store: str = "file"
) -> CalDavConnected:
    """Log in, find or create onward's calendar, keep the password outside the database."""
    calendar_url = find_or_create_calendar(login)
    name = f"caldav-{login.user}@{_host(login.url)}"
    ref = store_secret(settings.secrets_dir, name, login.password, secret_store)
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        row = session.scalars(select(CalDavAccount).where(CalDavAccount.name == name)).first()
        if row is None:
            row = CalDavAccount(name=name)
            session.add(row)
        elif row.calendar_url != calendar_url:
            # Another collection: what was pushed to the old one is not there.
            for resource in session.scalars(
                select(CalDavResource).where(CalDavResource.account_id == row.id)
            ):
                session.delete(resource)
        row.url, row.username, row.secret_ref = login.url, login.user, ref
        row.calendar_name, row.calendar_url, row.last_error = login.calendar, calendar_url, None
    kept = f"{settings.secrets_dir / ref.partition(':')[2]} (mode 0600)"
    if ref.startswith("prefect-block:"):
        kept = f"Prefect Secret block {ref.partition(':')[2]!r}"
    return CalDavConnected(name, login.url, login.user, login.calendar, calendar_url, kept)


def _host(url: str) -> str:
    return re.sub(r"^[a-z]+://", "", url).split("/", 1)[0]


@dataclass
class PushReport:
    account: str
    created: int = 0
    updated: int = 0
    adopted: int = 0  # found already on the server (a crash after an earlier PUT)
    unchanged: int = 0
    error: str | None = None


def push_all(settings: Settings, *, raise_unavailable: bool = False) -> list[PushReport]:
    """Push every account's pending changes. Failures are recorded on the account; with
    ``raise_unavailable`` a server that is down also raises (the caller retries)."""
    with Store.open(settings.database_url) as store:
        with store.unit_of_work() as session:
            accounts = [a.id for a in session.scalars(select(CalDavAccount))]
        reports = [push_account(settings, store, account_id) for account_id in accounts]
    for report in reports:
        if raise_unavailable and report.error and report.error.startswith(UNAVAILABLE):
            raise CalDavUnavailableError(report.error.removeprefix(UNAVAILABLE))
    return reports


def push_account(settings: Settings, store: Store, account_id: int) -> PushReport:
    with store.unit_of_work() as session:
        account = session.get_one(CalDavAccount, account_id)
        login = CalDavLogin(
            account.url,
            account.username,
            load_secret(settings.secrets_dir, account.secret_ref),
            account.calendar_name,
        )
        calendar_url = account.calendar_url or ""
        report = PushReport(account.name)
        due = _due(session, account_id)
    try:
        if not calendar_url:
            calendar_url = find_or_create_calendar(login)
        with _client(login) as client:
            for item, resource in due:
                _push_one(client, store, settings, account_id, calendar_url, item, resource, report)
    except Exception as exc:
        error = _translate(login, exc)
        unavailable = isinstance(error, CalDavUnavailableError)
        report.error = f"{UNAVAILABLE}{error}" if unavailable else str(error)
        log.warning("CalDAV push to %s: %s", login.url, error)
    with store.unit_of_work() as session:
        account = session.get_one(CalDavAccount, account_id)
        account.calendar_url = calendar_url or account.calendar_url
        account.last_error = report.error.removeprefix(UNAVAILABLE) if report.error else None
        if report.error is None:
            account.last_push_at = utcnow()
    return report


def _due(
    session: Session, account_id: int
) -> list[tuple[Published, tuple[str, str | None] | None]]:
    """Entries the server does not have at their current SEQUENCE, with (href, etag)."""
    resources = {
        r.entry_id: r
        for r in session.scalars(
            select(CalDavResource).where(CalDavResource.account_id == account_id)
        )
    }
    out: list[tuple[Published, tuple[str, str | None] | None]] = []
    for item in published(session):
        resource = resources.get(item.entry_id)
        if resource is None:
            out.append((item, None))
        elif resource.pushed_sequence is None or resource.pushed_sequence < item.sequence:
            out.append((item, (resource.href, resource.etag)))
    return out


def href_for(calendar_url: str, uid: str) -> str:
    base = calendar_url if calendar_url.endswith("/") else calendar_url + "/"
    return urljoin(base, quote(uid.replace("@", "-at-"), safe="") + ".ics")


def _push_one(
    client: Any,
    store: Store,
    settings: Settings,
    account_id: int,
    calendar_url: str,
    item: Published,
    known: tuple[str, str | None] | None,
    report: PushReport,
) -> None:
    body = render_one(item, settings.tz)
    href = known[0] if known else href_for(calendar_url, item.uid)
    etag = known[1] if known else None
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    headers |= {"If-Match": etag} if etag else {"If-None-Match": "*"}
    response = client.put(href, body.decode("utf-8"), headers)
    status = int(response.status)
    if status in (200, 201, 204):
        new_etag = _etag(response) or _fetch_etag(client, href)
        if etag is None:
            report.created += 1
        else:
            report.updated += 1
        _record(store, account_id, item, href, new_etag)
        return
    if status in (404, 412):
        # 412 on create: a resource is there already, ours from a push whose database write
        # was lost, or an update was made meanwhile. 404 on update: the person deleted it.
        current, current_etag = _get(client, href)
        if current is not None and _uid(current) == item.uid.encode():
            if _sequence(current) >= item.sequence:
                report.adopted += 1
                _record(store, account_id, item, href, current_etag)
                return
            update = {k: v for k, v in headers.items() if k != "If-None-Match"}
            retry = client.put(href, body.decode("utf-8"), {**update, **_match(current_etag)})
            if int(retry.status) in (200, 201, 204):
                report.updated += 1
                _record(store, account_id, item, href, _etag(retry) or _fetch_etag(client, href))
                return
            raise CalDavError(
                f"the server refused the update of {item.item.summary!r} ({retry.status})"
            )
        if current is None:
            create = {k: v for k, v in headers.items() if k != "If-Match"}
            retry = client.put(href, body.decode("utf-8"), {**create, "If-None-Match": "*"})
            if int(retry.status) in (200, 201, 204):
                report.created += 1
                _record(store, account_id, item, href, _etag(retry) or _fetch_etag(client, href))
                return
        raise CalDavError(f"{href} on the server is not onward's item; onward leaves it alone")
    if status in (401, 403):
        from caldav.lib import error

        raise error.AuthorizationError(url=href, reason=str(status))
    if status >= 500:
        raise CalDavUnavailableError(
            f"the CalDAV server answered {status} for {href}; onward retries"
        )
    raise CalDavError(f"the CalDAV server refused {item.item.summary!r} with {status}")


def _match(etag: str | None) -> dict[str, str]:
    return {"If-Match": etag} if etag else {}


def _etag(response: Any) -> str | None:
    headers = {k.lower(): v for k, v in dict(response.headers or {}).items()}
    value = headers.get("etag")
    return str(value) if value and not str(value).startswith("W/") else None


def _get(client: Any, href: str) -> tuple[bytes | None, str | None]:
    response = client.request(href, "GET")
    if int(response.status) == 404:
        return None, None
    raw = response.raw
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw or b"")
    return data, _etag(response)


def _fetch_etag(client: Any, href: str) -> str | None:
    return _get(client, href)[1]


def _uid(data: bytes) -> bytes | None:
    match = _UID_RE.search(data)
    return match.group(1).strip() if match else None


def _sequence(data: bytes) -> int:
    match = _SEQUENCE_RE.search(data)
    return int(match.group(1)) if match else -1


def _record(store: Store, account_id: int, item: Published, href: str, etag: str | None) -> None:
    with store.unit_of_work() as session:
        resource = session.scalars(
            select(CalDavResource).where(
                CalDavResource.account_id == account_id,
                CalDavResource.entry_id == item.entry_id,
            )
        ).first()
        if resource is None:
            resource = CalDavResource(account_id=account_id, entry_id=item.entry_id, href=href)
            session.add(resource)
        resource.etag, resource.pushed_sequence, resource.pushed_at = etag, item.sequence, utcnow()


def account_names(session: Session) -> list[str]:
    return list(session.scalars(select(CalDavAccount.name).order_by(CalDavAccount.id)))


def require_url(url: str) -> str:
    if not re.match(r"^https?://", url):
        raise ConfigError(f"--url {url!r} must start with https:// (or http:// to this machine)")
    if url.startswith("http://") and _host(url).split(":")[0] not in (
        "127.0.0.1",
        "localhost",
        "[::1]",
    ):
        raise ConfigError(
            "plain http would send your calendar password unencrypted; use https:// "
            "(http:// is allowed only to this machine)"
        )
    return url
