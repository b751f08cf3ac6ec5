"""The synthetic benchmark stream is valid AMI traffic: it parses cleanly and its call flows keep
the engine's counters consistent, so the ingest benchmark measures real work."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import pytest

from bench import cli as bench_cli
from bench.ingest import (
    MEASURES,
    MemoryShape,
    chunked,
    headers_per_event,
    live_state_memory,
    panoramisk_parse,
    split_only,
)
from bench.stream import FRAME_END, Library, generate, live_state_stream, manager_conf_events
from pbx_core.domain.kpi import Counters
from pbx_core.ingest import Ingest


@pytest.fixture(scope="module")
def lib() -> Library:
    return Library.load()


def _replay(data: bytes, chunk: int = 4096) -> Ingest:
    ingest = Ingest()
    for part in chunked(data, chunk):
        ingest.feed(part)
    return ingest


def _totals(ingest: Ingest) -> Counter[str]:
    total: Counter[str] = Counter()
    for q in ingest.state.queues.values():
        total.update(q.counters.as_dict())
        total["waiting"] += len(q.callers)
    return total


def test_stream_replays_with_no_malformed_frames_and_consistent_counters(lib: Library) -> None:
    info = generate(40_000, tenants=30, seed=7, mean_gap_s=20, resync_every_s=60, library=lib)
    ingest = _replay(info.data)
    stats = ingest.decoder.stats
    assert stats.malformed == 0 and stats.oversized == 0
    assert stats.frames == info.frames == info.data.count(FRAME_END)
    assert ingest.decoder.pending_bytes == 0 and ingest.listings.open_count == 0
    # The real noise mix: most frames are skipped unparsed, as on a live Asterisk.
    assert 0.75 < stats.noise / stats.frames < 0.95
    assert info.resyncs >= 3
    queues = ingest.state.queues.values()
    assert {q.tenant for q in queues} == {f"t{i:03d}" for i in range(1, 31)}
    for q in queues:
        assert q.counters.is_consistent(len(q.callers)), (q.name, q.counters)
    total = _totals(ingest)
    assert total["offered"] > 200
    assert total["answered"] > 0 and total["abandoned"] > 0 and total["ring_no_answer"] > 0
    exits = total["answered"] + total["abandoned"] + total["waiting"] + total["other_exits"]
    assert exits == total["offered"]


def test_resync_listings_carry_the_callers_really_waiting(lib: Library) -> None:
    """A resync lists exactly who waits, with real waits: applying it changes no counter."""
    kwargs = {"tenants": 10, "seed": 3, "mean_gap_s": 3.0, "library": lib}
    with_resyncs = generate(20_000, resync_every_s=5.0, **kwargs)  # type: ignore[arg-type]
    without = generate(20_000, resync_every_s=1e9, **kwargs)  # type: ignore[arg-type]
    assert with_resyncs.data.count(b"Event: QueueEntry\r\n") > 0  # callers were waiting at some resync
    assert _totals(_replay(with_resyncs.data)) == _totals(_replay(without.data))
    assert _totals(_replay(without.data))["other_exits"] == 0  # no caller vanished


def test_same_seed_same_bytes_other_seed_other_bytes(lib: Library) -> None:
    a = generate(5_000, tenants=5, seed=11, library=lib)
    assert a.data == generate(5_000, tenants=5, seed=11, library=lib).data
    assert a.data != generate(5_000, tenants=5, seed=12, library=lib).data


def test_utf8_caller_names_survive_our_path(lib: Library) -> None:
    info = generate(20_000, tenants=5, seed=1, library=lib)
    ingest = _replay(info.data)
    names = {a.name for q in ingest.state.queues.values() for a in q.abandoned}
    assert any(not n.isascii() for n in names), names  # e.g. "Zoë Özdemir-Müller"
    assert "Zoë Özdemir-Müller".encode() in info.data


def test_every_measure_sees_the_same_frames(lib: Library) -> None:
    info = generate(5_000, tenants=5, seed=2, library=lib)
    chunks = chunked(info.data, 4096)
    counts = {key: measure(chunks) for key, (_, measure) in MEASURES.items()}
    assert set(counts.values()) == {info.frames}, counts
    assert split_only(chunks) == panoramisk_parse(chunks) == info.frames


def test_the_production_mix_is_the_recordings_through_manager_conf_s_event_filter() -> None:
    names = manager_conf_events()
    assert {"QueueCallerJoin", "AgentConnect", "Hangup", "QueueMemberStatus", "UserEvent"} <= names
    assert not {"VarSet", "Newexten", "DialBegin", "HangupRequest"} & names
    lib = Library.load(events=names)
    info = generate(5_000, tenants=5, seed=2, library=lib)
    events = [f for f in info.data.split(FRAME_END) if f.startswith(b"Event: ")]
    assert {f.split(b"\r\n", 1)[0][7:].decode() for f in events} <= names
    ingest = _replay(info.data)
    assert ingest.decoder.stats.noise == 0 and ingest.decoder.stats.malformed == 0
    # Frames keep the header counts Asterisk gave them (about 22 per event), nothing trimmed.
    assert 20 <= headers_per_event(info.data) <= 26
    for q in ingest.state.queues.values():
        assert q.counters.is_consistent(len(q.callers)), q.name


def test_live_state_memory_builds_every_member_and_caller(lib: Library) -> None:
    shape = MemoryShape(tenants=4, queues=5, agents=20, waiting=3)
    result = live_state_memory(lib, shape, lambda _: None)
    assert result["members"] == 400 and result["queues"] == 20 and result["waiting_callers"] == 60
    assert 0 < result["current_mib"] <= result["peak_mib"]
    ingest = Ingest()
    for chunk in live_state_stream(lib, tenants=2, queues=2, agents=3, waiting=2):
        ingest.feed(chunk)
    assert ingest.decoder.stats.malformed == 0
    q = ingest.state.queues["t0001-support"]
    assert [m.state for m in q.members.values()] == ["available"] * 3
    assert [c.position for c in q.callers.values()] == [1, 2]
    assert q.counters == Counters(offered=2)


def test_bench_ingest_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    bench_cli.register(sub)
    args = parser.parse_args(
        [
            "bench", "ingest", "--production-events", "2000", "--noise-events", "3000", "--rounds", "1",
            "--memory-tenants", "2", "--json", "-q",
        ]
    )
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["mixes"]) == {"production", "noise"}
    production = result["mixes"]["production"]
    assert set(production["frames_per_cpu_s"]) == {"a", "b", "c", "d", "e", "f"}
    assert all(v > 0 for v in production["frames_per_cpu_s"].values())
    assert set(production["targets"]) == {"c_over_b", "c_over_d", "e_over_c"}
    assert set(result["mixes"]["noise"]["targets"]) == {"c_over_a"}
    assert production["stream"]["noise_pct"] == 0.0 and production["stream"]["event_filter"]
    assert result["mixes"]["noise"]["stream"]["noise_pct"] > 50
    assert result["memory"]["members"] == 200
