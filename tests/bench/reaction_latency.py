"""Reaction latency: from a rejection's delivery to its draft in Drafts, with `onward run`.

    ./run python tests/bench/reaction_latency.py [--rejections 100] [--gap-min 0 --gap-max 5]
    ./run python tests/bench/reaction_latency.py --rejections 20 --gap-min 3 --gap-max 3

Starts a private Dovecot on 127.0.0.1, connects onward to it, starts `onward run` (which
starts its own local Prefect server), then delivers N rejections among ordinary mail at
random gaps (so some arrive while a pass is running) and watches Drafts for each draft.
Prints p50, p95 and max seconds (target: max <= 10 s, p95 <= 3 s). The baseline, measured
side by side, is a bare imapclient IDLE session: how long the server takes to tell any
client that mail arrived, the floor for every IDLE-driven reaction.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

REJECTION = """Message-ID: <bench-rej-{n}@careers.firm{n}.example>
Date: Fri, 27 Nov 2026 10:00:00 +0000
From: Morgan Lee <morgan.lee@firm{n}.example>
To: alice@example.org
Subject: Your application for Platform Engineer ({n})
Content-Type: text/plain; charset=utf-8

Dear Alice,

Thank you for applying for the Platform Engineer position at Firm{n}. After careful
consideration, we have decided to move forward with other candidates.

Kind regards,
Morgan Lee
"""

ORDINARY = """Message-ID: <bench-other-{n}@news.example>
Date: Fri, 27 Nov 2026 10:00:00 +0000
From: Weekly Digest <digest@news.example>
To: alice@example.org
Subject: Your weekly digest #{n}
Content-Type: text/plain; charset=utf-8

Here is what happened this week in the projects you follow: {n} new releases.
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    from imapclient import IMAPClient

    from tests.support.dovecot import DovecotServer
    from tests.support.processes import free_port, start_worker, stop_worker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rejections", type=int, default=100)
    parser.add_argument("--ordinary-per-rejection", type=int, default=3)
    parser.add_argument("--gap-min", type=float, default=0.0, help="shortest gap (s)")
    parser.add_argument("--gap-max", type=float, default=5.0, help="longest gap (s)")
    parser.add_argument("--seed", type=int, default=None, help="for repeatable gaps")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    onward = str(Path(sys.executable).with_name("onward"))

    with DovecotServer() as server, tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "ONWARD_HOME": tmp,
            "MAIL_PW": "secret",
            "ONWARD_USER_NAME": "Alice",
            "ONWARD_WORKER_HEALTH_PORT": str(free_port()),
            "ONWARD_WORKER_PREFECT_PORT": str(free_port()),
            "ONWARD_CALENDAR_FEED_PORT": "0",
        }
        for key in ("ONWARD_DATABASE_URL", "PREFECT_API_URL"):
            env.pop(key, None)
        subprocess.run(
            [onward, "connect", "--host", "127.0.0.1", "--port", str(server.port),
             "--user", "alice", "--address", "alice@example.org", "--security", "plain",
             "--password-env", "MAIL_PW"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        log_path = Path(os.environ.get("ONWARD_BENCH_LOG") or Path(tmp) / "worker.log")
        started = time.monotonic()
        worker = start_worker(onward, env, log_path)
        try:
            print(f"worker ready in {time.monotonic() - started:.1f} s")

            # Baseline: a bare IDLE session on INBOX, noting when each EXISTS arrives.
            exists_at: list[float] = []
            stop = threading.Event()

            def idle_observer() -> None:
                client = IMAPClient("127.0.0.1", port=server.port, ssl=False)
                client.login("alice", "secret")
                client.select_folder("INBOX", readonly=True)
                client.idle()
                while not stop.is_set():
                    for response in client.idle_check(timeout=0.2):
                        if len(response) > 1 and response[1] == b"EXISTS":
                            exists_at.append(time.monotonic())
                client.idle_done()
                client.logout()

            observer = threading.Thread(target=idle_observer, daemon=True)
            observer.start()
            time.sleep(1)

            delivered: dict[str, float] = {}
            baseline: list[float] = []
            drafts = IMAPClient("127.0.0.1", port=server.port, ssl=False)
            drafts.login("alice", "secret")
            seen: dict[str, float] = {}

            def poll_drafts() -> None:
                drafts.select_folder("Drafts", readonly=True)
                for marker in delivered:
                    if marker not in seen and drafts.search(
                        ["HEADER", "X-Onward-Feedback-For", marker]
                    ):
                        seen[marker] = time.monotonic()

            n_other = 0
            gaps: list[float] = []
            for n in range(args.rejections):
                for _ in range(args.ordinary_per_rejection):
                    server.deliver("alice", ORDINARY.format(n=n_other).encode())
                    n_other += 1
                before = len(exists_at)
                server.deliver("alice", REJECTION.format(n=n).encode())
                delivered[f"<bench-rej-{n}@careers.firm{n}.example>"] = t0 = time.monotonic()
                gap = rng.uniform(args.gap_min, args.gap_max)
                gaps.append(gap)
                deadline = time.monotonic() + gap
                while time.monotonic() < deadline:
                    poll_drafts()
                    time.sleep(0.05)
                if len(exists_at) > before:
                    baseline.append(exists_at[before] - t0)
            deadline = time.monotonic() + args.timeout
            while len(seen) < len(delivered) and time.monotonic() < deadline:
                poll_drafts()
                time.sleep(0.1)
            stop.set()
            drafts.select_folder("Drafts", readonly=True)
            total_drafts = len(drafts.search(["ALL"]))
            drafts.logout()
            short = sum(1 for g in gaps if g < 1.0)
            print(
                f"gaps {args.gap_min:g}-{args.gap_max:g} s (seed {args.seed}); {short} under 1 s "
                "(the next rejection arrives while the previous one's pass runs)"
            )
            report(delivered, seen, baseline, total_drafts)
        finally:
            stop_worker(worker)


def report(
    delivered: dict[str, float], seen: dict[str, float], baseline: list[float], total: int
) -> None:
    latencies = [seen[m] - delivered[m] for m in delivered if m in seen]
    print(
        f"rejections delivered {len(delivered)}, drafts seen {len(latencies)}, "
        f"messages in Drafts {total} (expect {len(delivered)})"
    )
    if not latencies:
        raise SystemExit("no draft appeared; see the worker log")
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(
        f"onward: delivery -> draft in Drafts  p50 {p50:.2f} s  p95 {p95:.2f} s  "
        f"max {max(latencies):.2f} s  (target: max <= 10 s, p95 <= 3 s)"
    )
    if baseline:
        b50 = statistics.median(baseline)
        print(
            f"baseline: delivery -> IDLE EXISTS   p50 {b50:.2f} s  "
            f"p95 {percentile(baseline, 0.95):.2f} s  max {max(baseline):.2f} s; "
            f"onward p50 is {p50 / b50:.1f}x the IDLE floor"
        )


if __name__ == "__main__":
    main()
