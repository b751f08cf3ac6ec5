"""The live queue state and its one pure transition, ``apply(state, event) -> list[Delta]``.

No I/O, no clock: time comes in the event (``Tick`` carries it when nothing else happens), so a
recorded transcript replays to the same state on any machine. One asyncio task owns a
``LiveState`` and feeds it events in arrival order; nothing else mutates it, so nothing locks.

Asterisk orders a queue call's events like this (see the fixtures):
  answered:  QueueCallerJoin, AgentCalled, QueueCallerLeave, AgentConnect, AgentComplete
  abandoned: QueueCallerJoin, AgentCalled, QueueCallerAbandon, QueueCallerLeave
Leave comes *before* Connect, so a Leave is booked as an "other exit" and converted to answered
when the Connect follows. Every handler is idempotent per caller (``QueueState.outcomes``), so a
replay of already-applied events after a resync never double-counts.

The engine's view of a queue is Asterisk's: a member removed from a queue (QueueRemove, or gone
from a QueueStatus listing) leaves the live member list. The delta that says so carries the
member's last view, day figures included, for the history writer; late events of that call
(AgentComplete after a QueueRemove mid-call) still count in the queue but do not bring the
member back (``QueueState.removed_members``).

Delta vocabulary (``Delta.type``; ``data`` is always a full view of the changed entity):

  ``queue.stats``       counters and KPIs (``stats_view``)
  ``queue.resynced``    the whole queue (``queue_view``) after a QueueStatus resync
  ``caller.joined``     a waiting caller (``caller_view``)
  ``caller.left``       ``{"uniqueid"}``: no longer waiting (answered, abandoned, exited, vanished)
  ``caller.abandoned``  the abandon record (``abandoned_view``)
  ``caller.answered``   who answered whom and the wait; today's abandoned records of the same
                        number get ``reached_at`` (readers mark theirs from this delta)
  ``caller.completed``  a handled call ended: talk and wrap-up (``AgentComplete``), for history
  ``caller.ring_no_answer``  an agent let a caller's ring time out (``AgentRingNoAnswer``)
  ``agent.added`` ``agent.paused`` ``agent.unpaused`` ``agent.state``
                        a member (``member_view``), upserted by readers
  ``agent.removed``     the member's last view (state ``logged_out``): readers drop the member
  ``queue.removed``     ``{"reason", "stats"}``: the queue is gone from Asterisk (absent from a
                        complete QueueStatus, e.g. after a queues.conf reload) or its tenant was
                        deleted; readers drop it. Its members' ``agent.removed`` come first.
  ``tenant.removed``    ``{}`` (queue ``""``): the tenant was deleted; after its queues' removals.
                        Readers empty the board; the bus publisher starts the tenant afresh.

A removed queue is remembered (``LiveState.removed_queues``): late events of calls still in it
(Asterisk lets a dead queue's callers finish) are ignored, and only a sign that the queue exists
again (a caller joining, a member added, a QueueStatus listing it) brings it back, empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from .events import (
    DEVICE_BUSY,
    DEVICE_INUSE,
    DEVICE_INVALID,
    DEVICE_ONHOLD,
    DEVICE_RINGING,
    DEVICE_RINGINUSE,
    DEVICE_UNAVAILABLE,
    AgentCalled,
    AgentCompleted,
    AgentConnected,
    AgentDumped,
    AgentRingNoAnswer,
    CallerAbandoned,
    CallerJoined,
    CallerLeft,
    ChannelHungUp,
    Event,
    MemberChange,
    MemberChanged,
    MemberInfo,
    StatusSnapshot,
    TenantRemoved,
    Tick,
)
from .kpi import Counters, KpiMemo, counters_and_kpis
from .tenants import tenant_of

DEFAULT_SERVICE_LEVEL_S = 30
DEFAULT_SHORT_ABANDON_S = 5
DEFAULT_TIMEZONE = "Europe/Amsterdam"

# Agent states (DESIGN.md).
LOGGED_OUT = "logged_out"
AVAILABLE = "available"
RINGING = "ringing"
ON_CALL = "on_call"
WRAPUP = "wrapup"
PAUSED = "paused"
UNAVAILABLE = "unavailable"
AGENT_STATES = (AVAILABLE, RINGING, ON_CALL, WRAPUP, PAUSED, UNAVAILABLE, LOGGED_OUT)

REMOVED_QUEUES_MAX = 10_000  # remembered removed queue names (oldest forgotten first)

# What became of a caller, per queue and day.
WAITING = "waiting"
ANSWERED = "answered"
COMPLETED = "completed"
ABANDONED = "abandoned"
EXITED = "exited"  # left unanswered without hanging up (timeout, key, callback booked)
VANISHED = "vanished"  # gone from QueueStatus after a disconnect; fate unknown

_BUSY_DEVICE = frozenset({DEVICE_INUSE, DEVICE_BUSY, DEVICE_RINGINUSE, DEVICE_ONHOLD})
_DEAD_DEVICE = frozenset({DEVICE_INVALID, DEVICE_UNAVAILABLE})


@dataclass(slots=True, frozen=True)
class QueueSettings:
    """Per-queue KPI settings. ``None`` means: take Asterisk's own value for the queue."""

    service_level_s: int | None = None
    short_abandon_s: int = DEFAULT_SHORT_ABANDON_S
    wrapup_s: int | None = None
    timezone: str = DEFAULT_TIMEZONE


