"""The callbacks' share of the engine task (``core.service``), pure: stream order, the restore,
the shell's epochs; and the scheduler state's indexes, which every decision relies on."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_core.callbacks.core.model import WAITING, Callback, Status
from pbx_core.callbacks.core.policy import QueueInfo, QueuePolicy
from pbx_core.callbacks.core.scheduler import Save, SchedulerState
from pbx_core.callbacks.core.service import (
    CallbackService,
    Reconciled,
    Restored,
    StoreChanged,
    Unpause,
)
from pbx_core.domain.queue_state import Delta, LiveState

KEY = ("acme", "support")
INFOS = {KEY: QueueInfo(QueuePolicy(abandoned_callbacks=True), "Europe/Amsterdam")}
T0 = 1_900_000_000.0
LIVE = LiveState()


def dialling(cb_id: str = "cb1", originate: str = "cb1:1") -> Callback:
    return Callback(
        cb_id, "acme", "support", "0612345678", "rest", T0 - 300, T0 - 300, T0 + 3600,
        status=Status.DIALLING, originate_id=originate, agent="Local/201@acme-agents/n",
        dialled_at=T0 - 200, attempts_dialled=1,
    )


def result(cb_id: str, originate: str, status: str = "ANSWER") -> dict[str, str]:
    return {
        "Event": "UserEvent", "UserEvent": "PbxCallbackResult", "CallbackId": cb_id,
        "OriginateId": originate, "DialStatus": status, "Timestamp": str(T0),
    }


def abandon(number: str, uniqueid: str = "1.1", waited: float = 40.0) -> Delta:
    data = {"uniqueid": uniqueid, "number": number, "waited_s": waited}
    return Delta("caller.abandoned", "acme", "acme-support", T0, data)


def test_nothing_is_decided_before_the_restore_and_what_came_meanwhile_is_applied_in_order() -> None:
    service = CallbackService()
    # The result of a dial placed before a restart arrives before the database has been read.
    out, commands = service.step(LIVE, [], [(0, result("cb1", "cb1:1"))], T0, True)
    assert (out, commands) == ([], [])
    service.step(LIVE, [abandon("0698765432")], [], T0, False)
    assert not service.state.callbacks

    restored = Restored(0, (dialling(),), (), INFOS)
    _, commands = service.step(LIVE, [], [(0, restored), (0, Reconciled(0, frozenset(), T0))], T0, False)
    done = service.state.callbacks["cb1"]
    assert done.status is Status.COMPLETED  # the held result, not a lost dial
    booked = [c for c in commands if isinstance(c, Save) and c.change == "created"]
    assert [c.callback.number for c in booked] == ["0698765432"]  # the held abandon, booked
    assert Unpause("acme", "support", "Local/201@acme-agents/n") in commands
    assert service.ready


def test_a_reconcile_listing_is_applied_after_the_events_before_it() -> None:
    """The call ended (its result was sent) just before Asterisk answered the Status listing with
    no channel for it: in stream order the result comes first, so it completes, not fails."""
    service = CallbackService()
    service.step(LIVE, [], [(0, Restored(0, (dialling(),), (), INFOS))], T0, False)
    late = T0 + 600  # long past dial_timeout_s: a lost dial if the listing came first
    marks = [(0, result("cb1", "cb1:1")), (0, Reconciled(0, frozenset(), late))]
    service.step(LIVE, [], marks, late, False)
    assert service.state.callbacks["cb1"].status is Status.COMPLETED

    other = CallbackService()
    other.step(LIVE, [], [(0, Restored(0, (dialling(),), (), INFOS))], T0, False)
    other.step(LIVE, [], [(0, Reconciled(0, frozenset(), late)), (0, result("cb1", "cb1:1"))], late, False)
    assert other.state.callbacks["cb1"].status is not Status.COMPLETED  # the order is what decides


def test_inputs_of_the_shells_previous_run_are_dropped() -> None:
    service = CallbackService(epoch=2)
    service.step(LIVE, [], [(0, Restored(1, (dialling(),), (), INFOS))], T0, False)
    assert not service.restored
    cancelled = dialling().evolve(status=Status.CANCELLED, closed_at=T0)
    service.step(LIVE, [], [(0, Restored(2, (dialling(),), (), INFOS))], T0, False)
    _, commands = service.step(LIVE, [], [(0, StoreChanged(1, (cancelled,)))], T0, False)
    assert commands == [] and service.state.callbacks["cb1"].status is Status.DIALLING


def test_a_batch_of_noise_costs_nothing_and_ticks_still_decide() -> None:
    service = CallbackService()
    service.step(LIVE, [], [(0, Restored(0, (), (), INFOS)), (0, Reconciled(0, frozenset(), T0))], T0, False)
    assert service.step(LIVE, [], [], T0, False) == ([], [])
    out, _ = service.step(LIVE, [], [], T0, True)
    assert [d.type for d in out] == ["callbacks.summary"]  # the first tick publishes the counts


# --------------------------------------------------------------------------- the indexes

STATUSES = [Status.PENDING, Status.OVERDUE, Status.DIALLING, Status.COMPLETED, Status.CANCELLED]
operation = st.tuples(
    st.sampled_from(["put", "drop"]),
    st.integers(0, 5),  # callback id
    st.sampled_from(STATUSES),
    st.sampled_from(["support", "sales"]),
    st.integers(0, 2),  # number
    st.integers(0, 1),  # tier
)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=40))
def test_the_scheduler_states_indexes_follow_every_put_and_drop(ops: list[tuple[object, ...]]) -> None:
    state = SchedulerState()
    for op, n, status, queue, number, tier in ops:
        cb_id = f"cb{n}"
        if op == "drop":
            state.drop(cb_id)
            continue
        cb = Callback(
            cb_id, "acme", str(queue), f"06{number}", "rest", T0, T0, T0 + 60, tier=int(tier),  # type: ignore[arg-type]
            status=status, dialled_at=T0 + n,  # type: ignore[arg-type]
        )
        if cb.is_open and (other := state.open_for("acme", str(queue), f"06{number}")) and other.id != cb_id:
            continue  # one open callback per number and queue (the store and request() enforce it)
        state.put(cb)
    callbacks = state.callbacks.values()
    waiting: dict[tuple[str, str], set[str]] = {}
    for c in callbacks:
        if c.status in WAITING:
            waiting.setdefault((c.tenant, c.queue), set()).add(c.id)
    assert state.waiting == waiting
    assert state.dialling == {c.id for c in callbacks if c.status is Status.DIALLING}
    open_ids = {c.id for c in callbacks if c.is_open}
    assert {state.callbacks[i].id for i in state.open_by_key.values()} == open_ids
    assert sorted(c.id for c in state.open_callbacks()) == sorted(c.id for c in callbacks if c.is_open)


def test_a_fill_dial_is_remembered_for_the_spacing() -> None:
    state = SchedulerState(policies={KEY: QueuePolicy()})
    cb = Callback("f1", "acme", "support", "061", "abandoned", T0, T0, T0 + 60, tier=1, dialled_at=T0 + 5)
    state.put(cb)
    state.put(cb.evolve(dialled_at=T0 + 1))  # an older stamp never moves it back
    assert state.last_fill_dial == {KEY: T0 + 5}
