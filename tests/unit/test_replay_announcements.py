"""``pbx-core replay`` measures wait announcements: what pbx-core's estimate and Asterisk's
announce-holdtime would have told each caller on joining, against the wait they then had, on a
recorded stream (here: seeded simulator traffic, replayed through the same parser and engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbx_core.callbacks.core.announce import AnnouncementMeter, within_band
from pbx_core.cli import main
from pbx_core.replay import announcement_report, replay_bytes
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import SimulatedAsterisk
from pbx_core.simulator.traffic import Traffic, TrafficConfig
from tests.unit.test_simulator_traffic import t_local


def busy_morning(seed: int = 3) -> bytes:
    """Two hours of a queue run near capacity: callers wait, some long, some hang up."""
    world = SimulatedAsterisk(clock=SimClock.stepped(t_local(9)))
    out: list[bytes] = []
    world.taps.append(out.append)
    traffic = Traffic(world, TrafficConfig(seed=seed, tenants=1, queues=1, agents=4, rate=70, profile="flat"))
    traffic.setup()
    traffic.advance(2 * 3600)
    return b"".join(out)


def test_replay_measures_both_announcements_on_every_answered_caller() -> None:
    data = busy_morning()
    meter = AnnouncementMeter()
    ingest = replay_bytes(data, meter=meter)
    report = announcement_report(meter)
    (name,) = report
    q = ingest.state.queues[name]
    ours, theirs = report[name]["ours"], report[name]["asterisk_announce_holdtime"]
    # Every caller answered after joining in the recording is measured, by both, on the same calls.
    assert ours["callers"] == theirs["callers"] > 50
    assert ours["callers"] <= q.counters.answered
    assert 0 <= ours["within_pct"] <= 100 and ours["median_error_s"] >= 0
    # The pairs are what the band says: recompute one queue's share from the meter's own pairs.
    pairs = meter.queues[name].ours
    assert round(100 * sum(within_band(s, a) for s, a in pairs) / len(pairs), 1) == ours["within_pct"]


def test_replay_prints_the_announcements(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording = tmp_path / "morning.ami"
    recording.write_bytes(busy_morning())
    assert main(["replay", str(recording), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (queue,) = out["wait_announcements"].values()
    assert set(queue) == {"ours", "asterisk_announce_holdtime"}
    assert main(["replay", str(recording)]) == 0
    assert "wait announcements for" in capsys.readouterr().out