@dataclass(slots=True)
class EngineSettings:
    default: QueueSettings = field(default_factory=QueueSettings)
    queues: dict[str, QueueSettings] = field(default_factory=dict)
    abandoned_list_max: int = 500

    def for_queue(self, name: str) -> QueueSettings:
        return self.queues.get(name, self.default)


@dataclass(slots=True)
class Caller:
    uniqueid: str
    channel: str
    number: str
    name: str
    joined_at: float
    position: int


@dataclass(slots=True)
class AbandonedCaller:
    uniqueid: str
    number: str
    name: str
    waited_s: int
    at: float
    position: int
    # Answered later (the same number, in this queue, today): nobody needs to call them back.
    reached_at: float | None = None


@dataclass(slots=True)
class Member:
    interface: str
    name: str
    state_interface: str = ""
    membership: str = "static"
    penalty: int = 0
    status: int = 0
    in_call: bool = False
    paused: bool = False
    paused_reason: str = ""
    paused_since: float = 0.0
    ringinuse: bool = False
    wrapup_s: int = 0
    logged_in: bool = True  # False only in an ``agent.removed`` view: a removed member leaves the list
    added_at: float = 0.0
    ringing_for: str | None = None
    ring_channel: str = ""
    on_call_with: str | None = None
    wrapup_until: float = 0.0
    state: str = AVAILABLE
    state_since: float = 0.0
    calls_today: int = 0
    ring_no_answer_today: int = 0


@dataclass(slots=True)
class QueueState:
    name: str
    tenant: str
    settings: QueueSettings
    day: str
    day_ends_at: float
    strategy: str = ""
    asterisk_service_level_s: int = 0
    seen_at: float = 0.0  # the newest event about this queue: a resync removes only older queues
    callers: dict[str, Caller] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    abandoned: list[AbandonedCaller] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    seen_ring_no_answer: set[tuple[str, str, float]] = field(default_factory=set)
    # Interfaces removed from the queue (until added again): events of a call the member was
    # still on when removed must not bring it back as a ghost member.
    removed_members: set[str] = field(default_factory=set)
    kpi_memo: KpiMemo = field(default_factory=KpiMemo, repr=False, compare=False)

    @property
    def service_level_s(self) -> int:
        if self.settings.service_level_s is not None:
            return self.settings.service_level_s
        return self.asterisk_service_level_s or DEFAULT_SERVICE_LEVEL_S


@dataclass(slots=True)
class LiveState:
    settings: EngineSettings = field(default_factory=EngineSettings)
    queues: dict[str, QueueState] = field(default_factory=dict)
    now: float = 0.0
    # Indexes for Hangup, which names a channel but no queue.
    waiting_index: dict[str, str] = field(default_factory=dict)  # caller uniqueid -> queue
    ring_channels: dict[str, tuple[str, str]] = field(default_factory=dict)  # channel -> (queue, iface)
    removed_queues: dict[str, float] = field(default_factory=dict)  # name -> when removed
    events_applied: int = 0


@dataclass(slots=True, frozen=True)
class Delta:
    """One change, ready for the bus. ``data`` is always a full view of the changed entity, so a
    reader rebuilds the state by upserting (see ``views.apply_delta``)."""

    type: str
    tenant: str
    queue: str
    ts: float
    data: dict[str, Any]


# --------------------------------------------------------------------------- views


def caller_view(c: Caller) -> dict[str, Any]:
    return {
        "uniqueid": c.uniqueid,
        "number": c.number,
        "name": c.name,
        "position": c.position,
        "joined_at": c.joined_at,
    }


