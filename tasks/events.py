"""The kinds of domain events onward records; reactions consume them (no imports: the
decider's worker process loads this)."""

# A message was judged a rejection: draft, cooldown and what follows.
REJECTION_DETECTED = "rejection.detected"
