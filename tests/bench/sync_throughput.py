"""Sync throughput: onward's sync against a bare imapclient loop, same server, same run.

    ./run python tests/bench/sync_throughput.py [--rounds 3] [--mbox PATH]

Loads easy_ham (3,900 messages) into a private Dovecot on 127.0.0.1, then alternates:
- baseline: one imapclient session, EXAMINE, SEARCH, FETCH of the same header fields,
  BODYSTRUCTURE and size, then the same capped text part; nothing else;
- onward: ``sync_once`` into a fresh SQLite ledger with the real per-message step
  (parse, classify, record; ``--step record`` leaves out the classifier); both timings
  include connecting and logging in, neither creating a database.
Prints messages per second for both and the ratio (target: onward >= 0.7x baseline).
Then times `onward sync --once` with nothing new against `onward --help` (start-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# onward's modules are imported inside the functions: onward decides a big backlog in a
# worker process, which re-imports this script's top level; a CLI run imports little.
CAP = 65536


def baseline(port: int) -> int:
    from imapclient import IMAPClient

    from onward.tasks.mail.imap import _HEADER_ITEM, best_text_part

    client = IMAPClient("127.0.0.1", port=port, ssl=False)
    client.login("alice", "secret")
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search(["ALL"]))
    count = 0
    for i in range(0, len(uids), 100):
        chunk = uids[i : i + 100]
        data = client.fetch(chunk, [_HEADER_ITEM, "BODYSTRUCTURE", "RFC822.SIZE"])
        groups: dict[str, list[int]] = {}
        for uid, item in data.items():
            part = best_text_part(item[b"BODYSTRUCTURE"])
            if part is not None:
                groups.setdefault(part.section, []).append(uid)
        for section, group in groups.items():
            client.fetch(group, [f"BODY.PEEK[{section}]<0.{CAP}>"])
        count += len(data)
    client.logout()
    return count


def onward(
    port: int, workdir: Path, inline: bool = False, step: str = "classify"
) -> tuple[int, float]:
    """(messages, seconds) of one sync into a fresh ledger; creating the database and its
    schema happens once per install and is not timed, connecting and logging in are."""
    from onward.config.settings import load_settings
    from onward.tasks.classify.step import message_step
    from onward.tasks.mail.accounts import Account
    from onward.tasks.mail.decide import record_only
    from onward.tasks.mail.imap import ImapConfig, ImapMailbox
    from onward.tasks.mail.sync import sync_once
    from onward.tasks.store import Mailbox, Store

    db = workdir / f"bench-{time.monotonic_ns()}.db"
    store = Store.open(f"sqlite:///{db}")
    with store.unit_of_work() as session:
        row = Mailbox(name="bench", kind="imap", host="127.0.0.1", port=port, username="alice")
        session.add(row)
        session.flush()
        settings = load_settings(environ={"ONWARD_HOME": str(workdir)})
        account = Account.from_row(row, settings)
    config = ImapConfig(host="127.0.0.1", port=port, username="alice", security="plain")
    start = time.perf_counter()
    with ImapMailbox(config, lambda: "secret") as box:
        report = sync_once(
            store,
            "bench",
            box,
            since=datetime(1990, 1, 1, tzinfo=UTC),
            handler=message_step(settings, account) if step == "classify" else record_only,
            batch_size=100,
            max_text_bytes=CAP,
            parallel_threshold=10**9 if inline else 1000,
        )
    seconds = time.perf_counter() - start
    store.close()
    return report.recorded + report.malformed, seconds


def timed(fn: object, *args: object) -> tuple[int, float]:
    start = time.perf_counter()
    n = fn(*args)  # type: ignore[operator]
    return int(n), time.perf_counter() - start


def startup_overhead(port: int, workdir: Path, reps: int) -> None:
    onward_bin = str(Path(sys.executable).with_name("onward"))
    env = {**os.environ, "ONWARD_HOME": str(workdir / "cli-home"), "MAIL_PW": "secret"}
    env.pop("ONWARD_DATABASE_URL", None)

    def run(*args: str) -> float:
        start = time.perf_counter()
        subprocess.run([onward_bin, *args], env=env, check=True, capture_output=True)
        return time.perf_counter() - start

    run(
        *[
            "connect",
            "--host",
            "127.0.0.1",
            "--user",
            "alice",
            "--address",
            "alice@example.org",
            "--security",
            "plain",
            "--password-env",
            "MAIL_PW",
        ],
        "--port",
        str(port),
    )
    print(
        "first `onward sync --once --since 1990-01-01` (3,900 messages, Prefect start included):"
        f" {run('sync', '--once', '--since', '1990-01-01'):.1f} s"
    )
    helps, syncs = [], []
    for _ in range(reps):
        helps.append(run("--help"))
        syncs.append(run("sync", "--once"))
    h, s = statistics.median(helps), statistics.median(syncs)
    print(f"`onward --help`           median {h:.3f} s over {reps} runs")
    print(
        f"`onward sync --once` (nothing new) median {s:.3f} s; difference {s - h:+.3f} s"
        " (target < 1 s)"
    )


def main() -> None:
    from tests.support.corpus import EASY_HAM, load_mbox
    from tests.support.dovecot import DovecotServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mbox", type=Path, default=EASY_HAM)
    parser.add_argument(
        "--inline", action="store_true", help="decide in this process, no worker process"
    )
    parser.add_argument(
        "--step",
        choices=["classify", "record"],
        default="classify",
        help="the per-message step: the classifier (default) or record only",
    )
    parser.add_argument("--startup-reps", type=int, default=5)
    args = parser.parse_args()
    with DovecotServer() as server, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        total = load_mbox(server, "alice", args.mbox)
        print(
            f"loaded {total} messages from {args.mbox.name} into Dovecot on 127.0.0.1:{server.port}"
        )
        base_rates, onward_rates = [], []
        for r in range(args.rounds):
            n, t = timed(baseline, server.port)
            base_rates.append(n / t)
            m, u = onward(server.port, workdir, args.inline, args.step)
            onward_rates.append(m / u)
            print(
                f"round {r + 1}: baseline {n} msgs in {t:.2f} s ({n / t:,.0f}/s); "
                f"onward {m} msgs in {u:.2f} s ({m / u:,.0f}/s)"
            )
        b, o = statistics.median(base_rates), statistics.median(onward_rates)
        print(
            f"median: baseline {b:,.0f} msgs/s, onward {o:,.0f} msgs/s, ratio {o / b:.2f}x"
            " (target >= 0.7x)"
        )
        startup_overhead(server.port, workdir, args.startup_reps)


if __name__ == "__main__":
    main()
