"""Installed as one package: the wheel puts nothing but ``onward`` at the top level, and the
command works from a folder holding its own tasks.py, config/ and flows/."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
from tests.support.mailgen import make_mail
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow
ONWARD = str(Path(sys.executable).with_name("onward"))


def test_the_wheel_installs_only_onward(tmp_path: Path) -> None:
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path)]
    subprocess.run([*build, str(ROOT)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("onward-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(info).decode().split() == ["onward"]
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"onward"}
    assert "onward/__init__.py" not in names  # a namespace: onward.config, onward.tasks, ...
    for data in (
        "onward/config/onward.toml",
        "onward/config/goals.toml",
        "onward/config/templates/feedback_request.txt.j2",
        "onward/tasks/store/migrations/script.py.mako",
        "onward/config/samples/connections.csv",
        "onward/deployments/prefect.yaml",
    ):
        assert data in names, data  # fmt: skip


def test_runs_from_a_folder_with_its_own_tasks_config_and_flows(tmp_path: Path) -> None:
    decoy = tmp_path / "project"
    for package in ("config", "flows", "deployments"):
        (decoy / package).mkdir(parents=True)
        (decoy / package / "__init__.py").write_text(
            f"raise SystemExit('shadowed by ./{package}')\n"
        )
    (decoy / "tasks.py").write_text("raise SystemExit('shadowed by ./tasks.py')\n")
    maildir = create_maildir(tmp_path / "Maildir")
    deliver_to_maildir(maildir, make_mail(1))
    env = {**os.environ, "ONWARD_HOME": str(tmp_path / "home"), "PYTHONPATH": str(decoy)}
    env.pop("ONWARD_DATABASE_URL", None)
    env.pop("PREFECT_API_URL", None)
    for args in (["--help"], ["connect", "--maildir", str(maildir)], ["sync", "--once"],
                 ["status"]):  # fmt: skip
        done = subprocess.run(
            [ONWARD, *args], cwd=decoy, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        assert "shadowed" not in done.stdout + done.stderr
