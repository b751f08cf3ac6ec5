"""Wait announcements that are true, and how true they were.

What a caller joining the line is told: the expected wait from the line ahead of them (see
:func:`expected_wait_s`), said as "less than a minute" or whole minutes (:func:`spoken_s`).
How true it was: each answered caller's actual wait against what they were told
(:func:`within_band`, :func:`accuracy`); the bench, ``pbx-core replay`` and the history writer
use the same functions.

Asterisk's own ``announce-holdtime`` is the baseline (``apps/app_queue.c``): an exponential
average of past hold times, ``holdtime = (3 x holdtime + newholdtime) / 4`` (integer shift) on
every answered call (the first one sets it), announced as
``|holdtime + 30 - elapsed| // 60`` minutes, and nothing when that is 0
(:func:`asterisk_holdtime`, :func:`asterisk_announcement_s`). It looks backwards: after a queue
fills up it keeps promising the short waits of the quiet hour before.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...domain.queue_state import (
    AVAILABLE,
    LOGGED_OUT,
    PAUSED,
    UNAVAILABLE,
    WRAPUP,
    Delta,
    LiveState,
    QueueState,
)

BAND_SHARE = 0.3  # within +-30% of what was said ...
BAND_MIN_S = 30.0  # ... or +-30 s for short waits


def expected_wait_s(
    position: int,
    staffed: int,
    aht_s: float | None,
    abandon_rate: float = 0.0,
    free: int = 0,
    soon: tuple[float, ...] = (),
) -> float | None:
    """Seconds until the caller at ``position`` (1 = next) reaches an agent.

    ``free`` agents take the first callers at once. Beyond them the line moves when an agent
    frees up (``staffed / aht_s`` per second) or when one of the ``j`` callers still ahead hangs
    up (``j x abandon_rate``; the rate per waiting caller-second, measured on the queue):
    ``sum over j = position-1 .. 0 of 1 / (staffed / aht + j x rate)``. With no abandons that is
    ``position x AHT / staffed``. None when nothing honest can be said (no staffed agent, no
    handle time known yet)."""
    if position <= free and position >= 1 and free > 0:
        return 0.0  # an agent is free for them
    # Agents in wrap-up are free at a known moment (``soon``: seconds until each is).
    ready = sorted(soon)
    if position >= 1 and position - free <= len(ready):
        return ready[position - free - 1]
    if staffed <= 0 or aht_s is None or aht_s <= 0 or position < 1:
        return None
    position -= max(0, free) + len(ready)
    served = staffed / aht_s
    rate = max(0.0, abandon_rate)
    return sum(1.0 / (served + j * rate) for j in range(position))


# The line moves in random steps (calls end when they end), so the wait a caller will have is
# spread around its mean with a long tail: the value most likely to be within the band is below
# the mean. `pbx-core bench callbacks` (seeds 1-10): saying 0.8 x the expected wait put 70-79%
# of callers within the band, the mean itself 62-70%.
SAY_SHARE = 0.8


def spoken_s(expected: float | None) -> float | None:
    """What is said, in seconds: "less than a minute" (30) or whole minutes (None: nothing: no
    estimate, or an agent is free)."""
    if expected is None or expected < 1.0:
        return None
    said = SAY_SHARE * expected
    if said < 45.0:
        return 30.0
    return 60.0 * max(1, round(said / 60.0))


def asterisk_holdtime(previous: int | None, hold_s: float) -> int:
    """app_queue's ``recalc_holdtime``: the first answered call sets it, then
    ``((old << 2) - old + new) >> 2``."""
    new = int(hold_s)
    if previous is None:
        return new
    return ((previous << 2) - previous + new) >> 2


def asterisk_announcement_s(holdtime: int | None, elapsed_s: float = 0.0) -> float | None:
    """What ``announce-holdtime`` says (in whole minutes, as seconds); None when it says nothing
    (no hold time yet, or under a minute)."""
    if holdtime is None:
        return None
    minutes = abs(int(holdtime + 30 - elapsed_s)) // 60
    return 60.0 * minutes if minutes > 0 else None


def within_band(announced_s: float | None, actual_s: float) -> bool:
    """Whether the actual wait was within +-30% of what was said, or +-30 s for short waits.
    Saying nothing counts as saying 0."""
    said = announced_s or 0.0
    return abs(actual_s - said) <= max(BAND_SHARE * said, BAND_MIN_S)


@dataclass(frozen=True, slots=True)
class Accuracy:
    callers: int  # answered callers who were told something (or nothing) and then waited
    within: int
    median_error_s: float | None  # median of |actual - said|

    @property
    def within_pct(self) -> float | None:
        return round(100.0 * self.within / self.callers, 1) if self.callers else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "callers": self.callers,
            "within_pct": self.within_pct,
            "median_error_s": None if self.median_error_s is None else round(self.median_error_s, 1),
        }


def accuracy(pairs: Iterable[tuple[float | None, float]]) -> Accuracy:
    """``pairs``: (what a caller was told, the wait they then had) for answered callers."""
    told = list(pairs)
    errors = [abs(actual - (said or 0.0)) for said, actual in told]
    return Accuracy(
        callers=len(told),
        within=sum(1 for said, actual in told if within_band(said, actual)),
        median_error_s=statistics.median(errors) if errors else None,
    )


# --------------------------------------------------------------------------- measuring a stream


@dataclass(slots=True)
class _QueueMeter:
    holdtime: int | None = None  # Asterisk's exponential average, as app_queue keeps it
    # uniqueid -> what the caller was told on joining: (ours, Asterisk's, when)
    told: dict[str, tuple[float | None, float | None, float]] = field(default_factory=dict)
    ours: list[tuple[float | None, float]] = field(default_factory=list)
    asterisk: list[tuple[float | None, float]] = field(default_factory=list)
    ended: deque[tuple[float, float, bool]] = field(default_factory=deque)  # for the abandon rate


class AnnouncementMeter:
    """What each caller joining would have been told - by pbx-core (the expected wait from the
    line as the engine saw it at the join: position, staffed agents, handle time, callers
    hanging up) and by Asterisk's announce-holdtime - against the wait they then had (answered
    callers). Fed the engine's deltas in order with the state right after them (``replay``);
    pure. ``results()``: per queue, the two accuracies."""

    def __init__(self, window_s: float = 900.0) -> None:
        self.window_s = window_s
        self.queues: dict[str, _QueueMeter] = {}

    def observe(self, state: LiveState, deltas: Iterable[Delta]) -> None:
        for delta in deltas:
            kind = delta.type
            if kind == "caller.joined":
                self._joined(state, delta)
            elif kind == "caller.answered":
                m = self.queues.setdefault(delta.queue, _QueueMeter())
                held = float(delta.data.get("hold_s") or 0.0)
                said = m.told.pop(str(delta.data.get("uniqueid")), None)
                if said is not None:
                    m.ours.append((said[0], held))
                    m.asterisk.append((said[1], held))
                m.holdtime = asterisk_holdtime(m.holdtime, held)
                m.ended.append((delta.ts, held, False))
            elif kind == "caller.abandoned":
                # (A caller.left comes before every answer too: only an abandon ends the wait
                # unanswered; other exits are pruned as they age.)
                m = self.queues.setdefault(delta.queue, _QueueMeter())
                m.told.pop(str(delta.data.get("uniqueid")), None)
                m.ended.append((delta.ts, float(delta.data.get("waited_s") or 0.0), True))

    def _joined(self, state: LiveState, delta: Delta) -> None:
        m = self.queues.setdefault(delta.queue, _QueueMeter())
        q = state.queues.get(delta.queue)
        if q is None:
            return
        position = int(delta.data.get("position") or len(q.callers) or 1)
        staffed = sum(1 for member in q.members.values() if member.state not in _NOT_STAFFED)
        free = sum(1 for member in q.members.values() if member.state == AVAILABLE)
        soon = wrapping_up(q, delta.ts)
        c = q.counters
        aht = (c.talk_s + c.wrapup_s) / c.handled if c.handled else None
        while m.ended and m.ended[0][0] <= delta.ts - self.window_s:
            m.ended.popleft()
        waited = sum(w for _, w, _ in m.ended)
        rate = sum(1 for *_, gave_up in m.ended if gave_up) / waited if waited > 1.0 else 0.0
        ours = spoken_s(expected_wait_s(position, staffed, aht, rate, free, soon))
        m.told[str(delta.data.get("uniqueid"))] = (ours, asterisk_announcement_s(m.holdtime), delta.ts)
        if len(m.told) > 1000:  # callers who left otherwise (a timeout, a key): forget old ones
            for uid in [u for u, (*_, at) in m.told.items() if at < delta.ts - _FORGET_AFTER_S]:
                del m.told[uid]

    def results(self) -> dict[str, dict[str, Accuracy]]:
        return {
            name: {"ours": accuracy(m.ours), "asterisk": accuracy(m.asterisk)}
            for name, m in sorted(self.queues.items())
            if m.ours
        }


_NOT_STAFFED = frozenset({LOGGED_OUT, UNAVAILABLE, PAUSED})


def wrapping_up(q: QueueState, now: float) -> tuple[float, ...]:
    """Seconds until each agent in wrap-up is free again (the wrap-up time is known)."""
    return tuple(max(0.0, m.wrapup_until - now) for m in q.members.values() if m.state == WRAPUP)
_FORGET_AFTER_S = 6 * 3600.0