def member_view(m: Member) -> dict[str, Any]:
    return {
        "interface": m.interface,
        "name": m.name,
        "state": m.state,
        "since": m.state_since,
        "paused": m.paused,
        "paused_reason": m.paused_reason,
        "penalty": m.penalty,
        "membership": m.membership,
        "calls_today": m.calls_today,
        "ring_no_answer_today": m.ring_no_answer_today,
    }


def abandoned_view(a: AbandonedCaller) -> dict[str, Any]:
    return {
        "uniqueid": a.uniqueid,
        "number": a.number,
        "name": a.name,
        "waited_s": a.waited_s,
        "at": a.at,
        "position": a.position,
        **({} if a.reached_at is None else {"reached_at": a.reached_at}),
    }


def longest_waiting_s(q: QueueState, now: float) -> float | None:
    """Live "longest wait": now - earliest join among callers still waiting."""
    earliest = min((c.joined_at for c in q.callers.values()), default=None)
    return round(max(0.0, now - earliest), 1) if earliest is not None else None


def stats_view(q: QueueState, now: float) -> dict[str, Any]:
    """Counters and KPIs. Nothing in here depends on ``now``: the live longest wait ticks on the
    reader's clock, from ``waiting[].joined_at``."""
    view = counters_and_kpis(q.counters, q.kpi_memo)
    view["waiting"] = len(q.callers)
    view["service_level_s"] = q.service_level_s
    view["short_abandon_s"] = q.settings.short_abandon_s
    view["day"] = q.day
    return view


def queue_view(q: QueueState, now: float) -> dict[str, Any]:
    return {
        "queue": q.name,
        "tenant": q.tenant,
        "strategy": q.strategy,
        "stats": stats_view(q, now),
        "waiting": [caller_view(c) for c in q.callers.values()],
        "members": [member_view(m) for m in q.members.values()],
        "abandoned_callers": [abandoned_view(a) for a in reversed(q.abandoned)],
    }


# --------------------------------------------------------------------------- helpers


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def day_bounds(ts: float, timezone: str) -> tuple[str, float]:
    """The local calendar day of ``ts`` and the epoch second at which it ends."""
    tz = _zone(timezone)
    local = datetime.fromtimestamp(ts, tz)
    next_midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return local.date().isoformat(), next_midnight.timestamp()


def _new_queue(state: LiveState, name: str, ts: float) -> QueueState:
    settings = state.settings.for_queue(name)
    day, ends = day_bounds(ts, settings.timezone)
    q = QueueState(name=name, tenant=tenant_of(name), settings=settings, day=day, day_ends_at=ends,
                   seen_at=ts)  # fmt: skip
    state.queues[name] = q
    state.removed_queues.pop(name, None)
    return q


def _queue(state: LiveState, name: str, ts: float, out: list[Delta]) -> QueueState:
    q = state.queues.get(name)
    if q is None:
        q = _new_queue(state, name, ts)
        _stats(q, ts, out)  # readers learn the queue exists even if nothing else changes
        return q
    if ts > q.seen_at:
        q.seen_at = ts
    if ts >= q.day_ends_at:
        _roll_day(q, ts, out)
    return q


def _remove_queue(state: LiveState, q: QueueState, ts: float, reason: str, out: list[Delta]) -> None:
    """The queue is gone from Asterisk: its callers' fate is unknown (they count as other exits,
    as after a disconnect), its members leave (each with its ``agent.removed``), then the queue."""
    for uid in list(q.callers):
        _vanish(state, q, uid, ts, out)
    for interface in list(q.members):
        _remove_member(state, q, interface, ts, out)
    del state.queues[q.name]
    state.removed_queues[q.name] = ts
    while len(state.removed_queues) > REMOVED_QUEUES_MAX:
        del state.removed_queues[next(iter(state.removed_queues))]
    out.append(Delta("queue.removed", q.tenant, q.name, ts, {"reason": reason, "stats": stats_view(q, ts)}))


def _of_a_removed_queue(state: LiveState, event: Event) -> bool:
    """An event about a removed queue that does not show the queue exists again: ignore it."""
    name = getattr(event, "queue", None)
    if name is None or name not in state.removed_queues or name in state.queues:
        return False
    if isinstance(event, CallerJoined):
        return False  # a dead queue takes no new callers: this one is new
    return not (isinstance(event, MemberChanged) and event.change is MemberChange.ADDED)


