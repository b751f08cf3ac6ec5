"""A real Asterisk without ``timestampevents = yes`` sends no Timestamp headers: the replay must
put its events on a real day (never the epoch) and say where that day came from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pbx_core.ingest import Ingest
from pbx_core.replay import replay_bytes, replay_clock, report
from tests.conftest import FIXTURES, ROOT, fixture_bytes

TZ = ZoneInfo("Europe/Amsterdam")
CAPTURE_DAY = datetime(2026, 11, 22, 10, 30, tzinfo=TZ)


def _replay_json(path: Path, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "pbx_core", "replay", str(path), "--json", *extra],
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout)


def test_the_fixture_is_the_abandoned_recording_without_its_timestamps() -> None:
    stripped = fixture_bytes("abandoned_no_timestamps")
    original = fixture_bytes("abandoned")
    assert b"Timestamp: " not in stripped
    assert original.replace(b"\r\n", b"\n").count(b"\n") - stripped.replace(b"\r\n", b"\n").count(
        b"\n"
    ) == original.count(b"Timestamp: ")


def test_the_same_calls_replay_to_the_same_counts_on_the_files_day(tmp_path: Path) -> None:
    capture = tmp_path / "capture.ami"
    shutil.copy(FIXTURES / "abandoned_no_timestamps.ami", capture)
    os.utime(capture, (CAPTURE_DAY.timestamp(), CAPTURE_DAY.timestamp()))
    bare = _replay_json(capture)
    stamped = _replay_json(FIXTURES / "abandoned.ami")
    q, ref = bare["queues"]["t1-support"], stamped["queues"]["t1-support"]
    for key in ("offered", "answered", "abandoned", "short_abandoned", "longest_wait_s"):
        assert q[key] == ref[key], key
    assert q["day"] == "2026-11-22"  # the file's day, never 1970-01-01
    caller = q["abandoned_callers"][0]
    assert (caller["number"], caller["waited_s"]) == ("0201234567", 6)
    assert caller["at"].startswith("2026-11-22T10:30")
    clock = bare["stream"]["clock"]
    assert clock["timestamps"] is False and clock["source"] == "file modification time"
    assert "timestampevents" in clock["note"]
    assert stamped["stream"]["clock"]["timestamps"] is True and stamped["stream"]["clock"]["note"] is None


def test_at_names_the_time_and_the_text_output_says_so() -> None:
    data = _replay_json(FIXTURES / "abandoned_no_timestamps.ami", "--at", "2026-03-01T09:15")
    q = data["queues"]["t1-support"]
    assert q["day"] == "2026-03-01" and q["abandoned_callers"][0]["at"].startswith("2026-03-01T09:15")
    assert data["stream"]["clock"]["source"] == "--at"
    text = subprocess.run(
        [sys.executable, "-m", "pbx_core", "replay", str(FIXTURES / "abandoned_no_timestamps.ami")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "note: the recording has no Timestamp headers" in text


def test_standard_input_without_timestamps_is_stamped_now() -> None:
    before = datetime.now(TZ).date().isoformat()
    out = subprocess.run(
        [sys.executable, "-m", "pbx_core", "replay", "-", "--json"],
        input=fixture_bytes("abandoned_no_timestamps"),
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    after = datetime.now(TZ).date().isoformat()
    data = json.loads(out.stdout)
    assert data["stream"]["clock"]["source"] == "now"
    assert data["queues"]["t1-support"]["day"] in {before, after}  # after: a run across midnight


def test_frames_before_the_first_timestamp_take_it_not_the_epoch() -> None:
    data = fixture_bytes("members")
    clock = replay_clock(data)
    assert clock.stamped and 1795338000 < clock.start_ts < 1795338300
    rep = report(replay_bytes(data, clock=clock), clock)
    assert {q["day"] for q in rep["queues"].values()} == {"2026-11-22"}


def test_a_real_capture_without_timestamps_replays_on_the_files_day(tmp_path: Path) -> None:
    """reload.ami was captured from an Asterisk 22 with timestampevents off: no Timestamp at all."""
    assert b"Timestamp: " not in fixture_bytes("reload")
    capture = tmp_path / "reload.ami"
    shutil.copy(FIXTURES / "reload.ami", capture)
    os.utime(capture, (CAPTURE_DAY.timestamp(), CAPTURE_DAY.timestamp()))
    data = _replay_json(capture)
    assert data["queues"] and {q["day"] for q in data["queues"].values()} == {"2026-11-22"}
    assert data["stream"]["clock"]["source"] == "file modification time"


def test_an_old_recording_keeps_its_own_day_whatever_the_start_clock() -> None:
    """Ingest starts at now; the recording's first Timestamp (days earlier) takes over, so its
    QueueStatus listing is stamped on the recording's day and does not roll the day to today."""
    ingest = Ingest()
    deltas = ingest.feed(fixture_bytes("members"))
    assert {q.day for q in ingest.state.queues.values()} == {"2026-11-22"}
    assert any(d.type == "queue.resynced" for d in deltas)
    assert ingest.clock < 1795338400  # the recording's time, not now
