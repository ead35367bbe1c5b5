"""ONWARD_HOME is the person's alone (issue 12): 0700 folders and 0600 files, also when the
folder already existed with 0755 and its files 0644."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from onward.deployments.cli import main
from onward.tasks.mail.maildir import create_maildir


def _loose(home: Path) -> list[str]:
    out = []
    for root, dirs, files in os.walk(home):
        for name in [*dirs, *files]:
            mode = stat.S_IMODE((Path(root) / name).lstat().st_mode)
            if mode & 0o077:
                out.append(f"{Path(root, name).relative_to(home)} {mode:o}")
    if stat.S_IMODE(home.stat().st_mode) & 0o077:
        out.append(f". {stat.S_IMODE(home.stat().st_mode):o}")
    return out


@pytest.mark.parametrize("existing", [False, True])
def test_home_and_everything_in_it_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    home = tmp_path / "home"
    old_umask = os.umask(0o022)
    try:
        if existing:  # made by someone else, the way `mkdir` leaves it
            (home / "calendar").mkdir(parents=True)
            os.chmod(home, 0o755)
            (home / "onward.db").write_bytes(b"")
            os.chmod(home / "onward.db", 0o644)
            (home / "calendar" / "onward.ics").write_text("x")
            os.chmod(home / "calendar" / "onward.ics", 0o644)
            (home / "logs").mkdir()
            (home / "logs" / "onward.log").write_text("x")
        monkeypatch.setenv("ONWARD_HOME", str(home))
        monkeypatch.delenv("ONWARD_DATABASE_URL", raising=False)
        monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
        maildir = create_maildir(tmp_path / "Maildir")
        assert main(["connect", "--maildir", str(maildir), "--address", "a@b.example"]) == 0
        assert main(["status"]) == 0
    finally:
        os.umask(old_umask)
    assert (home / "onward.db").is_file()
    assert _loose(home) == []
