"""The callback scheduler's decisions: de-duplication, retries and outcomes, business hours and
deadlines, pacing, and no double dialling across a restart."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_core.callbacks import (
    Callback,
    CallbackRequest,
    Dial,
    Hangup,
    HoursSpec,
    QueueLoad,
    QueuePolicy,
    Save,
    SchedulerState,
    Status,
    cancel,
    decide,
    next_wakeup,
    on_live_answer,
    on_result,
    reconcile,
    request,
    restore,
)
from pbx_core.callbacks.core.promise import PromiseRules

TZ = "Europe/Amsterdam"
HOURS = HoursSpec.build(TZ, [(["mon", "tue", "wed", "thu", "fri"], "08:00", "18:00")], [date(2025, 4, 21)])
KEY = ("acme", "support")


def at(hhmm: str, day: str = "2025-03-03") -> float:  # 2025-03-03 is a Monday
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=ZoneInfo(TZ)).timestamp()


def make_state(**policy: object) -> SchedulerState:
    return SchedulerState(policies={KEY: QueuePolicy(hours=HOURS, **policy)})  # type: ignore[arg-type]


def book(
    state: SchedulerState,
    cb_id: str = "cb1",
    number: str = "+31201234567",
    queue: str = "support",
    t: float | None = None,
    source: str = "rest",
    joined_at: float | None = None,
) -> Callback:
    when = at("09:00") if t is None else t
    req = CallbackRequest(cb_id, "acme", queue, number, source, when, joined_at)  # type: ignore[arg-type]
    return request(state, req)[0]


def free(*agents: str, live: tuple[float, ...] = ()) -> dict[tuple[str, str], QueueLoad]:
    return {KEY: QueueLoad(free_agents=agents, live_waiting=live)}


def dials(commands: list[Save | Dial | Hangup]) -> list[Dial]:
    return [c for c in commands if isinstance(c, Dial)]


# --- de-duplication -----------------------------------------------------------------------------


def test_the_same_number_twice_in_one_queue_is_one_callback() -> None:
    state = make_state()
    first = book(state, "cb1", "+31201234567")
    again, commands = request(
        state, CallbackRequest("cb2", "acme", "support", "+31 20 123 45 67", "wallboard", at("09:05"))
    )
    assert again.id == first.id and commands == []
    assert list(state.callbacks) == ["cb1"]


def test_a_different_queue_is_another_callback() -> None:
    state = make_state()
    book(state, "cb1", queue="support")
    other = book(state, "cb2", queue="sales")
    assert other.id == "cb2" and set(state.callbacks) == {"cb1", "cb2"}


def test_a_closed_callback_does_not_block_a_new_one_and_a_repeated_request_id_is_idempotent() -> None:
    state = make_state()
    book(state, "cb1")
    cancel(state, "cb1", at("09:01"))
    assert book(state, "cb2").id == "cb2"
    assert book(state, "cb2").id == "cb2" and len(state.callbacks) == 2


def test_requests_are_validated_with_clear_messages() -> None:
    state = make_state()
    with pytest.raises(ValueError, match="must be a phone number"):
        book(state, number="none")
    with pytest.raises(ValueError, match="callback source must be one of"):
        book(state, source="fax")
    never = SchedulerState(policies={KEY: QueuePolicy(hours=HoursSpec.build(TZ, []))})
    with pytest.raises(ValueError, match="acme-support has no opening time"):
        book(never)


# --- retries and outcomes -----------------------------------------------------------------------


def test_no_answer_retries_after_back_off_up_to_max_attempts_then_the_last_result_is_final() -> None:
    state = make_state(max_attempts=3, retry_base_s=300, retry_factor=2)
    book(state)
    t = at("09:00")
    first = dials(decide(state, t, free("agent1")))
    assert [d.originate_id for d in first] == ["cb1:1"]
    assert state.callbacks["cb1"].status is Status.DIALLING
    assert on_result(state, "cb1", "cb1:1", "no_answer", t + 40)[0].change == "retry"
    cb = state.callbacks["cb1"]
    assert (cb.status, cb.attempts, cb.not_before) == (Status.PENDING, 1, t + 40 + 300)
    assert dials(decide(state, t + 339, free("agent1"))) == []  # back-off not over
    second = dials(decide(state, t + 340, free("agent1")))
    assert [d.originate_id for d in second] == ["cb1:2"]
    on_result(state, "cb1", "cb1:2", "busy", t + 350)
    assert state.callbacks["cb1"].not_before == t + 350 + 600  # doubled
    third = dials(decide(state, t + 950, free("agent2")))
    on_result(state, "cb1", third[0].originate_id, "no_answer", t + 990)
    cb = state.callbacks["cb1"]
    assert (cb.status, cb.attempts, cb.closed_at) == (Status.NO_ANSWER, 3, t + 990)
    assert dials(decide(state, t + 5000, free("agent1"))) == []


def test_answered_completes_and_busy_or_failed_are_final_outcomes_too() -> None:
    for result, final in (("answered", Status.COMPLETED), ("busy", Status.BUSY), ("failed", Status.FAILED)):
        state = make_state(max_attempts=1)
        book(state)
        (dial,) = dials(decide(state, at("09:00"), free("agent1")))
        on_result(state, "cb1", dial.originate_id, result, at("09:01"))  # type: ignore[arg-type]
        assert state.callbacks["cb1"].status is final


def test_an_agent_leg_failure_requeues_without_using_an_attempt() -> None:
    state = make_state(max_attempts=1)
    book(state)
    (dial,) = dials(decide(state, at("09:00"), free("agent1")))
    on_result(state, "cb1", dial.originate_id, "agent_unavailable", at("09:00"))
    cb = state.callbacks["cb1"]
    assert (cb.status, cb.attempts, cb.agent) == (Status.PENDING, 0, None)
    (again,) = dials(decide(state, at("09:00"), free("agent2")))
    assert again.originate_id == "cb1:2"  # a new originate id: events of the first one are stale


def test_stale_repeated_and_unknown_results_change_nothing() -> None:
    state = make_state()
    book(state)
    decide(state, at("09:00"), free("agent1"))
    on_result(state, "cb1", "cb1:1", "agent_unavailable", at("09:00"))
    decide(state, at("09:00"), free("agent1"))  # attempt cb1:2 in flight
    before = state.callbacks["cb1"]
    assert on_result(state, "cb1", "cb1:1", "answered", at("09:01")) == []  # older attempt
    assert on_result(state, "nope", "nope:1", "answered", at("09:01")) == []
    assert state.callbacks["cb1"] == before
    on_result(state, "cb1", "cb1:2", "answered", at("09:02"))
    assert on_result(state, "cb1", "cb1:2", "answered", at("09:03")) == []  # delivered twice
    assert state.callbacks["cb1"].closed_at == at("09:02")


def test_cancel_hangs_up_a_dial_in_flight_and_a_live_answer_cancels_a_waiting_callback() -> None:
    state = make_state()
    book(state, "cb1", number="+31201111111")
    book(state, "cb2", number="+31202222222")
    decide(state, at("09:00"), free("agent1"))  # cb1 is first in line
    commands = cancel(state, "cb1", at("09:01"))
    assert [type(c) for c in commands] == [Save, Hangup]
    assert state.callbacks["cb1"].status is Status.CANCELLED
    on_live_answer(state, "acme", "support", "+31 20 222 2222", at("09:02"))
    assert state.callbacks["cb2"].status is Status.CANCELLED
    assert cancel(state, "cb2", at("09:03")) == []


# --- business hours and deadlines ---------------------------------------------------------------


def test_nothing_is_dialled_while_closed_and_an_after_hours_booking_is_due_after_opening() -> None:
    state = make_state(due_within_s=3600)
    cb = book(state, t=at("20:00"), source="after_hours")
    assert cb.not_before == at("08:00", "2025-03-04") and cb.due_by == at("09:00", "2025-03-04")
    for closed in (at("20:00"), at("23:59"), at("07:59", "2025-03-04")):
        assert dials(decide(state, closed, free("agent1", "agent2"))) == []
    assert next_wakeup(state, at("20:00")) == at("08:00", "2025-03-04")
    (dial,) = dials(decide(state, at("08:00", "2025-03-04"), free("agent1")))
    assert dial.callback.id == cb.id


def test_a_waiting_callback_is_not_dialled_after_closing_nor_on_a_holiday() -> None:
    state = make_state(due_within_s=3600, expire_after_s=7 * 24 * 3600)
    book(state, t=at("17:00", "2025-04-18"))  # Friday afternoon, then a weekend and Easter Monday
    for closed in (at("18:00", "2025-04-18"), at("12:00", "2025-04-19"), at("12:00", "2025-04-21")):
        assert dials(decide(state, closed, free("agent1"))) == []
    assert len(dials(decide(state, at("08:00", "2025-04-22"), free("agent1")))) == 1


def test_past_due_by_a_callback_is_overdue_but_still_served_then_expires() -> None:
    state = make_state(due_within_s=3600, expire_after_s=7200)
    book(state, "cb1", "+31201111111", t=at("09:00"))
    book(state, "cb2", "+31202222222", t=at("09:00"))
    commands = decide(state, at("10:00") + 1, free())
    assert [(c.callback.id, c.change) for c in commands if isinstance(c, Save)] == [
        ("cb1", "overdue"),
        ("cb2", "overdue"),
    ]
    (dial,) = dials(decide(state, at("10:30"), free("agent1")))
    on_result(state, dial.callback.id, dial.originate_id, "answered", at("10:31"))
    done = state.callbacks[dial.callback.id]
    assert done.status is Status.COMPLETED and not done.on_time
    decide(state, at("12:00") + 1, free())
    other = "cb2" if dial.callback.id == "cb1" else "cb1"
    assert state.callbacks[other].status is Status.EXPIRED
    assert dials(decide(state, at("12:05"), free("agent1"))) == []


def test_completed_by_due_by_is_on_time() -> None:
    state = make_state(due_within_s=3600)
    book(state)
    (dial,) = dials(decide(state, at("09:10"), free("agent1")))
    on_result(state, "cb1", dial.originate_id, "answered", at("09:11"))
    assert state.callbacks["cb1"].on_time


# --- pacing -------------------------------------------------------------------------------------


def test_live_callers_ahead_of_a_callbacks_place_are_served_first() -> None:
    state = make_state()
    book(state, source="queue_offer", t=at("09:05"), joined_at=at("09:02"))
    ahead = (at("09:00"), at("09:01"))
    assert dials(decide(state, at("09:06"), free("a1", "a2", live=ahead))) == []
    assert len(dials(decide(state, at("09:06"), free("a1", "a2", "a3", live=ahead)))) == 1
    behind = (at("09:03"), at("09:04"))
    state2 = make_state()
    book(state2, source="queue_offer", t=at("09:05"), joined_at=at("09:02"))
    assert len(dials(decide(state2, at("09:06"), free("a1", live=behind)))) == 1


operations = st.lists(
    st.one_of(
        st.tuples(st.just("book"), st.integers(0, 9)),
        st.tuples(st.just("decide"), st.sets(st.sampled_from([f"a{i}" for i in range(5)]))),
        st.tuples(
            st.just("result"),
            st.sampled_from(["answered", "no_answer", "busy", "failed", "agent_unavailable"]),
        ),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_callbacks_in_flight_never_exceed_free_agents_and_never_share_one(
    ops: list[tuple[str, object]],
) -> None:
    state = make_state(max_attempts=2, retry_base_s=0)
    t = at("09:00")
    for op, arg in ops:
        t += 1
        if op == "book":
            book(state, f"cb{arg}-{t}", number=f"+3120000000{arg}", t=t)
        elif op == "decide":
            agents = sorted(arg)  # type: ignore[call-overload]
            reserved = {c.agent for c in state.in_flight()}
            new = dials(decide(state, t, free(*agents)))
            assert len(new) <= len(set(agents) - reserved)
            assert all(d.agent in agents and d.agent not in reserved for d in new)
        else:
            flying = state.in_flight()
            if flying:
                cb = flying[0]
                assert cb.originate_id is not None
                on_result(state, cb.id, cb.originate_id, arg, t)  # type: ignore[arg-type]
        agents_in_flight = [c.agent for c in state.in_flight()]
        assert None not in agents_in_flight and len(agents_in_flight) == len(set(agents_in_flight))
        open_keys = [c.key for c in state.callbacks.values() if c.is_open]
        assert len(open_keys) == len(set(open_keys))  # one open callback per number per queue


# --- restart ------------------------------------------------------------------------------------


def _persist_and_restore(state: SchedulerState) -> SchedulerState:
    rows = json.loads(json.dumps([c.to_record() for c in state.callbacks.values()]))
    return restore((Callback.from_record(r) for r in rows), state.policies)


def test_a_callback_dialling_at_a_restart_is_not_dialled_again_and_keeps_its_agent() -> None:
    state = make_state(dial_timeout_s=120)
    book(state, "cb1", "+31201111111")
    (dial,) = dials(decide(state, at("09:00"), free("agent1")))
    book(state, "cb2", "+31202222222", t=at("09:00") + 1)
    state = _persist_and_restore(state)  # the scheduler restarts mid-originate
    assert state.callbacks["cb1"].status is Status.DIALLING
    again = dials(decide(state, at("09:00") + 5, free("agent1", "agent2")))
    assert [(d.callback.id, d.agent) for d in again] == [("cb2", "agent2")]  # agent1 stays reserved
    # The event carrying the callback id (from the channel variables) resolves it.
    assert reconcile(state, at("09:00") + 200, live_callback_ids={"cb1", "cb2"}) == []  # both calls up
    on_result(state, "cb1", dial.originate_id, "answered", at("09:00") + 30)
    assert state.callbacks["cb1"].status is Status.COMPLETED


@pytest.mark.parametrize(
    ("marker", "status", "attempts"),
    [
        ({"cb1:1": "ANSWER"}, Status.COMPLETED, 1),  # the result the bridge missed
        ({"cb1:1": "NOANSWER"}, Status.PENDING, 1),  # ... a no-answer: retried later
        ({"cb1:1": "started"}, Status.UNCONFIRMED, 1),  # the customer may have been called
        ({"cb1:1": None}, Status.PENDING, 0),  # no marker: the agent never answered
        ({}, Status.UNCONFIRMED, 1),  # the lookup failed: never "failed", never redialled
    ],
)
def test_reconcile_reads_a_vanished_dials_marker(
    marker: dict[str, str | None], status: Status, attempts: int
) -> None:
    state = make_state(dial_timeout_s=120, max_attempts=3, retry_base_s=60)
    book(state)
    decide(state, at("09:00"), free("agent1"))
    state = _persist_and_restore(state)
    assert reconcile(state, at("09:00") + 120, {"cb1"}, marker) == []  # its channel is up
    final = bool(marker) and next(iter(marker.values())) not in (None, "started")
    # A final marker is the result; anything else waits for dial_timeout_s (it may be starting).
    early = reconcile(state, at("09:00") + 60, set(), marker)
    assert bool(early) == final
    (save,) = early if final else reconcile(state, at("09:00") + 120, set(), marker)
    cb = state.callbacks["cb1"]
    assert isinstance(save, Save) and (cb.status, cb.attempts, cb.agent) == (status, attempts, None)
    if status is Status.UNCONFIRMED:
        assert cb.last_result == "unknown" and not cb.is_open
        assert decide(state, at("10:00"), free("agent1")) == []  # never dialled again


def test_an_old_dial_without_a_marker_is_unconfirmed_not_requeued() -> None:
    """Markers older than two days are deleted by the dialplan: a missing one proves nothing."""
    state = make_state(dial_timeout_s=120)
    book(state)
    decide(state, at("09:00"), free("agent1"))
    later = at("09:00", "2025-03-06")
    reconcile(state, later, set(), {"cb1:1": None})
    assert state.callbacks["cb1"].status is Status.UNCONFIRMED


def test_the_answered_attempt_counts() -> None:
    """Issue 11 item 15: a completed callback reports the attempt that reached the customer."""
    state = make_state(retry_base_s=60)
    book(state)
    (first,) = dials(decide(state, at("09:00"), free("agent1")))
    on_result(state, "cb1", first.originate_id, "no_answer", at("09:01"))
    (second,) = dials(decide(state, at("09:10"), free("agent1")))
    on_result(state, "cb1", second.originate_id, "answered", at("09:12"))
    cb = state.callbacks["cb1"]
    assert (cb.status, cb.attempts, cb.attempts_dialled) == (Status.COMPLETED, 2, 2)


def test_records_round_trip_through_json() -> None:
    state = make_state()
    cb = book(state)
    assert Callback.from_record(json.loads(json.dumps(cb.to_record()))) == cb


def _fill_state(**policy: object) -> SchedulerState:
    # Pacing only: no fill callback here is near its promise (that is tested on its own).
    no_rush = PromiseRules(urgent_before_s=0)
    state = make_state(abandoned_callbacks=True, fill_reserve_agents=1, promise=no_rush, **policy)
    book(state, "f1", "+31201111111", source="abandoned", t=at("09:00"))
    book(state, "f2", "+31202222222", source="abandoned", t=at("09:01"))
    return state


def _load(*agents: str, sl: float | None, idle_since: float | None = None, load: float | None = None) -> dict:
    since = {} if idle_since is None else dict.fromkeys(agents, idle_since)
    return {KEY: QueueLoad(free_agents=agents, recent_sl_pct=sl, idle_since=since, recent_load=load)}


def test_fill_callbacks_go_out_only_while_the_recent_service_level_is_above_target_with_margin() -> None:
    state = _fill_state(sl_target_pct=80.0, fill_sl_margin_pct=5.0)
    now = at("10:00")
    assert dials(decide(state, now, _load("a1", "a2", "a3", sl=84.9))) == []
    # Above it: one fill at a time, on the agent idle longest, and the reserve stays free.
    load = {KEY: QueueLoad(free_agents=("a1", "a2", "a3"), recent_sl_pct=85.0,
                           idle_since={"a1": now - 5, "a2": now - 50, "a3": now - 20})}
    (dial,) = dials(decide(state, now, load))
    assert (dial.callback.id, dial.agent) == ("f1", "a2")
    # No call ended in the window: the queue is quiet, nothing to protect.
    assert [d.callback.id for d in dials(decide(state, now + 1, _load("a1", "a3", sl=None)))] == ["f2"]


def test_below_target_an_agent_idle_long_enough_or_a_queue_in_overload_decide() -> None:
    state = _fill_state(fill_idle_s=60.0, fill_max_load=0.9)
    now = at("10:00")
    assert dials(decide(state, now, _load("a1", "a2", sl=50.0, idle_since=now - 59))) == []
    assert len(dials(decide(state, now, _load("a1", "a2", sl=50.0, idle_since=now - 60)))) == 1
    # In overload there is no spare capacity, however good the SL looked.
    assert dials(decide(state, now, _load("a3", "a4", sl=100.0, load=0.95))) == []


def test_fill_dials_are_spaced_and_callbacks_in_line_are_not_paced() -> None:
    state = _fill_state(fill_spacing_s=120.0)
    now = at("10:00")
    assert len(dials(decide(state, now, _load("a1", "a2", sl=None)))) == 1
    assert dials(decide(state, now + 119, _load("a3", "a4", sl=None))) == []
    assert len(dials(decide(state, now + 120, _load("a3", "a4", sl=None)))) == 1
    # A caller who took the offer is served at their place whatever the recent SL: they are in line.
    book(state, "offer", "+31203333333", source="queue_offer", t=now, joined_at=now - 300)
    (dial,) = dials(decide(state, now + 121, _load("a5", sl=0.0, load=2.0)))
    assert dial.callback.id == "offer"


def test_pacing_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="sl_target_pct"):
        QueuePolicy(sl_target_pct=120.0)
    with pytest.raises(ValueError, match="fill_reserve_agents"):
        QueuePolicy(fill_reserve_agents=-1)
    with pytest.raises(ValueError, match="fill_idle_s"):
        QueuePolicy(fill_spacing_s=-1.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 600)), max_size=8),
    st.integers(0, 6),
    st.lists(st.integers(0, 600).map(float), max_size=6),
    st.one_of(st.none(), st.floats(0, 100)),
    st.integers(0, 600),
)
def test_fill_work_never_takes_an_agent_a_live_caller_or_the_reserve_needs(
    booked: list[tuple[int, int]], n_free: int, live: list[float], recent_sl: float | None, idle_s: int
) -> None:
    """The starvation bound, per decision: fill callbacks go out only on agents left over after
    every live caller waiting and every callback in line got one, with the reserve still free, at
    most one at a time, and only while the recent SL is above target + margin or an agent idled."""
    state = make_state(abandoned_callbacks=True, fill_reserve_agents=2, fill_idle_s=120.0)
    t0 = at("09:00")
    for i, (fill, offset) in enumerate(booked):
        source = "abandoned" if fill else "queue_offer"
        book(state, f"cb{i}", f"+3120000{i:04d}", t=t0 + offset, source=source, joined_at=t0 + offset - 30)
    now = t0 + 700
    agents = tuple(f"a{i}" for i in range(n_free))
    live_at = tuple(t0 + x for x in live)
    load = QueueLoad(agents, live_at, recent_sl_pct=recent_sl, idle_since=dict.fromkeys(agents, now - idle_s))
    new = dials(decide(state, now, {KEY: load}))
    fills = [d for d in new if d.callback.tier > 0]
    in_line = len(new) - len(fills)
    assert len(new) <= n_free
    if fills:
        assert len(fills) == 1
        assert len(live_at) + in_line + len(fills) + 2 <= n_free
        assert recent_sl is None or recent_sl >= 85.0 or idle_s >= 120
