"""Properties of ``apply`` over arbitrary event sequences, including nonsensical ones: a bridge
that connects mid-call, or a transcript with lost frames, must never corrupt the counters."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbx_core.domain.board import apply_delta, delta_dict, empty_board, tenant_board
from pbx_core.domain.events import (
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
    QueueEntryInfo,
    QueueStatusInfo,
    StatusSnapshot,
    Tick,
)
from pbx_core.domain.queue_state import LiveState, apply

QUEUES = ("t1-support", "t1-sales", "t2-support")
START = 1795338000.0  # 2026-11-22 ~09:00 Europe/Amsterdam

step = st.tuples(
    st.sampled_from(
        [
            "join",
            "join",
            "join",
            "leave",
            "abandon",
            "called",
            "connect",
            "complete",
            "rna",
            "dump",
            "member",
            "hangup",
            "tick",
            "snapshot",
        ]
    ),
    st.integers(0, len(QUEUES) - 1),
    st.integers(0, 7),  # caller
    st.integers(0, 3),  # member
    # Asterisk stamps events with microseconds, strictly increasing within a call.
    st.floats(0.001, 40.0, allow_nan=False),  # seconds since previous event
    st.integers(0, 90),  # hold / talk / wait seconds
    st.sampled_from(list(MemberChange)),
    st.booleans(),
)


def build(steps: list[tuple]) -> list[Event]:
    events: list[Event] = []
    ts = START
    for kind, qi, ci, mi, dt, secs, change, flag in steps:
        ts += dt
        queue, uid, iface = QUEUES[qi], f"{qi}.{ci}", f"PJSIP/{QUEUES[qi][:2]}-20{mi}"
        number = f"06{ci:08d}"
        if kind == "join":
            events.append(CallerJoined(ts, queue, uid, f"PJSIP/x-{ci}", number, "Zoë", 1 + secs % 4))
        elif kind == "leave":
            events.append(CallerLeft(ts, queue, uid, 1))
        elif kind == "abandon":
            events.append(CallerAbandoned(ts, queue, uid, number, "", 1, 1, secs))
        elif kind == "called":
            events.append(AgentCalled(ts, queue, uid, iface, f"Agent {mi}", f"Local/{mi}-{ci};1"))
        elif kind == "connect":
            events.append(AgentConnected(ts, queue, uid, number, "", iface, f"Agent {mi}", secs, 1))
        elif kind == "complete":
            events.append(AgentCompleted(ts, queue, uid, iface, f"Agent {mi}", secs, secs, "agent"))
        elif kind == "rna":
            events.append(AgentRingNoAnswer(ts, queue, uid, iface, f"Agent {mi}", 6000))
        elif kind == "dump":
            events.append(AgentDumped(ts, queue, uid, iface, f"Agent {mi}"))
        elif kind == "member":
            info = MemberInfo(
                iface,
                f"Agent {mi}",
                status=secs % 9,
                paused=flag,
                paused_reason="lunch" if flag else "",
                wrapup_s=secs % 3,
            )
            events.append(MemberChanged(ts, queue, change, info))
        elif kind == "hangup":
            events.append(ChannelHungUp(ts, uid, f"Local/{mi}-{ci};1" if flag else f"PJSIP/x-{ci}"))
        elif kind == "tick":
            events.append(Tick(ts))
        else:
            entries = tuple(
                QueueEntryInfo(f"{qi}.{c}", f"PJSIP/x-{c}", f"06{c:08d}", "", p, secs)
                for p, c in enumerate(range(ci % 4), 1)
            )
            info = QueueStatusInfo(queue, "rrmemory", 30, (MemberInfo(iface, f"Agent {mi}"),), entries)
            events.append(StatusSnapshot(ts, ts - dt / 2, (info,), complete=flag))
    return events


def snapshot_of(state: LiveState) -> StatusSnapshot:
    """What Asterisk's QueueStatus would say right now."""
    infos = []
    for q in state.queues.values():
        members = tuple(
            MemberInfo(
                m.interface,
                m.name,
                status=m.status,
                paused=m.paused,
                paused_reason=m.paused_reason,
                in_call=m.on_call_with is not None,
            )
            for m in q.members.values()
            if m.logged_in
        )
        entries = tuple(
            QueueEntryInfo(c.uniqueid, c.channel, c.number, c.name, c.position, int(state.now - c.joined_at))
            for c in q.callers.values()
        )
        infos.append(QueueStatusInfo(q.name, q.strategy, q.asterisk_service_level_s, members, entries))
    return StatusSnapshot(state.now, state.now, tuple(infos), complete=True)


def counters(state: LiveState) -> dict[str, dict[str, int]]:
    return {name: q.counters.as_dict() for name, q in state.queues.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=60))
def test_counters_stay_consistent_after_every_event(steps: list[tuple]) -> None:
    state = LiveState()
    for event in build(steps):
        apply(state, event)
        for q in state.queues.values():
            c = q.counters
            assert c.is_consistent(len(q.callers)), (q.name, c, len(q.callers))
            assert c.short_abandoned <= c.abandoned and c.answered_within_sl <= c.answered
            assert [x.position for x in q.callers.values()] == list(range(1, len(q.callers) + 1))
            for m in q.members.values():
                assert m.calls_today >= 0 and m.ring_no_answer_today >= 0


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=60))
def test_replaying_the_same_events_after_a_resync_does_not_double_count(steps: list[tuple]) -> None:
    events = [e for e in build(steps) if not isinstance(e, StatusSnapshot)]
    state = LiveState()
    for event in events:
        apply(state, event)
    once = counters(state)
    waiting = {name: list(q.callers) for name, q in state.queues.items()}
    apply(state, snapshot_of(state))
    assert counters(state) == once
    for event in events:
        apply(state, event)
    assert counters(state) == once
    assert {name: list(q.callers) for name, q in state.queues.items()} == waiting


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=60))
def test_a_board_rebuilt_from_deltas_equals_the_engine(steps: list[tuple]) -> None:
    state = LiveState()
    boards = {t: empty_board(t) for t in ("t1", "t2")}
    for event in build(steps):
        for delta in apply(state, event):
            apply_delta(boards[delta.tenant], json.loads(json.dumps(delta_dict(delta))))
    for tenant, board in boards.items():
        assert board == json.loads(json.dumps(tenant_board(state, tenant)))
