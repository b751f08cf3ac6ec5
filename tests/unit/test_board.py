"""The reader's board never aliases the deltas it applies: a live ``Delta`` is shared by every
consumer (bus snapshot, web hub boards), so applying it must leave it exactly as it was."""

from __future__ import annotations

import copy
import json

from bench.stream import generate
from pbx_core.domain.board import apply_delta, delta_dict, empty_board, tenant_board
from pbx_core.domain.queue_state import Delta
from pbx_core.ingest import Ingest
from tests.conftest import fixture_bytes


def _apply_live(deltas: list[Delta], tenant: str) -> dict:
    """Apply the engine's own Delta objects (no JSON round trip), checking none of them changes."""
    board = empty_board(tenant)
    before = [copy.deepcopy(d.data) for d in deltas]
    for d in deltas:
        if d.tenant == tenant:
            apply_delta(board, delta_dict(d))
    changed = [(d.type, d.queue) for d, data in zip(deltas, before, strict=True) if d.data != data]
    assert changed == []
    return board


def test_applying_fixture_deltas_leaves_them_unchanged() -> None:
    for name in ("answered", "abandoned", "ringnoanswer", "members", "status_busy"):
        ingest = Ingest()
        deltas = ingest.feed(fixture_bytes(name))
        board = _apply_live(deltas, "t1")
        assert board == json.loads(json.dumps(tenant_board(ingest.state, "t1"))), name


def test_resynced_queue_view_is_not_changed_by_later_deltas() -> None:
    # Resyncs while callers wait and agents ring: later joins renumber the waiting list, agent
    # deltas replace members, abandons grow the list; all of it used to land in the resync's data.
    info = generate(6_000, tenants=2, seed=3, mean_gap_s=5, resync_every_s=30)
    ingest = Ingest()
    deltas = ingest.feed(info.data)
    resynced = [d for d in deltas if d.type == "queue.resynced"]
    assert resynced and any(d.data["waiting"] for d in resynced)
    for tenant in sorted({d.tenant for d in deltas}):
        board = _apply_live(deltas, tenant)
        assert board == json.loads(json.dumps(tenant_board(ingest.state, tenant))), tenant


def test_board_does_not_share_dicts_with_a_delta() -> None:
    ingest = Ingest()
    deltas = ingest.feed(fixture_bytes("status_busy"))
    board = empty_board("t1")
    for d in deltas:
        apply_delta(board, delta_dict(d))
    stored = {id(x) for q in board["queues"].values() for x in (q, q["stats"], *q["members"], *q["waiting"])}
    assert stored.isdisjoint(id(d.data) for d in deltas)


SUMMARY = {
    "pending": 3, "in_progress": 1, "overdue": 1, "completed_today": 10, "on_time_today": 9,
    "on_time_pct": 90.0,
    "next": [{"id": "cb1", "number": "0201234567", "status": "overdue", "due_by": 1.0, "place_at": 0.5}],
}  # fmt: skip


def test_callbacks_summary_is_stored_per_queue_as_a_copy_and_survives_a_resync() -> None:
    ingest = Ingest()
    deltas = ingest.feed(fixture_bytes("answered"))
    board = empty_board("t1")
    for d in deltas:
        apply_delta(board, delta_dict(d))
    summary = Delta("callbacks.summary", "t1", "t1-support", 1_700_000_000.0, copy.deepcopy(SUMMARY))
    apply_delta(board, delta_dict(summary))
    q = board["queues"]["t1-support"]
    assert q["callbacks"] == SUMMARY
    # Not aliased: the worker's delta may be applied to several boards.
    q["callbacks"]["next"][0]["status"] = "dialling"
    q["callbacks"]["pending"] = 0
    assert summary.data == SUMMARY

    # An engine resync of the queue replaces the engine's part and keeps the worker's summary.
    apply_delta(board, delta_dict(summary))
    view = json.loads(json.dumps(tenant_board(ingest.state, "t1")["queues"]["t1-support"]))
    apply_delta(board, {"v": 1, "type": "queue.resynced", "tenant": "t1", "queue": "t1-support", "ts": 2.0,
                        "data": view})  # fmt: skip
    assert board["queues"]["t1-support"]["callbacks"] == SUMMARY
    assert {k: v for k, v in board["queues"]["t1-support"].items() if k != "callbacks"} == view

    # A newer summary replaces the old one whole (counts that dropped to zero really are zero).
    later = {**SUMMARY, "pending": 0, "overdue": 0, "next": []}
    apply_delta(board, delta_dict(Delta("callbacks.summary", "t1", "t1-support", 3.0, later)))
    assert board["queues"]["t1-support"]["callbacks"] == later


def test_callbacks_summary_for_a_queue_without_calls_creates_its_entry() -> None:
    board = empty_board("t1")
    apply_delta(board, delta_dict(Delta("callbacks.summary", "t1", "t1-sales", 1.0, copy.deepcopy(SUMMARY))))
    q = board["queues"]["t1-sales"]
    assert q["callbacks"] == SUMMARY and q["waiting"] == [] and q["abandoned_callers"] == []
