"""Capped exponential backoff with jitter, for every retry loop in `realtime/`."""

from __future__ import annotations

import random


def backoff(attempt: int, *, base: float = 0.1, cap: float = 10.0) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, …): exponential, capped, half jittered."""
    delay = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 32))
    # Half of the delay is random so that processes cut off together don't come back in lockstep.
    return delay / 2 + random.uniform(0, delay / 2)