def _roll_day(q: QueueState, ts: float, out: list[Delta]) -> None:
    """Midnight in the tenant's timezone: today's counters restart. Callers still waiting are
    carried over as offered today, so the counters stay consistent."""
    q.day, q.day_ends_at = day_bounds(ts, q.settings.timezone)
    q.counters = Counters(offered=len(q.callers))
    q.outcomes = dict.fromkeys(q.callers, WAITING)
    q.abandoned = []
    q.completed = set()
    q.seen_ring_no_answer = set()
    for m in q.members.values():
        m.calls_today = 0
        m.ring_no_answer_today = 0
    out.append(Delta("queue.stats", q.tenant, q.name, ts, stats_view(q, ts)))


def _derive_state(m: Member, now: float) -> str:
    if not m.logged_in:
        return LOGGED_OUT
    if m.status in _DEAD_DEVICE:
        return UNAVAILABLE
    if m.on_call_with is not None or m.status in _BUSY_DEVICE:
        return ON_CALL
    if m.ringing_for is not None or m.status == DEVICE_RINGING:
        return RINGING
    if m.paused:
        return PAUSED
    if m.wrapup_until > now:
        return WRAPUP
    return AVAILABLE


def _refresh(q: QueueState, m: Member, ts: float, out: list[Delta], force: str | None = None) -> None:
    """Re-derive the member's state. Emit a delta if the state changed, or always when the caller
    knows something else in the member's view changed (``force`` names the delta type)."""
    new = _derive_state(m, ts)
    if new != m.state:
        m.state = new
        m.state_since = m.paused_since if new == PAUSED and m.paused_since else ts
    elif force is None:
        return
    out.append(Delta(force or "agent.state", q.tenant, q.name, ts, member_view(m)))


def _member(q: QueueState, interface: str, name: str, ts: float) -> Member:
    m = q.members.get(interface)
    if m is None:
        m = Member(interface=interface, name=name or interface, added_at=ts, state_since=ts)
        q.members[interface] = m
    return m


def _listed_member(q: QueueState, interface: str, name: str, ts: float) -> Member | None:
    """The member an agent event names, created on first sight (a bridge that started mid-call
    learns members from their calls), unless it was removed from the queue: Asterisk finishes a
    call or a ring that was in progress when QueueRemove came, and must not resurrect it."""
    if interface in q.removed_members:
        return None
    return _member(q, interface, name, ts)


def _remove_member(state: LiveState, q: QueueState, interface: str, ts: float, out: list[Delta]) -> None:
    """The member leaves the queue's live list; its last view (day figures included) goes out as
    ``agent.removed`` for the readers and the history writer."""
    q.removed_members.add(interface)
    m = q.members.pop(interface, None)
    if m is None:
        return
    if m.ring_channel:
        state.ring_channels.pop(m.ring_channel, None)
    m.logged_in = False
    m.ringing_for = None
    m.on_call_with = None
    m.state, m.state_since = LOGGED_OUT, ts
    out.append(Delta("agent.removed", q.tenant, q.name, ts, member_view(m)))


def _update_member(m: Member, info: MemberInfo, ts: float) -> None:
    if info.name:
        m.name = info.name
    m.state_interface = info.state_interface
    m.membership = info.membership
    m.penalty = info.penalty
    m.status = info.status
    m.in_call = info.in_call
    m.ringinuse = info.ringinuse
    m.wrapup_s = info.wrapup_s
    if info.paused and not m.paused:
        m.paused_since = float(info.last_pause) if info.last_pause else ts
    elif info.paused and info.last_pause:
        m.paused_since = float(info.last_pause)
    m.paused = info.paused
    m.paused_reason = info.paused_reason if info.paused else ""


def _stats(q: QueueState, ts: float, out: list[Delta]) -> None:
    out.append(Delta("queue.stats", q.tenant, q.name, ts, stats_view(q, ts)))


def _stale(q: QueueState, uniqueid: str, ts: float) -> bool:
    """An event older than the caller's join is a replay from before it: never count it."""
    caller = q.callers.get(uniqueid)
    return caller is not None and ts < caller.joined_at


def _renumber(q: QueueState) -> None:
    for position, caller in enumerate(q.callers.values(), 1):
        caller.position = position


def _remove_caller(state: LiveState, q: QueueState, uniqueid: str, ts: float, out: list[Delta]) -> None:
    caller = q.callers.pop(uniqueid, None)
    if caller is None:
        return
    state.waiting_index.pop(uniqueid, None)
    if caller.position <= len(q.callers):
        _renumber(q)
    out.append(Delta("caller.left", q.tenant, q.name, ts, {"uniqueid": uniqueid}))


