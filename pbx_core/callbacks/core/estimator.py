"""An honest expected wait: position x recent AHT / staffed agents.

Asterisk's own ``holdtime`` announcement is an average of past waits, which lags badly when a
queue fills up; what the caller wants to know is how long the work ahead of them takes. With
``n`` staffed agents each finishing a call every AHT seconds on average, the line moves one
place every AHT / n seconds, so the caller at position ``p`` waits about ``p x AHT / n``
(``announce.forecast_wait`` adds callers ahead hanging up and the spread).
AHT (talk + wrap-up) is the mean of the last ``window`` handled calls: handle times spread widely
(their standard deviation is about their mean), so a short exponential average of them is off by
a third at any moment (alpha 0.2), where the last 100 calls are off by a tenth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class WaitEstimator:
    window: int = 100  # handled calls the AHT is the mean of
    samples: int = 0
    _recent: deque[float] = field(default_factory=deque)
    _total: float = 0.0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1 call")

    @property
    def aht_s(self) -> float | None:
        """Mean handle time of the recent calls; None until a call was handled."""
        return self._total / len(self._recent) if self._recent else None

    def observe(self, handle_s: float) -> None:
        """One handled call's talk + wrap-up seconds."""
        if handle_s < 0:
            return  # a clock step; not a call length
        self._recent.append(handle_s)
        self._total += handle_s
        if len(self._recent) > self.window:
            self._total -= self._recent.popleft()
        if len(self._recent) == 1 or self.samples % 1000 == 0:
            self._total = sum(self._recent)  # no float drift over a long day
        self.samples += 1

    def expected_wait(self, position: int, staffed_agents: int) -> float | None:
        """Seconds until the caller at ``position`` (1 = next) reaches an agent.

        None when nothing honest can be said: no staffed agent, or no AHT known yet.
        """
        aht = self.aht_s
        if staffed_agents <= 0 or aht is None or position < 1:
            return None
        return position * aht / staffed_agents


def announce_minutes(expected_wait_s: float | None) -> int | None:
    """Whole minutes to announce, rounded up (never promise less than the estimate); None: say nothing."""
    if expected_wait_s is None:
        return None
    return max(1, int(-(-expected_wait_s // 60)))


@dataclass(slots=True)
class RollingServiceLevel:
    """The queue's live service level over the last ``window_s`` seconds (DESIGN.md KPI: answered
    within T / (answered + abandoned - short abandons)), for pacing fill-work callbacks.

    The day's SL reacts too slowly to tell whether agents have room right now; a short rolling
    window does. Callers who left to be called back are not fed in (they are other exits)."""

    service_level_s: float = 30.0
    short_abandon_s: float = 5.0
    window_s: float = 900.0
    # (time, counts as within T): answered and abandoned callers, oldest first.
    _calls: deque[tuple[float, bool]] = field(default_factory=deque)

    def answered(self, at: float, waited_s: float) -> None:
        self._calls.append((at, waited_s <= self.service_level_s))

    def abandoned(self, at: float, waited_s: float) -> None:
        if waited_s >= self.short_abandon_s:  # a short abandon counts nowhere
            self._calls.append((at, False))

    def pct(self, now: float) -> float | None:
        """SL % of the calls that ended in the window; None when none did (nothing to pace by)."""
        while self._calls and self._calls[0][0] <= now - self.window_s:
            self._calls.popleft()
        if not self._calls:
            return None
        return 100.0 * sum(within for _, within in self._calls) / len(self._calls)


@dataclass(slots=True)
class RollingLoad:
    """Recent offered load as a share of the staffed agents: arrivals in the last ``window_s`` x
    recent AHT / (window x staffed agents). Above 1 the queue is in overload and any fill work
    only pushes live callers back; well below it there is room to catch up."""

    window_s: float = 900.0
    _arrivals: deque[float] = field(default_factory=deque)

    def arrived(self, at: float) -> None:
        self._arrivals.append(at)

    def count(self, now: float) -> int:
        """Arrivals in the last ``window_s``."""
        while self._arrivals and self._arrivals[0] <= now - self.window_s:
            self._arrivals.popleft()
        return len(self._arrivals)

    def share(self, now: float, aht_s: float | None, staffed_agents: int) -> float | None:
        """None when nothing honest can be said (no AHT yet, no staffed agent)."""
        arrivals = self.count(now)
        if aht_s is None or staffed_agents <= 0:
            return None
        return arrivals * aht_s / (self.window_s * staffed_agents)


@dataclass(slots=True)
class RollingAbandonRate:
    """How fast waiting callers hang up: abandons per waiting caller-second over the last
    ``window_s`` (abandons / the waits of every caller who left the line, answered or not). It
    makes the line move faster than agents alone do (see ``announce.expected_wait_s``)."""

    window_s: float = 900.0
    _ended: deque[tuple[float, float, bool]] = field(default_factory=deque)  # (at, waited, abandoned)
    _waited: float = 0.0
    _abandons: int = 0

    def ended(self, at: float, waited_s: float, abandoned: bool) -> None:
        waited = max(0.0, waited_s)
        self._ended.append((at, waited, abandoned))
        self._waited += waited
        self._abandons += abandoned

    def rate(self, now: float) -> float:
        ended = self._ended
        while ended and ended[0][0] <= now - self.window_s:
            _, waited, abandoned = ended.popleft()
            self._waited -= waited
            self._abandons -= abandoned
        return self._abandons / self._waited if self._waited > 1.0 else 0.0
