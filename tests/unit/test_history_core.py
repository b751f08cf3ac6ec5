"""The history writer's pure core: the rules that make its rows add up to the engine's counters,
and folding a batch again onto what it wrote changes nothing."""

from __future__ import annotations

import copy
from typing import Any

from pbx_core.history.core import CallRow, SessionRow, TenantHistory

Q = "t1-support"


def d(kind: str, ts: float, **data: Any) -> dict[str, Any]:
    return {"v": 1, "type": kind, "tenant": "t1", "queue": Q, "ts": ts, "data": data}


def fold(h: TenantHistory, deltas: list[dict[str, Any]]) -> tuple[list[CallRow], list[SessionRow]]:
    h.preload(h.wants(deltas), [], [])
    for delta in deltas:
        h.fold(delta)
    return h.take()


ANSWERED = [
    d("caller.joined", 100.0, uniqueid="u1", number="0612", name="Ann", position=1, joined_at=100.0),
    d("caller.left", 112.0, uniqueid="u1"),  # Asterisk's Leave comes before the Connect
    d("caller.answered", 112.0, uniqueid="u1", number="0612", name="Ann", interface="a1", member_name="A",
      hold_s=12),
    d("caller.completed", 172.0, uniqueid="u1", interface="a1", member_name="A", hold_s=12, talk_s=60,
      wrapup_s=5, reason="transfer"),
]  # fmt: skip


def test_a_leave_then_a_connect_is_one_answered_call_with_its_talk_and_transfer() -> None:
    calls, _ = fold(TenantHistory("t1", 0), ANSWERED)
    [row] = calls
    assert (row.outcome, row.joined_at, row.waited_s, row.agent, row.talk_s, row.wrapup_s) == (
        "answered", 100.0, 12, "a1", 60, 5)  # fmt: skip
    assert (row.end_reason, row.transfers, row.position, row.number, row.name) == (
        "transfer",
        1,
        1,
        "0612",
        "Ann",
    )


def test_folding_a_written_batch_again_onto_its_rows_changes_nothing() -> None:
    first = TenantHistory("t1", 0)
    half = fold(first, ANSWERED[:3])[0]  # written, then the writer crashed before its XACK
    again = TenantHistory("t1", 0)  # a fresh writer: it reads the rows back, then the batch again
    again.preload(again.wants(ANSWERED[:3]), copy.deepcopy(half), [])
    for delta in ANSWERED[:3]:
        again.fold(delta)
    assert again.take()[0] in ([], half)  # nothing to write, or the very same rows
    assert again.calls[(Q, "u1")] == half[0]
    assert fold(again, ANSWERED[3:])[0] == fold(first, ANSWERED[3:])[0]


def test_short_abandons_follow_the_queue_setting_and_a_rejoin_is_still_one_call() -> None:
    h = TenantHistory("t1", 0)
    calls, _ = fold(h, [
        d("queue.stats", 1.0, short_abandon_s=10),
        d("caller.joined", 100.0, uniqueid="u1", number="1", name="", position=1, joined_at=100.0),
        d("caller.left", 105.0, uniqueid="u1"),  # an exit key ...
        # ... and back in line
        d("caller.joined", 106.0, uniqueid="u1", number="1", name="", position=1, joined_at=106.0),
        d("caller.abandoned", 108.0, uniqueid="u1", number="1", name="", waited_s=8, at=108.0, position=1),
    ])  # fmt: skip
    [row] = calls
    assert (row.outcome, row.joined_at, row.waited_s) == ("short_abandon", 100.0, 8)


def test_a_call_first_seen_at_its_end_was_handled_but_never_offered() -> None:
    [row] = fold(TenantHistory("t1", 0), ANSWERED[3:])[0]
    assert (row.joined_at, row.outcome, row.talk_s) == (None, "answered", 60)


def test_pauses_and_logins_open_and_close_and_missed_rings_are_kept() -> None:
    member = {"interface": "a1", "name": "A", "state": "available", "since": 10.0, "paused": False,
              "paused_reason": "", "penalty": 0, "membership": "dynamic", "calls_today": 0,
              "ring_no_answer_today": 0}  # fmt: skip
    h = TenantHistory("t1", 0)
    _, sessions = fold(h, [
        d("agent.added", 10.0, **member),
        d("agent.paused", 20.0, **(member | {"paused": True, "paused_reason": "lunch", "since": 20.0})),
        d("agent.unpaused", 50.0, **member),
        d("caller.ring_no_answer", 60.0, uniqueid="u9", interface="a1", member_name="A", ring_ms=15000),
        d("agent.removed", 90.0, **member),
    ])  # fmt: skip
    got = {(s.kind, s.started_at, s.ended_at, s.reason) for s in sessions}
    assert got == {
        ("login", 10.0, 90.0, None),
        ("pause", 20.0, 50.0, "lunch"),
        ("ring_no_answer", 60.0, 60.0, None),
    }
    assert not h.sessions  # nothing left open


def test_strings_longer_than_their_column_are_cut_not_refused() -> None:
    from pbx_core.history.store import _fit
    from pbx_core.provisioning.models import HistoryCall

    row = CallRow("t1", 0, Q, "u1", "0" * 200, "N" * 500).as_dict()
    fitted = _fit(HistoryCall, row)
    assert (len(fitted["number"]), len(fitted["name"]), fitted["uniqueid"]) == (80, 120, "u1")
