"""Reaction latency: from a rejection's delivery to its draft in Drafts, with `onward run`.

    ./run python tests/bench/reaction_latency.py [--rejections 20] [--gap 3]

Starts a private Dovecot on 127.0.0.1, connects onward to it, starts `onward run` (which
starts its own local Prefect server), then delivers N rejections among ordinary mail and
watches Drafts for each draft. Prints p50 and p95 seconds (target: p95 <= 10 s). The
baseline, measured side by side, is a bare imapclient IDLE session: how long the server
takes to tell any client that mail arrived, the floor for every IDLE-driven reaction.
"""

from __future__ import annotations

import argparse
import json
import os
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

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rejections", type=int, default=20)
    parser.add_argument("--ordinary-per-rejection", type=int, default=3)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between rejections")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    onward = str(Path(sys.executable).with_name("onward"))

    with DovecotServer() as server, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ONWARD_HOME": tmp, "MAIL_PW": "secret", "ONWARD_USER_NAME": "Alice"}
        for key in ("ONWARD_DATABASE_URL", "PREFECT_API_URL"):
            env.pop(key, None)
        subprocess.run(
            [onward, "connect", "--host", "127.0.0.1", "--port", str(server.port),
             "--user", "alice", "--address", "alice@example.org", "--security", "plain",
             "--password-env", "MAIL_PW"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        log_path = Path(os.environ.get("ONWARD_BENCH_LOG") or Path(tmp) / "worker.log")
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [onward, "run"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            started = time.monotonic()
            while "watching" not in log_path.read_text(errors="replace"):
                if worker.poll() is not None or time.monotonic() - started > 240:
                    raise SystemExit(f"worker did not start:\n{log_path.read_text()}")
                time.sleep(0.5)
            while True:  # the first pass starts the watch at "now": wait for it
                status = subprocess.run(
                    [onward, "status", "--json"], env=env, capture_output=True, check=True
                )
                if json.loads(status.stdout).get("last_sync"):
                    break
                time.sleep(0.5)
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
            for n in range(args.rejections):
                for _ in range(args.ordinary_per_rejection):
                    server.deliver("alice", ORDINARY.format(n=n_other).encode())
                    n_other += 1
                before = len(exists_at)
                server.deliver("alice", REJECTION.format(n=n).encode())
                delivered[f"<bench-rej-{n}@careers.firm{n}.example>"] = t0 = time.monotonic()
                deadline = time.monotonic() + args.gap
                while time.monotonic() < deadline:
                    poll_drafts()
                    time.sleep(0.1)
                if len(exists_at) > before:
                    baseline.append(exists_at[-1] - t0)
            deadline = time.monotonic() + args.timeout
            while len(seen) < len(delivered) and time.monotonic() < deadline:
                poll_drafts()
                time.sleep(0.1)
            stop.set()
            drafts.select_folder("Drafts", readonly=True)
            total_drafts = len(drafts.search(["ALL"]))
            drafts.logout()
            report(delivered, seen, baseline, total_drafts)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=180)
            except subprocess.TimeoutExpired:
                worker.kill()
                print("the worker did not stop within 180 s of SIGTERM and was killed")


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
        f"max {max(latencies):.2f} s  (target p95 <= 10 s)"
    )
    if baseline:
        b50 = statistics.median(baseline)
        print(
            f"baseline: delivery -> IDLE EXISTS   p50 {b50:.2f} s; "
            f"onward p50 is {p50 / b50:.1f}x the IDLE floor"
        )


if __name__ == "__main__":
    main()
