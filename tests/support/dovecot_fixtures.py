"""pytest fixtures for a real, throw-away Dovecot (see tests/dovecot.py).

Enable with ``pytest_plugins = ["tests.support.dovecot_fixtures"]`` in tests/conftest.py (or
``-p tests.fixtures_dovecot``).  Without Dovecot installed the fixtures skip, unless
``ONWARD_REQUIRE_DOVECOT=1`` is set (CI), in which case they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.dovecot import DovecotServer
from tests.support.dovecot import dovecot_binary as _dovecot_binary

__all__ = ["dovecot", "dovecot_binary", "dovecot_tls", "require_dovecot"]

INSTALL_HINT = "dovecot-imapd not installed: apt-get install dovecot-imapd"


def dovecot_binary() -> str | None:
    """Path of the ``dovecot`` binary (PATH, then /usr/sbin etc.), or None."""
    return _dovecot_binary()


def require_dovecot() -> None:
    """Skip the current test if Dovecot is missing (fail if ONWARD_REQUIRE_DOVECOT=1)."""
    if dovecot_binary() is not None:
        return
    if os.environ.get("ONWARD_REQUIRE_DOVECOT") == "1":
        pytest.fail(INSTALL_HINT)
    pytest.skip(INSTALL_HINT)


def _serve(tls: bool) -> Iterator[DovecotServer]:
    require_dovecot()
    server = DovecotServer(tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    """A fresh plain-text Dovecot on 127.0.0.1 with user alice/secret."""
    yield from _serve(tls=False)


@pytest.fixture
def dovecot_tls() -> Iterator[DovecotServer]:
    """A fresh Dovecot with a self-signed cert: STARTTLS on ``.port``, TLS on ``.tls_port``."""
    yield from _serve(tls=True)
