"""`onward connect --secret-store prefect` against a real Prefect API: the password goes
into a Secret block with a valid name, sync reads it back, and it is never in the app
database or the output (issue 12, item 5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from onward.deployments.cli import main
from onward.tasks.store import FeedbackRequest, Mailbox, Store
from tests.support.dovecot import DovecotServer
from tests.support.world import PASSWORD, World, rejection_mail

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def test_connect_keeps_the_secret_in_a_prefect_block_and_sync_reads_it(
    dovecot: DovecotServer,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from prefect.blocks.system import Secret

    from onward.config.settings import load_settings

    monkeypatch.setenv("ONWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ONWARD_DATABASE_URL", database_url)
    monkeypatch.setenv("ONWARD_TEST_IMAP_PW", PASSWORD)
    args = ["connect", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user", "alice"]
    args += ["--address", "alice@example.org", "--security", "plain"]
    args += ["--password-env", "ONWARD_TEST_IMAP_PW", "--secret-store", "prefect"]
    assert main(args) == 0
    settings = load_settings(
        environ={"ONWARD_HOME": str(tmp_path / "home"), "ONWARD_DATABASE_URL": database_url}
    )
    with Store.open(settings.database_url) as store, store.unit_of_work() as session:
        (row,) = session.scalars(select(Mailbox)).all()
        kind, _, block = row.secret_ref.partition(":")
    assert kind == "prefect-block"
    assert re.fullmatch(r"[a-z0-9-]+", block), block
    assert Secret.load(block).get() == PASSWORD  # type: ignore[union-attr]
    assert not (tmp_path / "home" / "secrets").exists()

    world = World("imap", settings, dovecot=dovecot)
    assert world.sync() == 0  # the first pass: logs in with the block's secret
    world.deliver(rejection_mail("<via-block@x>"))
    assert world.sync() == 0
    (request,) = world.query(FeedbackRequest)
    assert request.state == "drafted"

    out = capsys.readouterr()
    assert PASSWORD not in out.out.replace("secret kept in", "").replace("Secret block", "")
    assert f"Prefect Secret block {block!r}" in out.out
    with Store.open(settings.database_url) as store, store.engine.connect() as conn:
        meta = MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            for values in conn.execute(table.select()):
                for value in values:
                    assert value != PASSWORD, table.name
                    assert not (isinstance(value, str) and f"'{PASSWORD}'" in value)
