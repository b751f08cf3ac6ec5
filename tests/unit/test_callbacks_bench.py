"""The callbacks outcome model: same traffic in both plays, the JSON contract, and the property
that callbacks keeping their place in line do not cost live callers their service level."""

from __future__ import annotations

import argparse
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import callbacks as bench
from bench import cli as bench_cli

SHORT = ["--close", "12:00", "--peak-minutes", "120"]  # a four-hour morning keeps the model quick


def test_both_plays_get_the_same_callers_and_a_seed_gives_the_same_result() -> None:
    args = bench.parse([*SHORT, "--seed", "7"])
    opens = bench._at(args.open)
    first = bench.make_callers(args, opens, bench._at(args.close))
    second = bench.make_callers(args, opens, bench._at(args.close))
    assert [(c.arrival, c.patience, c.handle, c.accepts_offer) for c in first] == [
        (c.arrival, c.patience, c.handle, c.accepts_offer) for c in second
    ]
    # 110% of 10 agents / 240 s AHT for 4 hours is about 660 callers.
    assert 560 < len(first) < 760
    assert bench.run(args) == bench.run(args)


def test_json_has_both_configurations_with_the_four_kpis(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "callbacks", *SHORT, "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"without_callbacks", "with_callbacks"}
    for kpis in out.values():
        assert set(kpis) == {"lost", "sl_pct", "asa_s", "callback_on_time_pct"}
    assert out["without_callbacks"]["callback_on_time_pct"] is None
    assert 0 <= out["with_callbacks"]["callback_on_time_pct"] <= 100
    assert out["with_callbacks"]["lost"] < out["without_callbacks"]["lost"]


def test_the_counts_add_up() -> None:
    result = bench.run(bench.parse([*SHORT, "--seed", "3"]))
    offered = result["params"]["offered_callers"]
    for name in ("without_callbacks", "with_callbacks"):
        r = result[name]
        assert r["answered"] + r["abandoned"] + r["left_for_callback"] == offered
        # lost: not short, not answered live, no completed callback
        assert r["lost"] <= r["abandoned"] - r["short_abandoned"] + r["left_for_callback"]
        assert r["callbacks_completed"] == r["callbacks_by_status"].get("completed", 0)
    assert result["without_callbacks"]["callbacks"] == 0


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**31))
def test_callbacks_in_line_do_not_cost_live_callers_more_than_5_sl_points_on_any_day(seed: int) -> None:
    # Offers only, a whole day per run (a bound per day, not an average that hides a bad one): a
    # caller who takes the offer is served at the place they had and leaves live SL as an "other
    # exit", so everyone behind them waits about as they would have. Seeds 1-10: -1.1..+1.4.
    result = bench.run(bench.parse(["--seed", str(seed), "--no-abandon-callbacks"]))
    assert result["without_callbacks"]["sl_pct"] - result["with_callbacks"]["sl_pct"] <= 5.0


@settings(max_examples=3, deadline=None)
@given(st.integers(0, 2**31))
def test_paced_fill_callbacks_keep_every_day_within_a_starvation_bound(seed: int) -> None:
    # The default pacing (fill work only on spare agents, a reserve of 3 kept free, rolling SL
    # gate): callers who hung up are called back without starving live callers on any day. The
    # unpaced scheduler lost up to 21 SL points on seed 1; the paced one 1.6..8.0 on seeds 1-10
    # (the 5-point target is met on the mean, not on every day: see the README table).
    result = bench.run(bench.parse(["--seed", str(seed)]))
    without, with_ = result["without_callbacks"], result["with_callbacks"]
    assert without["sl_pct"] - with_["sl_pct"] <= 10.0
    assert with_["lost"] < without["lost"]


def test_the_ingest_benchs_callbacks_rows_do_the_callbacks_work_on_the_same_frames() -> None:
    """(d) and (e) of ``bench ingest``: the same frames as the bridge alone, and the callbacks
    really book (abandoned callers) and dial, so the ratio measures their work."""
    from bench import ingest_callbacks
    from bench.ingest import chunked, full_path
    from bench.stream import Library, generate

    chunks = chunked(generate(20_000, tenants=20, seed=3, library=Library.load()).data, 4096)
    frames = full_path(chunks)
    assert ingest_callbacks.one_engine(chunks) == ingest_callbacks.two_engines(chunks) == frames
    assert ingest_callbacks.booked(chunks) > 5


def test_announcements_are_measured_against_asterisks_and_the_hindsight_bound() -> None:
    """Ours and Asterisk's announce-holdtime on the same callers, and the best any announcement
    by place in line could have done that day (picked after the fact) beside them per seed."""
    result = bench.run(bench.parse([*SHORT, "--seed", "3"]))
    a = result["announcements"]
    assert a["ours_within_pct"] > a["asterisk_within_pct"] and a["beats_asterisk"]
    assert 50.0 < a["hindsight_within_pct"] <= 100.0
    table = bench.render_seeds([result])
    assert "hindsight %" in table and f"{a['hindsight_within_pct']:.1f}" in table
    loads = bench.render_loads({1.1: [result]})
    assert "min hindsight %" in loads
