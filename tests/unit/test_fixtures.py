"""Every recorded Asterisk 22 stream replays to the outcome a supervisor would expect."""

from __future__ import annotations

import json
import subprocess
import sys

from pbx_core.domain.board import apply_delta, delta_dict, empty_board, tenant_board
from pbx_core.domain.queue_state import EngineSettings, QueueSettings
from pbx_core.ingest import Ingest
from pbx_core.replay import replay_bytes, report
from tests.conftest import ROOT, fixture_bytes


def replay(name: str, **settings: int) -> tuple[Ingest, list]:
    ingest = Ingest(EngineSettings(default=QueueSettings(**settings)))
    deltas = ingest.feed(fixture_bytes(name))
    return ingest, deltas


def agent_deltas(deltas: list, name: str) -> list[dict]:
    return [d.data for d in deltas if d.type.startswith("agent.") and d.data["name"] == name]


def test_answered_counts_one_answered_call_within_service_level() -> None:
    ingest, deltas = replay("answered")
    q = report(ingest)["queues"]["t1-support"]
    assert (q["offered"], q["answered"], q["abandoned"]) == (1, 1, 0)
    assert q["answered_within_sl"] == 1 and q["sl_pct"] == 100.0
    assert q["asa_s"] == 1.0 and q["longest_wait_s"] == 1
    assert q["waiting"] == [] and q["abandoned_callers"] == []
    assert q["aht_s"] == 3.0  # TalkTime 3, no wrap-up
    states = [m["state"] for m in agent_deltas(deltas, "Agent One")]
    assert states[:2] == ["ringing", "on_call"] and states[-1] == "available"
    assert q["members"][0]["calls_today"] == 1


def test_abandoned_lists_the_caller_with_the_real_wait() -> None:
    ingest, deltas = replay("abandoned")
    q = report(ingest)["queues"]["t1-support"]
    assert (q["offered"], q["answered"], q["abandoned"], q["short_abandoned"]) == (1, 0, 1, 0)
    [caller] = q["abandoned_callers"]
    assert caller["number"] == "0201234567" and caller["name"] == "Piet Klaassen"
    assert caller["waited_s"] == 6  # HoldTime from QueueCallerAbandon, not our own clock
    assert caller["at"].startswith("2026-11-22T10:03:45")  # Europe/Amsterdam
    assert q["abandon_pct"] == 100.0 and q["sl_pct"] == 0.0
    # The agent rang for the caller; the abandon (no RingNoAnswer is sent) stops the ringing.
    assert [m["state"] for m in agent_deltas(deltas, "Agent Two")] == ["ringing", "available"]


def test_ringnoanswer_shows_pause_reason_counts_rna_then_answer() -> None:
    ingest, deltas = replay("ringnoanswer")
    paused = [m for m in agent_deltas(deltas, "Agent Two") if m["state"] == "paused"]
    assert paused and paused[0]["paused_reason"] == "lunch"
    assert paused[0]["since"] == 1795338231.0  # LastPause from Asterisk
    q = report(ingest)["queues"]["t1-support"]
    assert q["ring_no_answer"] == 3
    agent_one = next(m for m in q["members"] if m["name"] == "Agent One")
    agent_two = next(m for m in q["members"] if m["name"] == "Agent Two")
    assert agent_one["ring_no_answer_today"] == 3 and agent_one["calls_today"] == 0
    assert agent_two["calls_today"] == 1 and not agent_two["paused"]
    assert (q["offered"], q["answered"], q["asa_s"], q["longest_wait_s"]) == (1, 1, 22.0, 22)
    assert "on_call" not in [m["state"] for m in agent_deltas(deltas, "Agent One")]


def test_ringnoanswer_with_a_tighter_service_level() -> None:
    ingest, _ = replay("ringnoanswer", service_level_s=20)
    q = report(ingest)["queues"]["t1-support"]
    assert q["answered_within_sl"] == 0 and q["sl_pct"] == 0.0 and q["sl_answered_pct"] == 0.0


