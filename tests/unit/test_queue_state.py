"""Edge semantics of the queue engine that the recordings do not cover."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pbx_core.domain.events import (
    DEVICE_INUSE,
    DEVICE_UNAVAILABLE,
    AgentCalled,
    AgentCompleted,
    AgentConnected,
    AgentRingNoAnswer,
    CallerAbandoned,
    CallerJoined,
    CallerLeft,
    ChannelHungUp,
    MemberChange,
    MemberChanged,
    MemberInfo,
    QueueEntryInfo,
    QueueStatusInfo,
    StatusSnapshot,
    TenantRemoved,
    Tick,
)
from pbx_core.domain.queue_state import EngineSettings, LiveState, QueueSettings, apply
from pbx_core.domain.tenants import object_name, tenant_of

AMS = ZoneInfo("Europe/Amsterdam")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=AMS).timestamp()
Q = "acme-support"
AGENT = "PJSIP/acme-201"


def join(uid: str, ts: float, position: int = 99, number: str = "0612345678") -> CallerJoined:
    return CallerJoined(ts, Q, uid, f"PJSIP/trunk-{uid}", number, "Jan", position)


def member(ts: float, change: MemberChange = MemberChange.ADDED, **kw: object) -> MemberChanged:
    return MemberChanged(ts, Q, change, MemberInfo(AGENT, "Anna", **kw))  # type: ignore[arg-type]


def run(*events: object, settings: EngineSettings | None = None) -> LiveState:
    state = LiveState(settings=settings or EngineSettings())
    for e in events:
        apply(state, e)  # type: ignore[arg-type]
    return state


def test_tenant_comes_from_the_naming_convention() -> None:
    assert tenant_of("acme-support") == "acme"
    assert tenant_of("t1-ivr-main") == "t1"
    assert tenant_of("support") == "default" and tenant_of("Bad-q") == "default"
    assert object_name("acme", "support") == "acme-support"
    for evil in ("x;y", "x\ny", "a,b", "a(b", "a[b", "${X}"):
        try:
            object_name("acme", evil)
        except ValueError:
            continue
        raise AssertionError(f"{evil!r} reached an Asterisk name")


def test_priority_caller_is_inserted_at_its_position() -> None:
    state = run(join("a", T0, 1), join("b", T0 + 1, 2), join("vip", T0 + 2, 1))
    assert [(c.uniqueid, c.position) for c in state.queues[Q].callers.values()] == [
        ("vip", 1),
        ("a", 2),
        ("b", 3),
    ]
    apply(state, CallerLeft(T0 + 3, Q, "vip", 1))
    assert [(c.uniqueid, c.position) for c in state.queues[Q].callers.values()] == [("a", 1), ("b", 2)]


def test_leave_without_answer_is_an_other_exit_until_a_connect_follows() -> None:
    state = run(join("a", T0), CallerLeft(T0 + 50, Q, "a", 1))
    c = state.queues[Q].counters
    assert (c.offered, c.answered, c.other_exits) == (1, 0, 1)
    apply(state, AgentConnected(T0 + 50.001, Q, "a", "", "", AGENT, "Anna", 50, 2))
    assert (c.answered, c.other_exits, c.answered_within_sl) == (1, 0, 0)


def test_short_abandon_threshold_is_per_queue() -> None:
    settings = EngineSettings(queues={Q: QueueSettings(short_abandon_s=10)})
    state = run(join("a", T0), CallerAbandoned(T0 + 8, Q, "a", "061", "", 1, 1, 8), settings=settings)
    c = state.queues[Q].counters
    assert (c.abandoned, c.short_abandoned) == (1, 1)


def test_wrapup_then_available_when_time_passes() -> None:
    state = run(
        member(T0, wrapup_s=30),
        join("a", T0 + 1),
        AgentConnected(T0 + 5, Q, "a", "", "", AGENT, "Anna", 4, 1),
        AgentCompleted(T0 + 65, Q, "a", AGENT, "Anna", 4, 60, "caller"),
    )
    m = state.queues[Q].members[AGENT]
    assert m.state == "wrapup" and m.state_since == T0 + 65
    apply(state, Tick(T0 + 80))
    assert m.state == "wrapup"
    apply(state, Tick(T0 + 95))
    assert m.state == "available"
    c = state.queues[Q].counters
    assert (c.handled, c.talk_s, c.wrapup_s) == (1, 60, 30)  # AHT = (60 + 30) / 1


def test_device_states_map_to_agent_states() -> None:
    state = run(member(T0))
    m = state.queues[Q].members[AGENT]
    assert m.state == "available"
    apply(state, member(T0 + 1, MemberChange.STATUS, status=DEVICE_INUSE, in_call=True))
    assert m.state == "on_call"  # busy on a direct call, not a queue call
    apply(state, member(T0 + 2, MemberChange.STATUS, status=DEVICE_UNAVAILABLE))
    assert m.state == "unavailable" and m.state_since == T0 + 2  # e.g. the phone lost registration
    apply(
        state,
        member(
            T0 + 3, MemberChange.PAUSE, status=1, paused=True, paused_reason="lunch", last_pause=int(T0 + 3)
        ),
    )
    assert (m.state, m.paused_reason) == ("paused", "lunch")
    apply(state, member(T0 + 4, MemberChange.REMOVED))
    assert AGENT not in state.queues[Q].members


def test_a_removed_member_leaves_the_list_with_its_day_figures_in_the_delta() -> None:
    """QueueRemove: Asterisk's QueueStatus no longer lists the member, so neither does the
    engine. The agent.removed delta carries its last view for the history writer."""
    state = run(
        member(T0),
        join("a", T0 + 1),
        AgentConnected(T0 + 5, Q, "a", "", "", AGENT, "Anna", 4, 1),
        AgentCompleted(T0 + 65, Q, "a", AGENT, "Anna", 4, 60, "caller"),
    )
    deltas = apply(state, member(T0 + 70, MemberChange.REMOVED))
    q = state.queues[Q]
    assert AGENT not in q.members
    [removed] = [d for d in deltas if d.type == "agent.removed"]
    assert removed.data["interface"] == AGENT and removed.data["state"] == "logged_out"
    assert removed.data["calls_today"] == 1 and removed.data["since"] == T0 + 70
    # Added again: a fresh entry on the list, as Asterisk has it.
    deltas = apply(state, member(T0 + 80))
    assert q.members[AGENT].state == "available" and [d.type for d in deltas] == ["agent.added"]


def test_late_events_of_a_removed_member_count_but_do_not_bring_it_back() -> None:
    """Removed mid-call (an agent logs out while talking): Asterisk finishes the call and sends
    AgentComplete, and may still report a ring that was in flight."""
    state = run(
        member(T0),
        join("a", T0 + 1),
        AgentConnected(T0 + 5, Q, "a", "", "", AGENT, "Anna", 4, 1),
        member(T0 + 30, MemberChange.REMOVED),
    )
    q = state.queues[Q]
    late = [
        AgentCompleted(T0 + 65, Q, "a", AGENT, "Anna", 4, 60, "caller"),
        member(T0 + 66, MemberChange.STATUS, status=DEVICE_UNAVAILABLE),
        join("b", T0 + 70),
        AgentCalled(T0 + 71, Q, "b", AGENT, "Anna", "PJSIP/acme-201-0002"),
        AgentRingNoAnswer(T0 + 86, Q, "b", AGENT, "Anna", 15),
    ]
    deltas = [d for e in late for d in apply(state, e)]
    assert AGENT not in q.members
    assert not [d for d in deltas if d.type.startswith("agent.")]
    assert (q.counters.handled, q.counters.talk_s, q.counters.ring_no_answer) == (1, 60, 1)


def test_hangup_of_the_ringing_leg_stops_the_ringing() -> None:
    state = run(
        member(T0), join("a", T0 + 1), AgentCalled(T0 + 1.1, Q, "a", AGENT, "Anna", "PJSIP/acme-201-0001")
    )
    m = state.queues[Q].members[AGENT]
    assert m.state == "ringing"
    apply(state, ChannelHungUp(T0 + 15, "x", "PJSIP/acme-201-0001"))
    assert m.state == "available"


def test_day_rolls_over_at_local_midnight_keeping_waiting_callers() -> None:
    late = datetime(2026, 11, 23, 23, 59, tzinfo=AMS).timestamp()
    state = run(
        join("a", late - 100),
        CallerAbandoned(late - 50, Q, "a", "061", "", 1, 1, 50),
        join("b", late),
    )
    q = state.queues[Q]
    assert (q.counters.offered, q.counters.abandoned, q.day) == (2, 1, "2026-11-23")
    apply(state, Tick(late + 120))
    assert q.day == "2026-11-24"
    assert (q.counters.offered, q.counters.abandoned, len(q.abandoned)) == (1, 0, 0)
    apply(state, AgentConnected(late + 130, Q, "b", "", "", AGENT, "Anna", 130, 1))
    assert q.counters.is_consistent(len(q.callers)) and q.counters.answered == 1


def test_resync_keeps_real_waits_drops_vanished_and_keeps_newcomers() -> None:
    state = run(member(T0), join("gone", T0 + 1), join("stays", T0 + 2))
    requested = T0 + 60
    apply(state, join("newcomer", T0 + 61))  # joined after QueueStatus was sent
    listing = QueueStatusInfo(
        Q,
        "rrmemory",
        20,
        (
            MemberInfo(
                AGENT, "Anna", status=1, paused=True, paused_reason="training", last_pause=int(T0 + 30)
            ),
        ),
        (
            QueueEntryInfo("stays", "PJSIP/trunk-stays", "0612345678", "Jan", 1, 60),
            QueueEntryInfo("unseen", "PJSIP/trunk-unseen", "0201234567", "Piet", 2, 42),
        ),
    )
    apply(state, StatusSnapshot(T0 + 62, requested, (listing,)))
    q = state.queues[Q]
    assert list(q.callers) == ["stays", "unseen", "newcomer"]
    assert q.callers["stays"].joined_at == T0 + 2  # what we saw beats the rounded Wait
    assert q.callers["unseen"].joined_at == T0 + 62 - 42  # real wait from the listing
    c = q.counters
    assert (c.offered, c.other_exits) == (4, 1) and c.is_consistent(len(q.callers))
    m = q.members[AGENT]
    assert (m.state, m.paused_reason, m.state_since) == ("paused", "training", T0 + 30)
    assert q.service_level_s == 20


def test_resync_removes_members_missing_from_the_listing() -> None:
    state = run(member(T0))
    deltas = apply(state, StatusSnapshot(T0 + 10, T0 + 9, (QueueStatusInfo(Q, "ringall", 30, (), ()),)))
    q = state.queues[Q]
    assert AGENT not in q.members
    assert [d.type for d in deltas] == ["agent.removed", "queue.resynced"]
    assert deltas[-1].data["members"] == []


def test_resync_keeps_a_member_added_after_the_listing_was_requested() -> None:
    state = run(member(T0 + 10))
    apply(state, StatusSnapshot(T0 + 11, T0 + 9, (QueueStatusInfo(Q, "ringall", 30, (), ()),)))
    assert state.queues[Q].members[AGENT].state == "available"


def test_rejoin_on_the_same_channel_is_back_in_line_not_a_second_call() -> None:
    """The callback dialplan sends a caller who pressed 1 while the offer had closed back into
    the queue on the same channel: one offered call, visible as waiting again, not an exit."""
    left = CallerLeft(T0 + 40, Q, "c1", 1)
    state = run(join("c1", T0), left, join("c1", T0 + 42, position=1))
    q = state.queues[Q]
    assert [c.uniqueid for c in q.callers.values()] == ["c1"]
    assert q.counters.offered == 1 and q.counters.other_exits == 0
    apply(state, AgentConnected(T0 + 60, Q, "c1", "", "", AGENT, "Anna", 18, 0))
    assert q.counters.answered == 1 and q.counters.other_exits == 0 and not q.callers
    # A second join of an answered caller is still a duplicate, not a new call.
    apply(state, join("c1", T0 + 70))
    assert q.counters.offered == 1 and not q.callers


def test_in_call_follows_the_bridged_call_like_asterisks_own_flag() -> None:
    """Seen on Asterisk 22.10.1 with an auto-answering phone: the device goes in use (InCall 0),
    then the call is bridged and QueueStatus says InCall 1 with no event in between; AgentConnect
    is the event that marks it. AgentComplete ends it."""
    state = run(
        member(T0),
        join("a", T0 + 1),
        member(T0 + 2, MemberChange.STATUS, status=DEVICE_INUSE, in_call=False),
        AgentConnected(T0 + 2, Q, "a", "", "", AGENT, "Anna", 1, 1),
    )
    m = state.queues[Q].members[AGENT]
    assert m.in_call and m.status == DEVICE_INUSE
    apply(state, AgentCompleted(T0 + 30, Q, "a", AGENT, "Anna", 1, 28, "caller"))
    assert not m.in_call


# --------------------------------------------------------------------------- queues that go away

SALES = "acme-sales"


def listing(*queues: str) -> tuple[QueueStatusInfo, ...]:
    return tuple(QueueStatusInfo(name, "ringall", 30, (), ()) for name in queues)


def test_a_queue_missing_from_a_complete_listing_is_removed_with_its_members() -> None:
    """A queues.conf reload that drops a queue sends no event: Asterisk just stops listing it."""
    state = run(
        member(T0),
        join("a", T0 + 1),
        CallerJoined(T0 + 2, SALES, "s", "PJSIP/trunk-s", "0201", "Piet", 1),
    )
    deltas = apply(state, StatusSnapshot(T0 + 10, T0 + 9, listing(SALES)))
    assert list(state.queues) == [SALES]
    assert [d.type for d in deltas if d.queue == Q] == ["agent.removed", "queue.removed"]
    removed = deltas[[d.type for d in deltas].index("queue.removed")]
    assert removed.data["reason"] == "absent from QueueStatus"
    stats = removed.data["stats"]  # the day's figures, for the history writer
    assert (stats["offered"], stats["other_exits"], stats["waiting"]) == (1, 1, 0)
    assert not state.waiting_index.get("a") and Q in state.removed_queues


def test_late_events_of_a_removed_queue_do_not_bring_it_back_but_a_new_caller_does() -> None:
    state = run(member(T0), join("a", T0 + 1))
    apply(state, StatusSnapshot(T0 + 10, T0 + 9, listing()))
    late = [
        CallerLeft(T0 + 11, Q, "a", 1),
        AgentCompleted(T0 + 12, Q, "a", AGENT, "Anna", 4, 60, "caller"),
        member(T0 + 13, MemberChange.STATUS, status=DEVICE_INUSE),
        ChannelHungUp(T0 + 14, "a", "PJSIP/trunk-a"),
    ]
    assert [d for e in late for d in apply(state, e)] == [] and not state.queues
    # Re-created (the tenant applied it again): a fresh queue, today's figures start over.
    apply(state, member(T0 + 20))
    apply(state, join("b", T0 + 21))
    q = state.queues[Q]
    assert set(q.members) == {AGENT} and list(q.callers) == ["b"] and q.counters.offered == 1
    assert Q not in state.removed_queues


def test_a_resync_keeps_queues_it_heard_of_after_asking_and_partial_listings_remove_nothing() -> None:
    state = run(join("a", T0 + 10))
    apply(state, StatusSnapshot(T0 + 11, T0 + 9, listing()))  # listing predates the join
    assert Q in state.queues
    apply(state, StatusSnapshot(T0 + 30, T0 + 29, listing(), complete=False))
    assert Q in state.queues


def test_a_deleted_tenant_leaves_at_once_and_other_tenants_stay() -> None:
    beta = CallerJoined(T0 + 2, "beta-support", "b", "PJSIP/x", "1", "", 1)
    state = run(member(T0), join("a", T0 + 1), beta)
    deltas = apply(state, TenantRemoved(T0 + 5, "acme"))
    assert list(state.queues) == ["beta-support"]
    assert [(d.type, d.queue) for d in deltas] == [
        ("agent.removed", Q), ("queue.removed", Q), ("tenant.removed", "")
    ]  # fmt: skip
    assert deltas[1].data["reason"] == "tenant deleted" and deltas[-1].tenant == "acme"
    assert apply(state, CallerLeft(T0 + 6, Q, "a", 1)) == []