def _stop_ringing(q: QueueState, uniqueid: str, ts: float, out: list[Delta], keep: str = "") -> None:
    for m in q.members.values():
        if m.ringing_for == uniqueid and m.interface != keep:
            m.ringing_for = None
            _refresh(q, m, ts, out)


# --------------------------------------------------------------------------- handlers


def _on_join(state: LiveState, e: CallerJoined) -> list[Delta]:
    out: list[Delta] = []
    q = _queue(state, e.queue, e.ts, out)
    previous = q.outcomes.get(e.uniqueid)
    rejoined = previous == EXITED
    if previous is not None and not rejoined:
        return out  # already seen today: a duplicate
    caller = Caller(e.uniqueid, e.channel, e.number, e.name, e.ts, e.position)
    if e.position > len(q.callers):
        q.callers[e.uniqueid] = caller
        caller.position = len(q.callers)
    else:  # a higher-priority caller jumped the line
        ordered = list(q.callers.values())
        ordered.insert(max(0, e.position - 1), caller)
        q.callers = {c.uniqueid: c for c in ordered}
        _renumber(q)
    q.outcomes[e.uniqueid] = WAITING
    state.waiting_index[e.uniqueid] = q.name
    if rejoined:
        # Back in line on the same channel (the dialplan re-enters the queue after an exit key,
        # e.g. a callback offer that had closed): still one offered call, no longer an exit.
        q.counters.other_exits -= 1
    else:
        q.counters.offered += 1
    out.append(Delta("caller.joined", q.tenant, q.name, e.ts, caller_view(caller)))
    _stats(q, e.ts, out)
    return out


def _on_abandon(state: LiveState, e: CallerAbandoned) -> list[Delta]:
    out: list[Delta] = []
    q = _queue(state, e.queue, e.ts, out)
    previous = q.outcomes.get(e.uniqueid)
    if previous in (ANSWERED, COMPLETED, ABANDONED) or _stale(q, e.uniqueid, e.ts):
        return out
    c = q.counters
    if previous is None:
        c.offered += 1  # first sight of a caller who joined before we were watching
    elif previous in (EXITED, VANISHED):
        c.other_exits -= 1
    q.outcomes[e.uniqueid] = ABANDONED
    c.abandoned += 1
    if e.hold_s < q.settings.short_abandon_s:
        c.short_abandoned += 1
    c.longest_wait_s = max(c.longest_wait_s, e.hold_s)
    known = q.callers.get(e.uniqueid)
    record = AbandonedCaller(
        e.uniqueid,
        e.number or (known.number if known else ""),
        e.name or (known.name if known else ""),
        e.hold_s,
        e.ts,
        e.original_position,
    )
    q.abandoned.append(record)
    if len(q.abandoned) > state.settings.abandoned_list_max:
        del q.abandoned[0]
    _remove_caller(state, q, e.uniqueid, e.ts, out)
    _stop_ringing(q, e.uniqueid, e.ts, out)
    out.append(Delta("caller.abandoned", q.tenant, q.name, e.ts, abandoned_view(record)))
    _stats(q, e.ts, out)
    return out


def _on_leave(state: LiveState, e: CallerLeft) -> list[Delta]:
    out: list[Delta] = []
    q = _queue(state, e.queue, e.ts, out)
    if _stale(q, e.uniqueid, e.ts):
        return out
    previous = q.outcomes.get(e.uniqueid)
    _remove_caller(state, q, e.uniqueid, e.ts, out)
    # Ringing is not stopped here: Asterisk sends Leave just before AgentConnect, and stopping
    # would flash the answering agent "available". Other ringing legs end with a Hangup.
    if previous == WAITING:
        # Provisional: an AgentConnect right after this converts it to answered.
        q.outcomes[e.uniqueid] = EXITED
        q.counters.other_exits += 1
        _stats(q, e.ts, out)
    return out


