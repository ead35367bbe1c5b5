"""Races between workers on one mailbox are expected: "already done by another worker"
is logged at INFO and counted here, never raised or logged as an error."""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("onward.races")

# Per table, how many writes this process found already done by another worker.
RACES: Counter[str] = Counter()
