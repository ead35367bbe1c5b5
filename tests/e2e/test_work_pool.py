"""deployments/prefect.yaml on a real process work pool: `prefect deploy --all` registers
every deployment, and `prefect worker start` runs a watch pass over every connected mailbox
and the reactions it starts (a draft, a cooldown) from the deployed flows, against a real
local Prefect server; a pass whose mailbox another worker is watching ends quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
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
    "watch_mailboxes/watch",
    "request_feedback/request-feedback",
    "cooldown/cooldown",
    "pick_yourself_up/pick-yourself-up",
    "review_rejection/review-rejection",
    "calendar_sync/calendar",
    "networking_round/networking-round",
}


def run_states(api_url: str) -> set[tuple[str, str]]:
    """(state, message) of every flow run on the server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return {
            (r.state.type.value, r.state.message or "") for r in client.read_flow_runs() if r.state
        }


def run(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [*args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout + done.stderr


# Holds a mailbox's watch slot as another worker's pass would, until stdin closes.
HOLDER = """
import sys
from onward.tasks.mail.watch_slot import watch_slot
with watch_slot(sys.argv[1]) as held:
    print("held" if held else "busy", flush=True)
    sys.stdin.readline()
"""


def test_prefect_yaml_on_a_process_work_pool(tmp_path: Path) -> None:
    maildir = create_maildir(tmp_path / "Maildir")
    deliver_to_maildir(maildir, make_mail(1, subject="Your application", body=REJECTION))
    deliver_to_maildir(maildir, make_mail(2))
    box = f"maildir:{maildir}"  # the name `onward connect --maildir` gives it
    other = create_maildir(tmp_path / "Other")
    deliver_to_maildir(other, make_mail(3))
    with LocalPrefectServer(
        tmp_path / "prefect", port=free_port(4300), keep_runs_days=12
    ) as server:
        # The retention policy ([worker] keep_runs_days) reached the server.
        with urllib.request.urlopen(f"{server.api_url}/admin/settings", timeout=30) as answer:
            settings = json.loads(answer.read())
        vacuum = settings["server"]["services"]["db_vacuum"]
        assert sorted(vacuum["enabled"]) == ["events", "flow_runs"]
        assert vacuum["retention_period"] == "P12D"
        # The UI asks this server for its data, not the default port's.
        ui_settings = f"{server.ui_url.rstrip('/')}/ui-settings"
        with urllib.request.urlopen(ui_settings, timeout=30) as answer:
            assert json.loads(answer.read())["api_url"] == server.api_url
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
        run(env, onward, "connect", "--maildir", str(other), "--address", "sam@example.org",
            "--name", "other")  # fmt: skip
        run(env, prefect, "work-pool", "create", "onward", "--type", "process")
        run(env, prefect, "--no-prompt", "deploy", "--all", "--prefect-file",
            "deployments/prefect.yaml")  # fmt: skip
        listed = run(env, prefect, "deployment", "ls")
        for name in DEPLOYMENTS:
            assert name.split("/")[0] in listed, name
        run(env, prefect, "deployment", "run", "watch_mailboxes/watch",
            "--param", "since=1990-01-01")  # fmt: skip
        first = run(env, prefect, "worker", "start", "--pool", "onward", "--run-once")
        # Every connected mailbox, each with its own cursor.
        assert f"{box}: 2 new message(s) recorded, 1 rejection(s)" in first
        assert "other: 1 new message(s) recorded" in first
        # The pass started the reactions as deployment runs; the next worker pass runs them,
        # and a watch run while another worker is watching the first mailbox: that pass
        # leaves it alone, quietly, and still watches the other one.
        deliver_to_maildir(maildir, make_mail(4))
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, box],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            run(env, prefect, "deployment", "run", "watch_mailboxes/watch")
            second = run(env, prefect, "worker", "start", "--pool", "onward", "--run-once")
        finally:
            holder.communicate("\n", timeout=60)
        assert "draft saved to Drafts (drafted)" in second
        assert "cooldown until" in second
        assert f"another worker is watching {box}" in second
        assert "other: 0 new message(s) recorded" in second
        assert "Traceback" not in second
        assert "ERROR" not in second
        drafts = run(env, onward, "drafts", "--json", "--no-check", "--mailbox", box)
        assert '"state": "drafted"' in drafts
        # The slot is free again: the next pass picks up what the skipped one left.
        run(env, prefect, "deployment", "run", "watch_mailboxes/watch")
        after = run(env, prefect, "worker", "start", "--pool", "onward", "--run-once")
        assert f"{box}: 1 new message(s) recorded" in after
        states = run_states(server.api_url)
        assert ("COMPLETED", f"another worker is watching {box}") in states
        assert not {state for state, _ in states} & {"FAILED", "CANCELLED", "CRASHED"}, states
    assert len(list((maildir / ".Drafts" / "cur").iterdir())) == 1
