"""What the live queue state (the bridge's engine, ``pbx_core.domain``) means for callbacks.

Pure: from a :class:`LiveState` (and the pacing inputs fed from the engine's deltas) to the
scheduler's :class:`QueueLoad` per queue, and the honest expected wait a caller joining now
would hear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ...domain.queue_state import AVAILABLE, LOGGED_OUT, PAUSED, UNAVAILABLE, Delta, LiveState, QueueState
from .announce import WaitForecast, forecast_wait, wrapping_up
from .estimator import RollingAbandonRate, RollingLoad, RollingServiceLevel, WaitEstimator
from .events import PAUSE_REASON
from .model import WAITING, Callback
from .promise import LineAhead
from .scheduler import QueueKey, QueueLoad

PACING_WINDOW_S = 900.0  # the bench's --sl-window: long enough to hold a few dozen calls
FILL_RATE_WINDOW_S = 3600.0  # fill callbacks go out a few an hour: an hour holds enough of them


def split_queue(full_name: str) -> QueueKey | None:
    """``acme-support`` -> ("acme", "support"); None for a name without a tenant prefix."""
    tenant, sep, short = full_name.partition("-")
    return (tenant, short) if sep and tenant and short else None


def free_agents(q: QueueState) -> list[str]:
    """Members available right now: logged in, not paused, not ringing, not on a call, not in
    wrap-up, device reachable (the engine's AVAILABLE state says exactly that)."""
    return sorted(m.interface for m in q.members.values() if m.state == AVAILABLE)


def staffed_agents(q: QueueState) -> int:
    """Agents who work this queue's line: logged in and reachable, not on a break. An agent
    paused for a callback is working the line, so they count."""
    return sum(
        1
        for m in q.members.values()
        if m.state not in (LOGGED_OUT, UNAVAILABLE)
        and not (m.state == PAUSED and m.paused_reason != PAUSE_REASON)
    )


def idle_since(q: QueueState) -> dict[str, float]:
    """Since when each available member has been available (the engine's state ``since``)."""
    return {m.interface: m.state_since for m in q.members.values() if m.state == AVAILABLE}


@dataclass(slots=True)
class QueuePacing:
    """One queue's rolling service level and offered load, for pacing fill callbacks, and the
    fill callbacks it dialled lately (the rate a fill callback's promise counts on)."""

    sl: RollingServiceLevel
    load: RollingLoad
    fills: RollingLoad = field(default_factory=lambda: RollingLoad(FILL_RATE_WINDOW_S))
    # The offered load over the same hour: fill promises count on no fill work in overload.
    hour_load: RollingLoad = field(default_factory=lambda: RollingLoad(FILL_RATE_WINDOW_S))
    abandons: RollingAbandonRate = field(default_factory=RollingAbandonRate)

    def fill_rate(self, now: float) -> float:
        """Fill callbacks dialled per second over the last hour."""
        return self.fills.count(now) / self.fills.window_s


@dataclass(slots=True)
class Pacing:
    """Feeds each queue's :class:`QueuePacing` from the engine's deltas.

    Only the calls the live SL counts go in: answered callers (``caller.answered``, from
    AgentConnect, with its hold time) and abandons (``caller.abandoned``; short ones count
    nowhere). A caller who pressed 1 for a callback leaves with a QueueCallerLeave, which the
    engine books as an "other exit" and emits neither delta for, so the callbacks' own offer never
    lowers the SL that paces them. Every join is an arrival for the offered load.
    """

    window_s: float = PACING_WINDOW_S
    queues: dict[QueueKey, QueuePacing] = field(default_factory=dict)

    def queue(self, key: QueueKey) -> QueuePacing:
        pacing = self.queues.get(key)
        if pacing is None:
            pacing = QueuePacing(RollingServiceLevel(window_s=self.window_s), RollingLoad(self.window_s))
            self.queues[key] = pacing
        return pacing

    def configure(self, key: QueueKey, service_level_s: float, short_abandon_s: float) -> None:
        """The queue's provisioned thresholds; the calls already in the window are kept."""
        sl = self.queue(key).sl
        sl.service_level_s, sl.short_abandon_s = float(service_level_s), float(short_abandon_s)

    def observe(self, deltas: Iterable[Delta]) -> None:
        for delta in deltas:
            if delta.type not in ("caller.joined", "caller.answered", "caller.abandoned"):
                continue
            key = split_queue(delta.queue)
            if key is None:
                continue
            pacing = self.queue(key)
            if delta.type == "caller.joined":
                pacing.load.arrived(delta.ts)
                pacing.hour_load.arrived(delta.ts)
            elif delta.type == "caller.answered":
                held = float(delta.data.get("hold_s") or 0)
                pacing.sl.answered(delta.ts, held)
                pacing.abandons.ended(delta.ts, held, abandoned=False)
            else:
                waited = float(delta.data.get("waited_s") or 0)
                pacing.sl.abandoned(delta.ts, waited)
                pacing.abandons.ended(delta.ts, waited, abandoned=True)


def queue_loads(
    state: LiveState,
    keys: Iterable[QueueKey],
    now: float,
    pacing: Pacing | None = None,
    estimators: Mapping[QueueKey, WaitEstimator] | None = None,
) -> dict[QueueKey, QueueLoad]:
    """The load of each queue in ``keys`` (a queue Asterisk does not report has no agents).

    ``pacing``/``estimators``: the rolling SL and load (with the recent AHT); without them the
    fill gate has nothing to go by and reads "unknown"."""
    loads: dict[QueueKey, QueueLoad] = {}
    for key in keys:
        q = state.queues.get(f"{key[0]}-{key[1]}")
        if q is None:
            loads[key] = QueueLoad()
            continue
        rolling = pacing.queues.get(key) if pacing is not None else None
        estimator = estimators.get(key) if estimators is not None else None
        aht = estimator.aht_s if estimator is not None else None
        loads[key] = QueueLoad(
            free_agents=tuple(free_agents(q)),
            live_waiting=tuple(sorted(c.joined_at for c in q.callers.values())),
            recent_sl_pct=rolling.sl.pct(now) if rolling is not None else None,
            idle_since=idle_since(q),
            recent_load=rolling.load.share(now, aht, staffed_agents(q)) if rolling is not None else None,
        )
    return loads


def expected_wait_now(
    state: LiveState,
    key: QueueKey,
    estimator: WaitEstimator,
    callbacks: Iterable[Callback],
    abandon_rate: float = 0.0,
    now: float | None = None,
) -> float | None:
    """Expected wait of a caller joining ``key`` now (the offer's measure), see
    :func:`forecast_now`."""
    forecast = forecast_now(state, key, estimator, callbacks, abandon_rate, now)
    return None if forecast is None else forecast.mean_s


def forecast_now(
    state: LiveState,
    key: QueueKey,
    estimator: WaitEstimator,
    callbacks: Iterable[Callback],
    abandon_rate: float = 0.0,
    now: float | None = None,
) -> WaitForecast | None:
    """The wait of a caller joining ``key`` now (what they are told: ``announce.spoken_s`` of it):
    behind every live caller and every callback that holds a place in line (fill-tier callbacks
    stand behind them, so they do not count); the line also moves as live callers ahead hang up
    (``abandon_rate``), the callbacks among them do not (see announce.forecast_wait)."""
    q = state.queues.get(f"{key[0]}-{key[1]}")
    if q is None:
        return None
    now = state.now if now is None else now
    in_line = callbacks_in_line((c for c in callbacks if (c.tenant, c.queue) == key), now)
    free = len(free_agents(q))
    soon = wrapping_up(q, now)
    return forecast_wait(
        len(q.callers) + in_line + 1,
        staffed_agents(q),
        estimator.aht_s,
        abandon_rate,
        free,
        soon,
        in_line,
    )


def callbacks_in_line(callbacks: Iterable[Callback], now: float) -> int:
    """Callbacks that hold a place in line ahead of a caller joining now: waiting, in line order
    (tier 0), and not held back until later (a retry's back-off, a later slot the caller chose,
    the next opening: counting those made the announced wait too long, see the bench). Pass one
    queue's callbacks."""
    return sum(1 for c in callbacks if c.status in WAITING and c.tier == 0 and c.not_before <= now)


def line_ahead(
    q: QueueState | None,
    waiting: Iterable[Callback],
    aht_s: float | None,
    *,
    place_at: float | None = None,
    tier: int = 0,
    fill_rate: float | None = None,
) -> LineAhead:
    """What is ahead of a callback booked now in queue ``q`` (see :func:`count_ahead`)."""
    if q is None:
        return count_ahead((), 0, waiting, aht_s, place_at=place_at, tier=tier, fill_rate=fill_rate)
    joined = [c.joined_at for c in q.callers.values()]
    staffed = staffed_agents(q)
    return count_ahead(joined, staffed, waiting, aht_s, place_at=place_at, tier=tier, fill_rate=fill_rate)


def count_ahead(
    live_joined_at: Iterable[float],
    staffed: int,
    waiting: Iterable[Callback],
    aht_s: float | None,
    *,
    place_at: float | None = None,
    tier: int = 0,
    fill_rate: float | None = None,
) -> LineAhead:
    """Live callers and in-line callbacks that took their place before ``place_at`` (None:
    everyone, the callback goes to the back), and, for a fill callback (``tier`` > 0), the fill
    callbacks already waiting. ``waiting``: the queue's waiting callbacks."""
    places = sum(1 for t in live_joined_at if place_at is None or t < place_at)
    fill = 0
    for callback in waiting:
        if callback.tier == 0:
            places += place_at is None or callback.place_at < place_at
        else:
            fill += 1
    fill_ahead = fill if tier > 0 else 0
    return LineAhead(places=places, fill=fill_ahead, staffed=staffed, aht_s=aht_s, fill_rate=fill_rate)
