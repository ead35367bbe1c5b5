"""deployments/prefect.yaml on a real process work pool: `prefect deploy --all` registers
every deployment, and `prefect worker start` runs a watch pass and the reactions it starts
(a draft, a cooldown) from the deployed flows, against a real local Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from onward.deployments.server import LocalPrefectServer, free_port
from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
from tests.support.mailgen import make_mail
from tests.support.paths import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BIN = Path(sys.executable).parent
REJECTION = (
    "Dear Sam,\n\nThank you for applying for the Platform Engineer position at Firmly. After "
    "careful consideration we have decided to move forward with other candidates.\n\n"
    "Kind regards,\nMorgan Lee\n"
)
DEPLOYMENTS = {
    "watch_inbox/watch",
    "request_feedback/request-feedback",
    "cooldown/cooldown",
    "pick_yourself_up/pick-yourself-up",
    "review_rejection/review-rejection",
    "calendar_sync/calendar",
    "networking_round/networking-round",
}


def run(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [*args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout + done.stderr


def test_prefect_yaml_on_a_process_work_pool(tmp_path: Path) -> None:
    maildir = create_maildir(tmp_path / "Maildir")
    deliver_to_maildir(maildir, make_mail(1, subject="Your application", body=REJECTION))
    deliver_to_maildir(maildir, make_mail(2))
    with LocalPrefectServer(tmp_path / "prefect", port=free_port(4300)) as server:
        env = {
            **os.environ,
            "ONWARD_HOME": str(tmp_path / "home"),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_API_URL": server.api_url,
            "PWD": str(ROOT),
        }
        env.pop("ONWARD_DATABASE_URL", None)
        onward, prefect = str(BIN / "onward"), str(BIN / "prefect")
        run(env, onward, "connect", "--maildir", str(maildir), "--address", "sam@example.org")
        run(env, prefect, "work-pool", "create", "onward", "--type", "process")
        run(env, prefect, "--no-prompt", "deploy", "--all", "--prefect-file",
            "deployments/prefect.yaml")  # fmt: skip
        listed = run(env, prefect, "deployment", "ls")
        for name in DEPLOYMENTS:
            assert name.split("/")[0] in listed, name
        run(env, prefect, "deployment", "run", "watch_inbox/watch", "--param", "since=1990-01-01")
        first = run(env, prefect, "worker", "start", "--pool", "onward", "--run-once")
        assert "2 new message(s) recorded, 1 rejection(s)" in first
        # The pass started the reactions as deployment runs; the next worker pass runs them.
        second = run(env, prefect, "worker", "start", "--pool", "onward", "--run-once")
        assert "draft saved to Drafts (drafted)" in second
        assert "cooldown until" in second
        drafts = run(env, onward, "drafts", "--json", "--no-check")
        assert '"state": "drafted"' in drafts
    assert len(list((maildir / ".Drafts" / "cur").iterdir())) == 1
