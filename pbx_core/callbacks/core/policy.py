"""Per-queue callback settings and the pure rules that read them.

The offer itself is provisioned per queue (``QueueIn.callback_offer`` and
``callback_offer_after_s``); the scheduling knobs below have defaults here until the schema
grows fields for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .hours import HoursSpec, next_opening
from .promise import PromiseRules


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    hours: HoursSpec | None = None  # None: the queue is always open
    offer: bool = False
    offer_after_s: float = 120.0  # offer when the expected wait exceeds this
    abandoned_callbacks: bool = False  # call back callers who hung up after short_abandon_s
    # Whether those callbacks take their place in line (at the moment they hung up). Off: they
    # are fill work, served only on agents no one in line is waiting for (see queue_order).
    abandoned_in_line: bool = False
    # Pacing of fill callbacks (see fill_allowance): they use spare capacity, never the agents live
    # callers need. At least this many agents stay free after a fill dial...
    fill_reserve_agents: int = 1
    # ... and a fill callback is dialled only while the queue's rolling service level is at least
    # the target plus this margin (or no call ended in the window: the queue is quiet) ...
    sl_target_pct: float = 80.0
    fill_sl_margin_pct: float = 5.0
    # ... or, below it, when an agent has been idle this long (there is room the SL does not show
    # yet); 0 disables that way in ...
    fill_idle_s: float = 0.0
    # ... and at most one fill dial per this many seconds, so a backlog is worked off gradually and
    # the rolling SL can react before the next one.
    fill_spacing_s: float = 0.0
    # ... and only while the recent offered load is at most this share of the staffed agents
    # (estimator.RollingLoad): in overload (the peak) there is no spare capacity to fill.
    fill_max_load: float = 1.0
    short_abandon_s: float = 5.0
    # The expected time when the line says nothing (no handle time or staffed agent known yet), and
    # the due-by of a booking made without the line (max(requested, next opening) + this).
    due_within_s: float = 3600.0
    expire_after_s: float = 8 * 3600.0  # past due-by + this, an open callback is given up
    max_attempts: int = 3
    retry_base_s: float = 300.0
    retry_factor: float = 2.0
    retry_cap_s: float = 1800.0
    dial_timeout_s: float = 120.0  # a "dialling" record with no live channel after this: lost attempt
    promise: PromiseRules = field(default_factory=PromiseRules)  # how windows are promised and kept

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.fill_reserve_agents < 0:
            raise ValueError("fill_reserve_agents must not be negative")
        if not 0.0 <= self.sl_target_pct <= 100.0:
            raise ValueError("sl_target_pct must be between 0 and 100")
        if min(self.fill_idle_s, self.fill_spacing_s) < 0:
            raise ValueError("fill_idle_s and fill_spacing_s must not be negative")
        if min(self.retry_base_s, self.due_within_s, self.dial_timeout_s, self.expire_after_s) < 0:
            raise ValueError("callback durations (retry_base_s, due_within_s, ...) must not be negative")


class _QueueLike(Protocol):
    @property
    def callback_offer(self) -> bool: ...  # pragma: no cover - structural type only
    @property
    def callback_offer_after_s(self) -> int: ...  # pragma: no cover
    @property
    def short_abandon_s(self) -> int: ...  # pragma: no cover


def from_queue(
    queue: _QueueLike, hours: HoursSpec | None = None, abandoned_callbacks: bool = False
) -> QueuePolicy:
    """The policy of a provisioned queue (``pbx_core.provisioning.schemas.QueueIn``)."""
    return QueuePolicy(
        hours=hours,
        offer=queue.callback_offer,
        offer_after_s=float(queue.callback_offer_after_s),
        abandoned_callbacks=abandoned_callbacks,
        short_abandon_s=float(queue.short_abandon_s),
    )


def should_offer(policy: QueuePolicy, expected_wait_s: float | None) -> bool:
    """Offer "press 1 to be called back" when the honest expected wait passes the threshold.
    No estimate (no staffed agents) is not a reason to promise anything."""
    return policy.offer and expected_wait_s is not None and expected_wait_s > policy.offer_after_s


def callback_for_abandon(policy: QueuePolicy, waited_s: float) -> bool:
    """An abandoned caller gets a callback when the queue enables it and they were not a short abandon."""
    return policy.abandoned_callbacks and waited_s >= policy.short_abandon_s


def tier(policy: QueuePolicy, source: str) -> int:
    """0: the callback takes its place in line; 1: fill work behind everyone in line."""
    return 1 if source == "abandoned" and not policy.abandoned_in_line else 0


def fill_allowance(
    policy: QueuePolicy,
    now: float,
    recent_sl_pct: float | None,
    longest_idle_s: float | None = None,
    last_fill_dial: float | None = None,
    recent_load: float | None = None,
) -> int:
    """How many fill callbacks may be dialled now (0 or 1; the line and the reserve still apply).

    Fill work must never starve live callers: it goes out only while the queue's recent service
    level is above its target with margin, or an agent has been idle for ``fill_idle_s``, and no
    faster than one per ``fill_spacing_s``."""
    if last_fill_dial is not None and now - last_fill_dial < policy.fill_spacing_s:
        return 0
    if recent_load is not None and recent_load > policy.fill_max_load:
        return 0
    if recent_sl_pct is None or recent_sl_pct >= policy.sl_target_pct + policy.fill_sl_margin_pct:
        return 1
    idle_ok = policy.fill_idle_s > 0 and longest_idle_s is not None and longest_idle_s >= policy.fill_idle_s
    return 1 if idle_ok else 0


def promised_fill_rate(policy: QueuePolicy, recent_rate: float, recent_load: float | None) -> float:
    """The rate (fill callbacks per second) a fill callback's promise may count on: what went out
    lately, but nothing while the queue is in overload (the pacing lets no fill work out then)."""
    if recent_load is not None and recent_load > policy.fill_max_load:
        return 0.0
    return recent_rate


def backoff_s(policy: QueuePolicy, attempts: int) -> float:
    """Wait before the next attempt after ``attempts`` failed ones: base x factor^(n-1), capped."""
    return min(policy.retry_cap_s, policy.retry_base_s * policy.retry_factor ** max(0, attempts - 1))


def due_by(policy: QueuePolicy, requested_at: float) -> float:
    """The deadline: within ``due_within_s`` of the request, or of the next opening when closed."""
    opens = next_opening(policy.hours, requested_at)
    start = requested_at if opens is None else opens
    return start + policy.due_within_s


# Pacing of fill callbacks (callers who hung up), as measured by `pbx-core bench callbacks`
# before promises (10 agents, 110% load for 3 h then 85%, AHT 240 s, 5 seeds; means; the README
# has today's figures, with promises kept):
#   reserve 1: 78.9% fewer callers lost, live SL 9.1 points lower
#   reserve 2: 75.7% fewer lost, SL 6.9 points lower
#   reserve 3: 65.3% fewer lost, SL 4.6 points lower   <- both targets (>= 50%, <= 5 points)
#   reserve 4: 43.1% fewer lost, SL 2.4 points lower
# so about a third of the staffed agents stays free for live callers, capped at 3 (a larger
# reserve only leaves fill work undone). The SL gate and the idle way in are the bench's too: fill
# while the rolling SL >= target - 15 points, or an agent has idled 60 s.
FILL_RESERVE_SHARE = 1 / 3
FILL_RESERVE_MAX = 3
FILL_SL_MARGIN_PCT = -15.0
FILL_IDLE_S = 60.0


def fill_reserve_agents(staffed: int) -> int:
    """Agents kept free for live callers when dialling fill callbacks: a third, 1 to 3. A queue
    of one agent keeps none: with a reserve of 1 its fill work would never go out (the other
    gates, rolling SL and idle time, still hold it back while live callers need the agent)."""
    if staffed <= 1:
        return 0
    return max(1, min(FILL_RESERVE_MAX, round(staffed * FILL_RESERVE_SHARE)))


@dataclass(frozen=True, slots=True)
class QueueInfo:
    policy: QueuePolicy
    timezone: str  # the tenant's: what "today" means for its callback counts
    # The queue's SL threshold T: the rolling SL that paces fill work counts answers within T.
    # (QueuePolicy has no field for it; the worker's pacing reads it from here.)
    service_level_s: float = 30.0
    members: int = 0  # provisioned members: the fill reserve until the live staffing is known
