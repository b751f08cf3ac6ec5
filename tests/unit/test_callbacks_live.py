"""The live queue state as the callback scheduler's QueueLoad: free agents, the line, and the
pacing inputs of fill callbacks (rolling SL, idle since, recent load), from recorded Asterisk 22
streams (through the sans-IO ingest) and synthesised engine events."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pbx_core.callbacks.core import announce
from pbx_core.callbacks.core.estimator import WaitEstimator
from pbx_core.callbacks.core.live import (
    Pacing,
    callbacks_in_line,
    expected_wait_now,
    forecast_now,
    idle_since,
    queue_loads,
    staffed_agents,
)
from pbx_core.callbacks.core.model import Callback
from pbx_core.callbacks.core.policy import QueuePolicy
from pbx_core.callbacks.core.scheduler import Dial, SchedulerState, decide
from pbx_core.callbacks.settings import fill_reserve_agents
from pbx_core.domain.events import (
    DEVICE_NOT_INUSE,
    AgentConnected,
    CallerAbandoned,
    CallerJoined,
    CallerLeft,
    Event,
    MemberChange,
    MemberChanged,
    MemberInfo,
)
from pbx_core.domain.queue_state import Delta, LiveState, apply
from pbx_core.ingest import Ingest
from tests.conftest import fixture_bytes

T0 = datetime(2030, 1, 7, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam")).timestamp()
Q = "acme-support"
KEY = ("acme", "support")
ANN, BOB, CAT = "Local/201@acme-agents/n", "Local/202@acme-agents/n", "Local/203@acme-agents/n"


def recorded(name: str) -> tuple[LiveState, list[Delta]]:
    ingest = Ingest()
    deltas = ingest.feed(fixture_bytes(name))
    return ingest.state, deltas


def run(*events: Event) -> tuple[LiveState, list[Delta]]:
    state = LiveState()
    deltas: list[Delta] = []
    for event in events:
        deltas += apply(state, event)
    return state, deltas


def agent(ts: float, iface: str, *, paused: bool = False, reason: str = "") -> MemberChanged:
    info = MemberInfo(iface, iface[6:9], status=DEVICE_NOT_INUSE, paused=paused, paused_reason=reason)
    return MemberChanged(ts, Q, MemberChange.ADDED, info)


def join(ts: float, uid: str) -> CallerJoined:
    return CallerJoined(ts, Q, uid, f"PJSIP/trunk-{uid}", "0612345678", "", 99)


def answered(ts: float, uid: str, hold_s: int, iface: str = ANN) -> AgentConnected:
    return AgentConnected(ts, Q, uid, "0612345678", "", iface, "201", hold_s, 1)


def abandoned(ts: float, uid: str, hold_s: int) -> CallerAbandoned:
    return CallerAbandoned(ts, Q, uid, "0612345678", "", 1, 1, hold_s)


def pacing_of(deltas: list[Delta], *, service_level_s: float = 30, short_abandon_s: float = 5) -> Pacing:
    pacing = Pacing()
    for key in {tuple(d.queue.split("-", 1)) for d in deltas}:
        pacing.configure(key, service_level_s, short_abandon_s)  # type: ignore[arg-type]
    pacing.observe(deltas)
    return pacing


# --------------------------------------------------------------------------- recorded streams


def test_a_recorded_answered_call_is_within_the_service_level() -> None:
    state, deltas = recorded("answered")
    now = state.now
    loads = queue_loads(state, [("t1", "support")], now, pacing_of(deltas))
    load = loads[("t1", "support")]
    assert load.recent_sl_pct == 100.0
    # The agent's wrap-up ended and they are free: idle since the engine's state change.
    member = state.queues["t1-support"].members["Local/agent1@agents/n"]
    assert load.free_agents == ("Local/agent1@agents/n",)
    assert dict(load.idle_since) == {"Local/agent1@agents/n": member.state_since}
    assert load.recent_load is None  # no handled-call AHT given: nothing honest to say


def test_a_recorded_abandon_counts_against_the_service_level_unless_short() -> None:
    state, deltas = recorded("abandoned")  # the caller hung up after 6 s
    load = queue_loads(state, [("t1", "support")], state.now, pacing_of(deltas))[("t1", "support")]
    assert load.recent_sl_pct == 0.0
    short = pacing_of(deltas, short_abandon_s=10)  # the queue's short_abandon_s decides
    load = queue_loads(state, [("t1", "support")], state.now, short)[("t1", "support")]
    assert load.recent_sl_pct is None


# --------------------------------------------------------------------------- synthesised


def test_a_caller_who_left_for_a_callback_is_in_neither_term_of_the_sl() -> None:
    _, deltas = run(
        agent(T0, ANN),
        join(T0 + 1, "a"),
        CallerLeft(T0 + 100, Q, "a", 1),  # pressed 1: exit by key, no abandon
        join(T0 + 101, "b"),
        CallerLeft(T0 + 105, Q, "b", 1),
        answered(T0 + 105.001, "b", 4),
    )
    pacing = pacing_of(deltas)
    assert pacing.queues[KEY].sl.pct(T0 + 110) == 100.0  # "a" did not count as a miss
    without_b = pacing_of(deltas[: next(i for i, d in enumerate(deltas) if d.type == "caller.answered")])
    assert without_b.queues[KEY].sl.pct(T0 + 110) is None
    # Both were arrivals, though: offered load.
    assert pacing.queues[KEY].load.share(T0 + 110, 900.0, 1) == 2 * 900.0 / 900.0


def test_answers_are_judged_against_the_queues_own_threshold() -> None:
    _, deltas = run(agent(T0, ANN), join(T0, "a"), CallerLeft(T0 + 25, Q, "a", 1), answered(T0 + 25, "a", 25))
    assert pacing_of(deltas).queues[KEY].sl.pct(T0 + 30) == 100.0
    assert pacing_of(deltas, service_level_s=20).queues[KEY].sl.pct(T0 + 30) == 0.0


def test_calls_leave_the_window() -> None:
    _, deltas = run(agent(T0, ANN), join(T0, "a"), abandoned(T0 + 60, "a", 60))
    pacing = pacing_of(deltas)
    assert pacing.queues[KEY].sl.pct(T0 + 61) == 0.0
    assert pacing.queues[KEY].sl.pct(T0 + 60 + pacing.window_s) is None


def test_idle_since_and_staffing_read_the_member_states() -> None:
    state, _ = run(
        agent(T0, ANN),
        agent(T0 + 5, BOB, paused=True, reason="lunch"),
        agent(T0 + 6, CAT, paused=True, reason="callback"),
        join(T0 + 10, "a"),
        CallerLeft(T0 + 12, Q, "a", 1),
        answered(T0 + 12, "a", 2, iface=ANN),
    )
    q = state.queues[Q]
    assert idle_since(q) == {}  # Ann is on a call, the others paused
    assert staffed_agents(q) == 2  # Ann, and Cat who is paused for a callback; Bob is on a break
    state2, _ = run(agent(T0, ANN), agent(T0 + 7, BOB))
    assert idle_since(state2.queues[Q]) == {ANN: T0, BOB: T0 + 7}


def test_recent_load_is_joins_times_aht_over_the_staffed_agents() -> None:
    events: list[Event] = [agent(T0, ANN), agent(T0, BOB)]
    events += [join(T0 + i, f"c{i}") for i in range(6)]
    state, deltas = run(*events)
    estimator = WaitEstimator()
    estimator.observe(300.0)
    load = queue_loads(state, [KEY], T0 + 10, pacing_of(deltas), {KEY: estimator})[KEY]
    assert load.recent_load == 6 * 300.0 / (900.0 * 2)
    assert load.live_waiting == tuple(T0 + i for i in range(6))


def test_the_sl_gate_holds_fill_callbacks_back_when_the_queue_is_failing() -> None:
    """End to end through the pure core: abandons in the window close the fill gate; without the
    pacing inputs (the old wiring) it read "unknown" and let the fill dial out."""
    events: list[Event] = [agent(T0, ANN), agent(T0, BOB)]
    for i in range(4):
        events += [join(T0 + i, f"c{i}"), abandoned(T0 + 40 + i, f"c{i}", 40)]
    state, deltas = run(*events)
    now = T0 + 50
    policy = QueuePolicy(abandoned_callbacks=True, fill_reserve_agents=fill_reserve_agents(2))
    fill = Callback("f1", *KEY, "0612345678", "abandoned", T0 + 40, T0 + 40, T0 + 3600, tier=1)

    def dials(pacing: Pacing | None) -> list[Dial]:
        sched = SchedulerState(policies={KEY: policy})
        sched.put(fill)
        loads = queue_loads(state, [KEY], now, pacing)
        return [c for c in decide(sched, now, loads) if isinstance(c, Dial)]

    assert dials(pacing_of(deltas)) == []  # rolling SL 0% < target: no fill work
    assert [d.callback.id for d in dials(None)] == ["f1"]


def test_fill_reserve_is_a_third_of_the_staffed_agents_between_one_and_three() -> None:
    assert [fill_reserve_agents(n) for n in (0, 1, 2, 3, 5, 8, 10, 30)] == [0, 0, 1, 1, 2, 3, 3, 3]


def test_the_wait_said_on_joining_counts_the_callbacks_in_line_that_can_be_dialled() -> None:
    """Two agents busy (paused for callbacks), three callers waiting: a caller joining now is 4th
    behind them, plus the in-line callback that may be dialled now; one backing off before a
    retry, a fill callback and one in another queue are not ahead of them. Callbacks ahead do not
    hang up, so only the live callers move the line faster."""
    events: list[Event] = [
        agent(T0, ANN, paused=True, reason="callback"),
        agent(T0, BOB, paused=True, reason="callback"),
    ]
    events += [join(T0 + i, f"c{i}") for i in range(3)]
    state, _ = run(*events)
    now = T0 + 10
    estimator = WaitEstimator()
    estimator.observe(240.0)
    due = T0 + 3600

    def cb(id_: str, **kw: object) -> Callback:
        base = Callback(id_, *KEY, "0612345678", "queue_offer", T0 - 60, T0 - 60, due)
        return base.evolve(**kw) if kw else base

    callbacks = [
        cb("in-line"),
        cb("retrying", not_before=now + 300),
        cb("fill", tier=1),
        cb("elsewhere", queue="sales"),
    ]
    assert callbacks_in_line(callbacks, now) == 2  # in-line and elsewhere: pass one queue's
    forecast = forecast_now(state, KEY, estimator, callbacks, 0.0, now)
    assert forecast is not None and forecast.mean_s == 5 * 240.0 / 2  # 3 live + 1 callback + them
    quicker = forecast_now(state, KEY, estimator, callbacks, 1 / 180, now)
    fully_live = announce.expected_wait_s(5, 2, 240.0, 1 / 180)
    assert quicker is not None and fully_live is not None and fully_live < quicker.mean_s < 600.0
    assert expected_wait_now(state, KEY, estimator, callbacks, 1 / 180, now) == quicker.mean_s
