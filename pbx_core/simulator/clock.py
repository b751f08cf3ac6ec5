"""The simulator's own clock: every event ``Timestamp`` and every QueueStatus ``Wait`` reads it.

The engine takes time only from event timestamps, so the simulator can run faster than real
time (``speed``) or be stepped instantly (tests) and the engine still sees a consistent world.
"""

from __future__ import annotations

import time


class SimClock:
    """Virtual epoch seconds.

    ``speed=None``: stepped; time moves only through :meth:`advance_to` / :meth:`advance`.
    ``speed=x``: follows the monotonic clock, ``x`` virtual seconds per real second.
    """

    def __init__(self, start: float | None = None, *, speed: float | None = 1.0) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._anchor_virtual = time.time() if start is None else float(start)
        self._anchor_real = time.monotonic()

    @classmethod
    def stepped(cls, start: float) -> SimClock:
        return cls(start, speed=None)

    @property
    def stepped_mode(self) -> bool:
        return self.speed is None

    def now(self) -> float:
        if self.speed is None:
            return self._anchor_virtual
        return self._anchor_virtual + (time.monotonic() - self._anchor_real) * self.speed

    def advance_to(self, t: float) -> None:
        """Jump forward to ``t`` (never backward). In real-time mode this skips ahead."""
        now = self.now()
        if t > now:
            self._anchor_virtual += t - now

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now() + seconds)

    def real_delay(self, t: float) -> float:
        """Real seconds until virtual time ``t``; 0 in stepped mode (it is reached by stepping)."""
        if self.speed is None:
            return 0.0
        return max(0.0, (t - self.now()) / self.speed)
