"""watch_interval: the safety net under IDLE. `onward run`'s doorbell owns the watch; this
run, on an interval, asks it for a pass over its health endpoint (POST /ring) and makes the
pass itself only when no doorbell answers (no `onward run`, or its watch is stuck)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from contextlib import closing
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

# How long a pass may take before the interval run stops waiting for the doorbell.
RING_TIMEOUT = 120.0


@task(name="ring the doorbell", task_run_name="ask onward run for a pass", cache_policy=NO_CACHE)
def ask_doorbell(health_url: str, timeout: float = RING_TIMEOUT + 10) -> dict[str, Any] | None:
    """POST /ring: the doorbell's answer, or None when no doorbell answers."""
    request = urllib.request.Request(f"{health_url}/ring", data=b"", method="POST")
    try:
        with closing(urllib.request.urlopen(request, timeout=timeout)) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read() or b"{}")
        return answer
    except (OSError, ValueError):
        return None


@flow(name="watch_interval", flow_run_name="interval check {mailbox}", log_prints=False)
def interval_watch(
    mailbox: str, config_file: str | None = None, health_url: str | None = None
) -> str:
    """The safety net under IDLE: a pass by the doorbell, or here when none answers."""
    logger = get_run_logger()
    answer = ask_doorbell(health_url) if health_url else None
    if answer is not None and answer.get("ok"):
        summary = f"the doorbell made a pass; it is watching (passes so far: {answer['passes']})"
        logger.info(summary)
        return summary
    if answer is not None:
        logger.warning("the doorbell did not finish a pass in time: %s", answer.get("last_error"))
    else:
        logger.warning("no doorbell answered at %s: this run makes the pass", health_url)
    from onward.flows.watch_inbox import describe, watch_inbox

    report = watch_inbox(mailbox=mailbox, config_file=config_file, reactions="deployments")
    return describe(report)
