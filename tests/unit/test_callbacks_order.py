"""The virtual line: a callback keeps its place among live callers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pbx_core.callbacks import Callback, callbacks_first_in_line, line, live_place, position


def _callback(cb_id: str, place_at: float, tier: int = 0) -> Callback:
    return Callback(
        id=cb_id,
        tenant="acme",
        queue="support",
        number="+31201234567",
        source="queue_offer",
        requested_at=place_at + 60,
        place_at=place_at,
        due_by=place_at + 3600,
        tier=tier,
    )


def test_a_callback_requested_at_position_3_is_served_after_1_and_2_and_before_later_callers() -> None:
    # Callers joined at t=0, 10, 20 (the third accepted a callback at t=80 and left the queue);
    # two more joined later, at 30 and 40.
    callback = _callback("cb", place_at=20.0)
    live = {"c1": 0.0, "c2": 10.0, "c4": 30.0, "c5": 40.0}
    places = line((live_place(k, v) for k, v in live.items()), [callback])
    assert [p.id for p in places] == ["c1", "c2", "cb", "c4", "c5"]
    assert position(places, "cb") == 3
    assert position(places, "c4") == 4  # the callback counts in the positions announced behind it
    # One agent free: the caller at position 1 gets it, not the callback.
    assert callbacks_first_in_line([0.0, 10.0, 30.0, 40.0], [callback], 1) == []
    assert callbacks_first_in_line([0.0, 10.0, 30.0, 40.0], [callback], 2) == []
    assert callbacks_first_in_line([0.0, 10.0, 30.0, 40.0], [callback], 3) == [callback]
    # Once 1 and 2 were served, the callback is next, ahead of the callers who joined later.
    assert callbacks_first_in_line([30.0, 40.0], [callback], 1) == [callback]


def test_fill_callbacks_wait_behind_everyone_in_line_and_leave_the_reserve_free() -> None:
    fill = _callback("fill", place_at=0.0, tier=1)  # hung up long ago, but is fill work
    assert callbacks_first_in_line([50.0], [fill], 1) == []  # a live caller is waiting: they go first
    assert callbacks_first_in_line([], [fill], 1, fill_reserve=1) == []  # would leave no agent free
    assert callbacks_first_in_line([], [fill], 2, fill_reserve=1) == [fill]
    assert callbacks_first_in_line([50.0], [fill], 3, fill_reserve=1) == [fill]  # live one + reserve


def test_position_of_someone_not_in_line_is_none() -> None:
    assert position(line([live_place("a", 1.0)], []), "b") is None


joins = st.lists(st.integers(0, 500).map(float), max_size=12)


@given(joins, joins, st.integers(0, 8))
def test_the_callbacks_chosen_are_exactly_those_in_the_first_free_places(
    live: list[float], placed: list[float], free: int
) -> None:
    callbacks = [_callback(f"cb{i}", at) for i, at in enumerate(placed)]
    chosen = callbacks_first_in_line(live, callbacks, free)
    head = line((live_place(f"l{i}", at) for i, at in enumerate(live)), callbacks)[:free]
    assert sorted(c.id for c in chosen) == sorted(p.id for p in head if p.id.startswith("cb"))
    assert len(chosen) <= free
    # No live caller who joined earlier than a chosen callback is left without an agent.
    if chosen:
        latest = max(c.place_at for c in chosen)
        ahead = [t for t in live if t <= latest]
        assert len(ahead) + len(chosen) <= free


def test_fill_callbacks_stay_within_the_pacing_allowance() -> None:
    fills = [_callback(f"f{i}", place_at=float(i), tier=1) for i in range(3)]
    assert callbacks_first_in_line([], fills, 5, fill_reserve=1) == fills  # no allowance: reserve only
    assert callbacks_first_in_line([], fills, 5, fill_reserve=1, max_fill=1) == fills[:1]
    assert callbacks_first_in_line([], fills, 5, fill_reserve=1, max_fill=0) == []
    # The allowance is for fill work only: a callback in line is never held back by it.
    in_line = _callback("cb", place_at=10.0)
    assert callbacks_first_in_line([], [in_line, *fills], 5, fill_reserve=1, max_fill=0) == [in_line]
