"""Reconnect delays: capped exponential backoff with jitter.

"Equal jitter": a uniform draw between half and all of the capped exponential. The random half
spreads the reconnects of many bridges after an Asterisk restart instead of having them knock
at the same instants; the fixed half keeps a flapping Asterisk from being hammered in a loop.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Delay before reconnect attempt ``attempt`` (0 = the first retry): in
    ``[c/2, c]`` with ``c = min(cap_s, base_s * 2**attempt)``."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempt, 0), 32))
    return ceiling / 2 + (rng or random).uniform(0.0, ceiling / 2)
