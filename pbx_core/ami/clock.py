"""Asterisk's clock as seen from here: the wall clock plus the offset to the last ``Timestamp``.

The engine takes time only from event timestamps. Things the bridge stamps itself (a QueueStatus
snapshot, which carries no ``Timestamp``; the once-a-second ``Tick``) must use the same clock, or
a PBX whose clock differs from ours (skew, or the simulator at ``--speed 10``) would see callers
that joined "in the future" and events discarded as stale.
"""

from __future__ import annotations

import time

from ..domain.events import parse_timestamp


class AsteriskClock:
    __slots__ = ("offset_s",)

    def __init__(self) -> None:
        self.offset_s = 0.0

    def observe(self, timestamp: str, wall: float) -> None:
        """An event with ``Timestamp: 1795338000.123456`` was received at local time ``wall``."""
        ts = parse_timestamp(timestamp)
        if ts is not None:  # a malformed or implausible header keeps the previous estimate
            self.offset_s = ts - wall

    def now(self) -> float:
        return time.time() + self.offset_s
