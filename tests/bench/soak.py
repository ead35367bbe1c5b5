"""Soak: `onward run`'s resident memory over 10,000 messages delivered in batches.

    ./run python tests/bench/soak.py [--messages 10000] [--batch 250] [--rejections 0.02]

Connects onward to a Maildir in a temp folder, starts `onward run` (its doorbell makes every
pass, as a person's worker does; it starts its own local Prefect server), then delivers the
messages in batches (a small share rejections, each drafted and given a cooldown), waiting
after each batch until every message is in the ledger. After each batch it prints the
resident memory (RSS) of the worker process alone and of the worker with its children (the
Prefect server, any flow-run processes). At the end: final RSS over the RSS after warm-up
(the first ``--warmup`` share of the messages), and the verdict "flat within 20%" or not.
Benchmarks print figures; nothing here is a timed assert.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

REJECTION = (
    "Dear Alice,\n\nThank you for applying for the {role} position at {company}. After "
    "careful consideration, we have decided to move forward with other candidates.\n\n"
    "Kind regards,\nMorgan Lee\n"
)
ROLES = ["Platform Engineer", "Data Engineer", "Backend Developer", "SRE"]


def rss_kib(pid: int) -> int:
    """VmRSS of one process, 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
            out += children
            stack += children
    return out


def memory(pid: int) -> tuple[float, float, int]:
    """(worker MB, worker + children MB, number of children)."""
    kids = descendants(pid)
    own = rss_kib(pid)
    return own / 1024, (own + sum(rss_kib(k) for k in kids)) / 1024, len(kids)


def ledger_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("select count(*) from ledger").fetchone()[0])
    except sqlite3.Error:
        return -1  # locked for a moment, or not created yet


def main() -> None:
    from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
    from tests.support.mailgen import make_mail
    from tests.support.processes import free_port, start_worker, stop_worker

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--rejections", type=float, default=0.02, help="share of rejections")
    parser.add_argument("--warmup", type=float, default=0.2, help="share counted as warm-up")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--batch-timeout", type=float, default=600.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    onward = str(Path(sys.executable).with_name("onward"))

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        maildir = create_maildir(Path(tmp) / "Maildir")
        env = {
            **os.environ,
            "ONWARD_HOME": str(home),
            "ONWARD_USER_NAME": "Alice",
            "ONWARD_WORKER_HEALTH_PORT": str(free_port()),
            "ONWARD_WORKER_PREFECT_PORT": str(free_port()),
            "ONWARD_CALENDAR_FEED_PORT": "0",
        }
        for key in ("ONWARD_DATABASE_URL", "PREFECT_API_URL", "PREFECT_HOME"):
            env.pop(key, None)
        subprocess.run(
            [onward, "connect", "--maildir", str(maildir), "--address", "alice@example.org"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        log_path = Path(os.environ.get("ONWARD_BENCH_LOG") or Path(tmp) / "worker.log")
        started = time.monotonic()
        worker = start_worker(onward, env, log_path)
        db = home / "onward.db"
        try:
            mb, tree, kids = memory(worker.pid)
            print(f"worker ready in {time.monotonic() - started:.1f} s: "
                  f"worker {mb:.0f} MB, with children {tree:.0f} MB ({kids} children)")  # fmt: skip
            print(f"{'messages':>9} {'rejections':>10} {'seconds':>8} {'worker MB':>10} "
                  f"{'+children MB':>13} {'children':>8}")  # fmt: skip
            delivered = rejections = 0
            warm: tuple[float, float] | None = None
            t0 = time.monotonic()
            while delivered < args.messages:
                for _ in range(min(args.batch, args.messages - delivered)):
                    n = delivered
                    if rng.random() < args.rejections:
                        body = REJECTION.format(role=rng.choice(ROLES), company=f"Firm{n}")
                        sender = f"Morgan Lee <morgan.lee@firm{n}.example>"
                        raw = make_mail(n, subject="Your application", body=body, sender=sender)
                        rejections += 1
                    else:
                        raw = make_mail(n)
                    deliver_to_maildir(maildir, raw)
                    delivered += 1
                deadline = time.monotonic() + args.batch_timeout
                while ledger_count(db) < delivered:
                    if worker.poll() is not None:
                        raise SystemExit(f"the worker exited:\n{log_path.read_text()[-3000:]}")
                    if time.monotonic() > deadline:
                        raise SystemExit(f"batch not recorded within {args.batch_timeout:.0f} s")
                    time.sleep(0.5)
                mb, tree, kids = memory(worker.pid)
                print(f"{delivered:>9} {rejections:>10} {time.monotonic() - t0:>8.0f} "
                      f"{mb:>10.1f} {tree:>13.1f} {kids:>8}", flush=True)  # fmt: skip
                if warm is None and delivered >= args.warmup * args.messages:
                    warm = (mb, tree)
            time.sleep(15)  # the last drafts and cooldowns settle
            mb, tree, kids = memory(worker.pid)
            drafts = len(list((maildir / ".Drafts" / "cur").glob("*")))
            print(f"settled: worker {mb:.1f} MB, with children {tree:.1f} MB ({kids} children); "
                  f"{drafts} drafts for {rejections} rejections")  # fmt: skip
            assert warm is not None
            for what, now, then in (("worker", mb, warm[0]), ("worker + children", tree, warm[1])):
                ratio = now / then
                verdict = "flat within 20%" if ratio <= 1.2 else "NOT flat: grew more than 20%"
                print(f"{what}: final / after warm-up = {now:.1f} / {then:.1f} MB = "
                      f"{ratio:.2f}: {verdict}")  # fmt: skip
        finally:
            stop_worker(worker)


if __name__ == "__main__":
    main()
