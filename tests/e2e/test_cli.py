"""The command line end to end: connect, sync, status, against Dovecot and Maildir."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from onward.deployments.cli import main
from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
from tests.support.dovecot import DovecotServer
from tests.support.dovecot_fixtures import require_dovecot
from tests.support.mailgen import make_mail

PASSWORD = "pw-Tq8#zLx2-unique"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ONWARD_HOME", str(home))
    monkeypatch.setenv("ONWARD_DATABASE_URL", database_url)
    monkeypatch.setenv("MAIL_PW", PASSWORD)
    return home


@pytest.fixture
def server() -> Iterator[DovecotServer]:
    require_dovecot()
    with DovecotServer(users={"alice": PASSWORD}) as srv:
        yield srv


def connect_args(server: DovecotServer, *extra: str) -> list[str]:
    return [
        "connect",
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--user",
        "alice",
        "--address",
        "alice@example.org",
        "--security",
        "plain",
        *extra,
    ]


@pytest.mark.integration
def test_connect_keeps_the_secret_out_of_the_database(
    home: Path, server: DovecotServer, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    assert main(connect_args(server, "--password-env", "MAIL_PW")) == 0
    out = capsys.readouterr().out
    assert "drafts will be saved to Drafts" in out
    assert PASSWORD not in out
    secret_files = list((home / "secrets").iterdir())
    assert len(secret_files) == 1
    assert stat.S_IMODE(secret_files[0].stat().st_mode) == 0o600
    assert secret_files[0].read_text() == PASSWORD
    if database_url.startswith("sqlite"):
        for path in home.glob("onward.db*"):
            assert PASSWORD.encode() not in path.read_bytes()
    else:
        from sqlalchemy import create_engine, text

        engine = create_engine(database_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM mailboxes")).all()
        engine.dispose()
        assert PASSWORD not in repr(rows)


@pytest.mark.integration
def test_wrong_password_is_one_line_and_exit_2(
    home: Path,
    server: DovecotServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAIL_PW", "not-the-password")
    assert main(connect_args(server, "--password-env", "MAIL_PW")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "refused the password for alice" in err
    assert "not-the-password" not in err
    assert not (home / "secrets").exists()


@pytest.mark.integration
def test_a_login_that_is_not_an_address_asks_for_one(
    home: Path, server: DovecotServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = connect_args(server, "--password-env", "MAIL_PW")
    args[args.index("--address") : args.index("--address") + 2] = []
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'alice' is not an e-mail address" in err
    assert "--address" in err
    assert not (home / "secrets").exists()


@pytest.mark.integration
def test_connect_json_says_where_the_secret_is(
    home: Path, server: DovecotServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*connect_args(server, "--password-env", "MAIL_PW"), "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)
    assert result["address"] == "alice@example.org"
    assert result["drafts_folder"] == "Drafts"
    assert result["secret"].endswith("(mode 0600)")
    assert PASSWORD not in out


def test_unknown_host_is_one_line_and_exit_2(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "connect",
            "--host",
            "no-such-host.invalid",
            "--user",
            "a@example.org",
            "--password-env",
            "MAIL_PW",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot find host 'no-such-host.invalid'; check --host" in err


def test_missing_password_source_without_a_terminal(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["connect", "--host", "127.0.0.1", "--user", "a", "--security", "plain"]) == 2
    assert "--password-stdin" in capsys.readouterr().err


def test_status_before_connect(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    assert "no mailbox connected yet" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_sync_once_records_new_mail_then_nothing_new(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    maildir = create_maildir(tmp_path / "Maildir")
    deliver_to_maildir(maildir, make_mail(1))
    assert main(["connect", "--maildir", str(maildir), "--name", "local"]) == 0
    assert main(["sync", "--once"]) == 0
    assert "0 new message(s) recorded" in capsys.readouterr().out  # first run: from now on
    deliver_to_maildir(maildir, make_mail(2))
    deliver_to_maildir(maildir, make_mail(3))
    assert main(["sync", "--once"]) == 0
    assert "local: 2 new message(s) recorded" in capsys.readouterr().out
    assert main(["sync", "--once"]) == 0
    assert capsys.readouterr().out.strip() == "nothing new"
    assert main(["sync", "--once", "--since", "2000-01-01"]) == 0
    assert "1 new message(s) recorded" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["messages"] == 3
    assert status["mailbox"] == "local"


def test_bad_since_is_a_usage_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", "--once", "--since", "last tuesday"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
