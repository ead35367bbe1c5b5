"""Volume: the 3,900 messages of easy_ham through `onward sync --once`, exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onward.deployments.cli import main
from tests.support.corpus import EASY_HAM, corpus_file, load_mbox
from tests.support.dovecot import DovecotServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.usefixtures("prefect_harness")
def test_easy_ham_is_recorded_exactly_once(
    dovecot: DovecotServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    total = load_mbox(dovecot, "alice", corpus_file(EASY_HAM))
    assert total == 3900
    monkeypatch.setenv("ONWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ONWARD_DATABASE_URL", f"sqlite:///{tmp_path / 'home' / 'onward.db'}")
    monkeypatch.setenv("MAIL_PW", "secret")
    before = dovecot.flags("alice")
    port = str(dovecot.port)
    assert (
        main(
            [
                *("connect", "--host", "127.0.0.1", "--port", port, "--user", "alice"),
                *("--address", "alice@example.org"),
                *("--security", "plain", "--password-env", "MAIL_PW"),
            ]
        )
        == 0
    )
    assert main(["sync", "--once", "--since", "1990-01-01"]) == 0
    assert f"{total} new message(s) recorded" in capsys.readouterr().out
    assert main(["sync", "--once"]) == 0
    assert capsys.readouterr().out.strip() == "nothing new"
    # A wider backfill looks at everything again; the ledger knows every message.
    assert main(["sync", "--once", "--since", "1980-01-01"]) == 0
    assert f"0 new message(s) recorded, {total} already known" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["messages"] == total
    assert status["malformed"] == 0
    assert dovecot.flags("alice") == before
