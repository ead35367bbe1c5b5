"""Resident memory of inbox passes run in one process, as `onward run`'s doorbell runs them.

    ./run python tests/bench/pass_memory.py [--passes 126] [--per-pass 25] [--rejections 0.04]

Connects onward to a Maildir in a temp folder, starts a local Prefect server, then delivers
``--per-pass`` messages (a ``--rejections`` share of them rejections) and runs one
watch_inbox pass in this process, ``--passes`` times. Every ``--every`` passes it collects
garbage, returns free heap to the system and prints resident memory, the number of Python
objects and pymalloc blocks: what the worker keeps, without the worker's other threads.
Compare runs that differ in one thing (no rejections, no messages) to see which work the
worker's growth follows (tests/bench/soak.py measures the worker itself).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

REJECTION = (
    "Dear Alice,\n\nThank you for applying for the Data Engineer position at Firm{n}. After "
    "careful consideration, we have decided to move forward with other candidates.\n\n"
    "Kind regards,\nMorgan Lee\n"
)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--passes", type=int, default=126)
    parser.add_argument("--per-pass", type=int, default=25, help="messages per pass")
    parser.add_argument("--rejections", type=float, default=0.04, help="share of rejections")
    parser.add_argument("--every", type=int, default=25, help="print every N passes")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(ONWARD_HOME=str(Path(tmp) / "home"), ONWARD_USER_NAME="Alice")
        os.environ["ONWARD_CALENDAR_FEED_PORT"] = "0"
        for key in ("ONWARD_DATABASE_URL", "PREFECT_API_URL", "PREFECT_HOME"):
            os.environ.pop(key, None)
        from onward.config.settings import load_settings
        from onward.deployments.server import LocalPrefectServer
        from onward.tasks.heap import release_free_memory
        from onward.tasks.mail.maildir import create_maildir, deliver_to_maildir
        from tests.support.mailgen import make_mail

        maildir = create_maildir(Path(tmp) / "Maildir")
        onward = str(Path(sys.executable).with_name("onward"))
        subprocess.run(
            [onward, "connect", "--maildir", str(maildir), "--address", "alice@example.org"],
            check=True, capture_output=True,
        )  # fmt: skip
        settings = load_settings()
        rng = random.Random(args.seed)
        with LocalPrefectServer(settings.prefect_home, port=0, keep_runs_days=30) as server:
            os.environ["PREFECT_API_URL"] = server.api_url
            # Imported only now: Prefect reads PREFECT_API_URL when it is first imported.
            from onward.flows.common import in_process
            from onward.flows.watch_inbox import watch_inbox

            n = rejections = 0
            print(f"{'pass':>5} {'messages':>9} {'rejections':>10} {'RSS MB':>8} "
                  f"{'objects':>9} {'blocks':>9}", flush=True)  # fmt: skip
            for p in range(args.passes + 1):
                for _ in range(args.per_pass if p else 0):
                    if rng.random() < args.rejections:
                        raw = make_mail(
                            n, subject="Your application", body=REJECTION.format(n=n),
                            sender=f"Morgan Lee <morgan.lee@firm{n}.example>",
                        )  # fmt: skip
                        rejections += 1
                    else:
                        raw = make_mail(n)
                    deliver_to_maildir(maildir, raw)
                    n += 1
                with in_process():
                    watch_inbox(mailbox=None, config_file=None, reactions="inline", ask_in_ui=True)
                if p % args.every == 0:
                    gc.collect()
                    release_free_memory(force=True)
                    objects, blocks = len(gc.get_objects()), sys.getallocatedblocks()
                    print(f"{p:>5} {n:>9} {rejections:>10} {rss_mb():>8.1f} "
                          f"{objects:>9} {blocks:>9}", flush=True)  # fmt: skip
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)  # the runs' logs reach the server before it stops


if __name__ == "__main__":
    main()
