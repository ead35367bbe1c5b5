"""The local Prefect server's log is rotated: its size stays bounded however much it says."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from onward.deployments import server
from onward.deployments.server import copy_rotating, retention_env


def test_the_server_log_is_rotated_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "LOG_BYTES", 10_000)
    output = b"".join(b"line %05d %s\n" % (i, b"x" * 90) for i in range(2_000))  # 200 KB
    log = tmp_path / "prefect-server.log"
    copy_rotating(io.BytesIO(output), log)
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == [log.name] + [f"{log.name}.{n}" for n in (1, 2, 3)]
    assert all(f.stat().st_size <= 10_000 for f in files)
    assert log.read_text().splitlines()[-1].startswith("line 01999 ")


def test_retention_follows_the_setting() -> None:
    env = retention_env(30)
    assert env["PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED"] == "events,flow_runs"
    assert env["PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD"] == str(30 * 86400)
    assert env["PREFECT_SERVER_EVENTS_RETENTION_PERIOD"] == "P7D"
    assert retention_env(2)["PREFECT_SERVER_EVENTS_RETENTION_PERIOD"] == "P2D"