def _on_connect(state: LiveState, e: AgentConnected) -> list[Delta]:
    out: list[Delta] = []
    q = _queue(state, e.queue, e.ts, out)
    previous = q.outcomes.get(e.uniqueid)
    if previous in (ANSWERED, COMPLETED, ABANDONED) or _stale(q, e.uniqueid, e.ts):
        return out
    c = q.counters
    if previous is None:
        c.offered += 1
    elif previous in (EXITED, VANISHED):
        c.other_exits -= 1
    q.outcomes[e.uniqueid] = ANSWERED
    _remove_caller(state, q, e.uniqueid, e.ts, out)
    c.answered += 1
    c.answered_wait_s += e.hold_s
    if e.hold_s <= q.service_level_s:
        c.answered_within_sl += 1
    c.longest_wait_s = max(c.longest_wait_s, e.hold_s)
    m = _listed_member(q, e.interface, e.member_name, e.ts)
    if m is not None:
        m.ringing_for = None
        m.on_call_with = e.uniqueid
        # Asterisk's InCall flag (QueueStatus) turns on as the call is bridged, right before
        # AgentConnect, with no QueueMemberStatus of its own: the agent's device went "in use" a
        # moment earlier, with InCall still 0 (seen on Asterisk 22.10.1 with an auto-answering phone).
        m.in_call = True
        m.calls_today += 1
        _refresh(q, m, e.ts, out, force="agent.state")  # calls_today changed even if the state did not
    _stop_ringing(q, e.uniqueid, e.ts, out, keep=e.interface)
    # The same rule as readers apply on caller.answered (board.apply_delta), so boards agree.
    if any(ch.isdigit() for ch in e.number):
        for a in q.abandoned:
            if a.number == e.number and a.reached_at is None and a.at <= e.ts:
                a.reached_at = e.ts
    out.append(
        Delta(
            "caller.answered",
            q.tenant,
            q.name,
            e.ts,
            {
                "uniqueid": e.uniqueid,
                "number": e.number,
                "name": e.name,
                "interface": e.interface,
                "member_name": m.name if m is not None else e.member_name,
                "hold_s": e.hold_s,
            },
        )
    )
    _stats(q, e.ts, out)
    return out


def _on_complete(state: LiveState, e: AgentCompleted) -> list[Delta]:
    out: list[Delta] = []
    q = _queue(state, e.queue, e.ts, out)
    if e.uniqueid in q.completed:
        return out
    q.completed.add(e.uniqueid)
    previous = q.outcomes.get(e.uniqueid)
    if previous in (ANSWERED, None):
        # None: a call answered before we were watching; it is handled, never "offered" now.
        q.outcomes[e.uniqueid] = COMPLETED
    m = _listed_member(q, e.interface, e.member_name, e.ts)
    member_wrapup = m.wrapup_s if m is not None else 0
    wrapup = q.settings.wrapup_s if q.settings.wrapup_s is not None else member_wrapup
    c = q.counters
    c.handled += 1
    c.talk_s += e.talk_s
    c.wrapup_s += wrapup
    out.append(Delta("caller.completed", q.tenant, q.name, e.ts, {
        "uniqueid": e.uniqueid, "interface": e.interface,
        "member_name": m.name if m is not None else e.member_name,
        "hold_s": e.hold_s, "talk_s": e.talk_s, "wrapup_s": wrapup, "reason": e.reason,
    }))  # fmt: skip
    if m is not None:
        if m.on_call_with in (e.uniqueid, None):
            m.on_call_with = None
            m.in_call = False  # app_queue clears it as it counts the completed call (update_queue)
        if wrapup > 0:
            m.wrapup_until = e.ts + wrapup
        _refresh(q, m, e.ts, out, force="agent.state")  # wrap-up may start; the call count moved on
    _stats(q, e.ts, out)
    return out


def _on_called(state: LiveState, e: AgentCalled) -> list[Delta]:
    out: list[Delta] = []
    q = _queue(state, e.queue, e.ts, out)
    if q.outcomes.get(e.uniqueid, WAITING) != WAITING:
        return out  # a replayed ring for a caller whose call is already decided
    m = _listed_member(q, e.interface, e.member_name, e.ts)
    if m is None:
        return out
    m.ringing_for = e.uniqueid
    if m.ring_channel:
        state.ring_channels.pop(m.ring_channel, None)
    m.ring_channel = e.dest_channel
    if e.dest_channel:
        state.ring_channels[e.dest_channel] = (q.name, m.interface)
    _refresh(q, m, e.ts, out)
    return out


