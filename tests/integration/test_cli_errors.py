"""What a person sees when the mail server is down or the folder is gone: one line on
stderr, no traceback, the right exit code (issue 12, item 8)."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest
from sqlalchemy import select

from onward.deployments.cli import main
from onward.tasks.store import Mailbox, Store
from tests.support.world import connect_world, rejection_mail

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tracebacks(err: str) -> int:
    """Tracebacks on stderr, not counting Prefect's console handler tripping over a stream
    an earlier test's capture closed ("--- Logging error ---", a harness artefact)."""
    ours = re.sub(r"--- Logging error ---\n.*?\nArguments: .*?\n", "", err, flags=re.DOTALL)
    return ours.count("Traceback (most recent call last)")


def _onward_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("onward:")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_server_that_is_down_is_one_line_and_exit_1(
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    dovecot = request.getfixturevalue("dovecot")
    world = connect_world("imap", tmp_path, database_url, monkeypatch, dovecot)
    world.deliver(rejection_mail("<r@x>"))
    # The server goes away: nothing listens where it was any more.
    with Store.open(world.settings.database_url) as store, store.unit_of_work() as session:
        for row in session.scalars(select(Mailbox)):
            row.port = _closed_port()
    capsys.readouterr()
    for args in (["--since", "2020-01-01"], []):
        assert world.sync(*args) == 1
        err = capsys.readouterr().err
        (line,) = _onward_lines(err)
        assert "unreachable" in line
        assert "retry" in line
        assert "check --host" not in err
        assert _tracebacks(err) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", ["imap", "maildir"])
def test_a_folder_that_does_not_exist_is_one_line_and_exit_2(
    kind: str,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    dovecot = request.getfixturevalue("dovecot") if kind == "imap" else None
    world = connect_world(kind, tmp_path, database_url, monkeypatch, dovecot)
    if dovecot is not None:
        monkeypatch.setenv("ONWARD_TEST_IMAP_PW", "secret")
        args = ["--host", "127.0.0.1", "--port", str(dovecot.port), "--user", "alice"]
        args += ["--security", "plain", "--password-env", "ONWARD_TEST_IMAP_PW"]
        capsys.readouterr()
        assert main(["connect", *args, "--folder", "Nowhere", "--address", "a@b.c"]) == 2
        (line,) = _onward_lines(capsys.readouterr().err)
        assert "Nowhere" in line
        dovecot.doveadm("mailbox", "create", "-u", "alice", "Jobs")
        assert main(["connect", *args, "--folder", "Jobs", "--address", "a@b.c"]) == 0
        assert world.sync() == 0
        dovecot.doveadm("mailbox", "delete", "-u", "alice", "Jobs")
    else:
        assert world.maildir is not None
        shutil.rmtree(world.maildir / "cur")
    capsys.readouterr()
    for args in ([], ["--since", "2020-01-01"]):
        assert world.sync(*args) == 2
        err = capsys.readouterr().err
        (line,) = _onward_lines(err)
        assert "folder" in line or "Maildir" in line
        assert _tracebacks(err) == 0