def test_members_add_pause_with_training_resync_and_remove() -> None:
    ingest, deltas = replay("members")
    nine = agent_deltas(deltas, "Agent Nine")
    assert [m["state"] for m in nine] == ["available", "paused", "available", "logged_out"]
    assert nine[1]["paused_reason"] == "training" and nine[0]["penalty"] == 1
    assert nine[0]["membership"] == "dynamic"
    resynced = [d for d in deltas if d.type == "queue.resynced" and d.queue == "t1-sales"]
    [listed_nine] = [m for m in resynced[0].data["members"] if m["name"] == "Agent Nine"]
    assert listed_nine["state"] == "paused" and listed_nine["paused_reason"] == "training"
    queues = report(ingest)["queues"]
    assert queues["t1-sales"]["service_level_s"] == 60  # from the QueueParams ServiceLevel
    assert queues["t1-support"]["service_level_s"] == 30
    assert {m["name"] for m in queues["t1-support"]["members"]} == {"Agent One", "Agent Two"}
    # QueueRemove: Agent Nine is off the list, as Asterisk's QueueStatus would have it.
    assert "Agent Nine" not in {m["name"] for m in queues["t1-sales"]["members"]}
    [removed] = [d for d in deltas if d.type == "agent.removed"]
    assert removed.queue == "t1-sales" and removed.data["interface"] == "Local/agent9@agents/n"


def test_status_busy_three_waiting_from_queue_status_then_all_gone() -> None:
    ingest, deltas = replay("status_busy")
    [resync] = [d for d in deltas if d.type == "queue.resynced"]
    waiting = resync.data["waiting"]
    assert [(c["position"], c["number"]) for c in waiting] == [
        (1, "0600000001"),
        (2, "0600000002"),
        (3, "0600000000"),
    ]
    q = report(ingest)["queues"]["t1-support"]
    # The listing re-describes callers we already saw join: offered must not double.
    assert (q["offered"], q["abandoned"], q["short_abandoned"]) == (3, 3, 3)
    assert q["waiting"] == [] and q["abandon_pct"] is None  # every abandon was short
    assert [a["number"] for a in q["abandoned_callers"]] == ["0600000001", "0600000002", "0600000000"]


def test_every_fixture_board_rebuilds_from_deltas() -> None:
    for name in ("answered", "abandoned", "ringnoanswer", "members", "status_busy"):
        ingest, deltas = replay(name)
        board = empty_board("t1")
        for d in deltas:
            apply_delta(board, json.loads(json.dumps(delta_dict(d))))
        assert board == json.loads(json.dumps(tenant_board(ingest.state, "t1"))), name


def test_replay_is_independent_of_read_boundaries() -> None:
    data = fixture_bytes("ringnoanswer")
    whole = report(replay_bytes(data))
    one_byte = Ingest()
    for i in range(len(data)):
        one_byte.feed(data[i : i + 1])
    assert report(one_byte) == whole


def test_replay_cli_prints_the_stable_json(fixtures_dir) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pbx_core", "replay", str(fixtures_dir / "abandoned.ami"), "--json"],
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    q = json.loads(out.stdout)["queues"]["t1-support"]
    for key in (
        "tenant",
        "offered",
        "answered",
        "abandoned",
        "short_abandoned",
        "answered_within_sl",
        "sl_pct",
        "asa_s",
        "longest_wait_s",
        "abandon_pct",
        "waiting",
        "members",
        "abandoned_callers",
    ):
        assert key in q, key
    assert q["abandoned_callers"][0]["number"] == "0201234567"
    assert set(q["abandoned_callers"][0]) >= {"number", "name", "waited_s", "at"}


def test_replay_cli_service_level_flag(fixtures_dir) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pbx_core",
            "replay",
            str(fixtures_dir / "ringnoanswer.ami"),
            "--service-level",
            "20",
            "--json",
        ],
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    assert json.loads(out.stdout)["queues"]["t1-support"]["answered_within_sl"] == 0