def _on_ring_no_answer(state: LiveState, e: AgentRingNoAnswer) -> list[Delta]:
    out: list[Delta] = []
    q = _queue(state, e.queue, e.ts, out)
    key = (e.uniqueid, e.interface, e.ts)
    if key in q.seen_ring_no_answer:
        return out
    q.seen_ring_no_answer.add(key)
    q.counters.ring_no_answer += 1
    m = _listed_member(q, e.interface, e.member_name, e.ts)
    out.append(Delta("caller.ring_no_answer", q.tenant, q.name, e.ts, {
        "uniqueid": e.uniqueid, "interface": e.interface,
        "member_name": m.name if m is not None else e.member_name, "ring_ms": e.ring_ms,
    }))  # fmt: skip
    if m is not None:
        m.ring_no_answer_today += 1
        if m.ringing_for == e.uniqueid:
            m.ringing_for = None
        _refresh(q, m, e.ts, out, force="agent.state")
    _stats(q, e.ts, out)
    return out


def _on_dump(state: LiveState, e: AgentDumped) -> list[Delta]:
    out: list[Delta] = []
    q = _queue(state, e.queue, e.ts, out)
    m = q.members.get(e.interface)
    if m is not None and m.ringing_for == e.uniqueid:
        m.ringing_for = None
        _refresh(q, m, e.ts, out)
    return out


def _on_member(state: LiveState, e: MemberChanged) -> list[Delta]:
    out: list[Delta] = []
    q = _queue(state, e.queue, e.ts, out)
    info = e.member
    if e.change is MemberChange.REMOVED:
        m = q.members.get(info.interface)
        if m is not None:
            _update_member(m, info, e.ts)  # its figures as Asterisk last knew them
        _remove_member(state, q, info.interface, e.ts, out)
        return out
    if e.change is MemberChange.ADDED:
        q.removed_members.discard(info.interface)
    elif info.interface in q.removed_members:
        return out  # a late status or pause of a member no longer in the queue
    known = info.interface in q.members
    m = _member(q, info.interface, info.name, e.ts)
    was_paused = m.paused
    _update_member(m, info, e.ts)
    m.logged_in = True
    if e.change is MemberChange.ADDED or not known:
        m.added_at = e.ts
        kind = "agent.added"
    elif m.paused != was_paused:
        kind = "agent.paused" if m.paused else "agent.unpaused"
    else:
        kind = "agent.state"  # penalty, ringinuse, device status: always worth a delta
    _refresh(q, m, e.ts, out, force=kind)
    return out


def _on_hangup(state: LiveState, e: ChannelHungUp) -> list[Delta]:
    out: list[Delta] = []
    ring = state.ring_channels.pop(e.channel, None)
    if ring is not None:
        q = state.queues.get(ring[0])
        m = q.members.get(ring[1]) if q else None
        if q is not None and m is not None and m.ring_channel == e.channel:
            m.ring_channel = ""
            if m.ringing_for is not None:
                m.ringing_for = None
                _refresh(q, m, e.ts, out)
    queue_name = state.waiting_index.get(e.uniqueid)
    if queue_name is not None:
        # The caller's channel died while still listed as waiting: a lost Leave. Book it as an
        # unknown exit rather than leave a ghost in the waiting list for the rest of the day.
        q = state.queues[queue_name]
        if q.outcomes.get(e.uniqueid) == WAITING and not _stale(q, e.uniqueid, e.ts):
            q.outcomes[e.uniqueid] = VANISHED
            q.counters.other_exits += 1
            _remove_caller(state, q, e.uniqueid, e.ts, out)
            _stop_ringing(q, e.uniqueid, e.ts, out)
            _stats(q, e.ts, out)
        state.waiting_index.pop(e.uniqueid, None)
    return out


def _vanish(state: LiveState, q: QueueState, uniqueid: str, ts: float, out: list[Delta]) -> None:
    q.callers.pop(uniqueid, None)
    state.waiting_index.pop(uniqueid, None)
    if q.outcomes.get(uniqueid) == WAITING:
        q.outcomes[uniqueid] = VANISHED
        q.counters.other_exits += 1
    _stop_ringing(q, uniqueid, ts, [])


