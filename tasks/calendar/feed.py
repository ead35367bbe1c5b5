"""The calendar as a read-only feed on 127.0.0.1, for calendar apps to subscribe to.

Served from the calendar file (written atomically), with a strong ETag (a digest of the
bytes) and Last-Modified, so a client that polls gets 304 Not Modified when nothing
changed. Only GET and HEAD of the calendar's path; nothing is ever written.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("onward.calendar.feed")

FEED_PATH = "/onward.ics"


def feed_url(port: int, *, webcal: bool = True) -> str:
    return f"{'webcal' if webcal else 'http'}://127.0.0.1:{port}{FEED_PATH}"


class _Handler(BaseHTTPRequestHandler):
    server_version = "onward-feed"
    calendar_file: Path  # set on the subclass made per server

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        if self.path.split("?", 1)[0] not in (FEED_PATH, "/"):
            self.send_error(HTTPStatus.NOT_FOUND, "the calendar is at " + FEED_PATH)
            return
        try:
            data = self.calendar_file.read_bytes()
            mtime = self.calendar_file.stat().st_mtime
        except FileNotFoundError:
            self.send_error(HTTPStatus.NOT_FOUND, "nothing scheduled yet")
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        modified = formatdate(int(mtime), usegmt=True)
        if self._not_modified(etag, int(mtime)):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/calendar; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        match = self.headers.get("If-None-Match")
        if match is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since
            return any(tag.strip() in (etag, "*") for tag in match.split(","))
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                return mtime <= int(parsedate_to_datetime(since).timestamp())
            except (TypeError, ValueError):
                return False
        return False

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("feed: " + format, *args)


class CalendarFeed:
    """The feed server in a background thread; ``with CalendarFeed(path, port) as feed``."""

    def __init__(self, calendar_file: Path, port: int) -> None:
        handler = type("Handler", (_Handler,), {"calendar_file": calendar_file})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="onward-calendar-feed", daemon=True
        )

    @property
    def url(self) -> str:
        return feed_url(self.port)

    def __enter__(self) -> CalendarFeed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