def _on_snapshot(state: LiveState, e: StatusSnapshot) -> list[Delta]:
    """Reconcile with Asterisk's own QueueStatus after a (re)connect.

    Waiting callers keep their real waits (``Wait``); members take status, paused and reason;
    callers gone from the listing are dropped. Anything that appeared after the QueueStatus was
    requested is kept: the listing may simply predate it.
    """
    out: list[Delta] = []
    listed: set[str] = set()
    for info in e.queues:
        ignored: list[Delta] = []
        q = _queue(state, info.queue, e.ts, ignored)  # listed: it exists (again, if it was removed)
        listed.add(q.name)
        q.strategy = info.strategy or q.strategy
        if info.service_level_s:
            q.asterisk_service_level_s = info.service_level_s
        present = set()
        for mi in info.members:
            q.removed_members.discard(mi.interface)
            m = _member(q, mi.interface, mi.name, e.ts)
            _update_member(m, mi, e.ts)
            m.logged_in = True
            if not mi.in_call and mi.status not in _BUSY_DEVICE:
                m.on_call_with = None  # the call ended while we were away
            present.add(mi.interface)
        # Asterisk no longer lists them: removed while we were away (or the QueueRemoved event
        # was lost). Members added after the listing was requested may simply postdate it.
        unlisted = [i for i, m in q.members.items() if i not in present and m.added_at < e.requested_ts]
        for interface in unlisted:
            _remove_member(state, q, interface, e.ts, out)
        entries = {en.uniqueid: en for en in info.entries}
        for uid, caller in list(q.callers.items()):
            if uid not in entries and caller.joined_at < e.requested_ts:
                _vanish(state, q, uid, e.ts, out)
        for en in info.entries:
            if en.uniqueid in q.callers:
                continue
            if q.outcomes.get(en.uniqueid, WAITING) != WAITING:
                continue  # its Leave was applied before the listing arrived
            q.callers[en.uniqueid] = Caller(
                en.uniqueid, en.channel, en.number, en.name, e.ts - en.wait_s, en.position
            )
            q.outcomes[en.uniqueid] = WAITING
            state.waiting_index[en.uniqueid] = q.name
            q.counters.offered += 1
        rank = {uid: en.position for uid, en in entries.items()}
        ordered = sorted(q.callers.values(), key=lambda c: (rank.get(c.uniqueid, 1 << 30), c.joined_at))
        q.callers = {c.uniqueid: c for c in ordered}
        _renumber(q)
    if e.complete:
        # Asterisk lists every queue it has: one it does not list was deleted (a queues.conf
        # reload that dropped it, a tenant removed), unless we heard of it after asking.
        deleted = [q for q in state.queues.values() if q.name not in listed and q.seen_at < e.requested_ts]
        for q in deleted:
            _remove_queue(state, q, e.ts, "absent from QueueStatus", out)
    for q in state.queues.values():
        if q.name in listed or e.complete:
            for m in q.members.values():
                new = _derive_state(m, e.ts)
                if new != m.state:
                    m.state = new
                    m.state_since = m.paused_since if new == PAUSED and m.paused_since else e.ts
            out.append(Delta("queue.resynced", q.tenant, q.name, e.ts, queue_view(q, e.ts)))
    return out


def _on_tenant_removed(state: LiveState, e: TenantRemoved) -> list[Delta]:
    out: list[Delta] = []
    for q in [q for q in state.queues.values() if q.tenant == e.tenant]:
        _remove_queue(state, q, e.ts, "tenant deleted", out)
    # Always, even for a tenant with no queues here: the bus publisher waits for it before it
    # starts the tenant's new stream, so nothing the engine knew of the old tenant gets in.
    out.append(Delta("tenant.removed", e.tenant, "", e.ts, {}))
    return out


def _on_tick(state: LiveState, e: Tick) -> list[Delta]:
    out: list[Delta] = []
    for q in state.queues.values():
        if e.ts >= q.day_ends_at:
            _roll_day(q, e.ts, out)
        for m in q.members.values():
            if m.state == WRAPUP and m.wrapup_until <= e.ts:
                _refresh(q, m, e.ts, out)
    return out


_HANDLERS: dict[type, Callable[[LiveState, Any], list[Delta]]] = {
    CallerJoined: _on_join,
    CallerLeft: _on_leave,
    CallerAbandoned: _on_abandon,
    AgentCalled: _on_called,
    AgentConnected: _on_connect,
    AgentCompleted: _on_complete,
    AgentRingNoAnswer: _on_ring_no_answer,
    AgentDumped: _on_dump,
    MemberChanged: _on_member,
    ChannelHungUp: _on_hangup,
    StatusSnapshot: _on_snapshot,
    Tick: _on_tick,
    TenantRemoved: _on_tenant_removed,
}


def apply(state: LiveState, event: Event) -> list[Delta]:
    """Apply one event to the state; return what changed, for the bus."""
    handler = _HANDLERS.get(type(event))
    if handler is None or (state.removed_queues and _of_a_removed_queue(state, event)):
        return []
    if event.ts > state.now:
        state.now = event.ts
    state.events_applied += 1
    return handler(state, event)
