"""Smoke test of ``pbx-core bench wallboard``: a tiny real run (server and client processes, real
sockets, embedded Redis), checking the JSON shape and that every client got its snapshot."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.wallboard import percentile

ROOT = Path(__file__).resolve().parents[2]


def test_percentile_reads_the_histogram() -> None:
    buckets = Counter({10: 98, 20: 1, 500: 1})  # 0.1 ms buckets: 1.0 ms x98, 2.0 ms, 50.0 ms
    assert percentile(buckets, 0.5) == 1.1
    assert percentile(buckets, 0.99) == 2.1
    assert percentile(buckets, 1.0) == 50.1


def test_small_run_reports_every_client() -> None:
    argv = [
        sys.executable, "-m", "pbx_core", "bench", "wallboard", "--json", "-q",
        "--clients", "20", "--tenants", "4", "--seconds", "2", "--settle", "0.5",
        "--warmup", "60", "--rate", "3600", "--load-rate", "0",
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    assert result["config"]["tenants"] == 4
    assert set(result["targets"]) >= {"p99_ratio", "p99_met", "kib_per_idle_client", "memory_met"}
    (run,) = result["runs"]
    assert run["clients"] == 20
    assert run["connect"]["snapshots"] == 20
    assert run["connect"]["failed"] == {}
    assert run["memory"]["idle_clients"] == 16  # one warm client per tenant is the baseline
    assert run["memory"]["rss_after_kib"] > 0
    lat = run["latency"]
    assert lat["clients_open"] == 20
    assert lat["clients_closed_early"] == 0
    assert lat["client_gaps"] == 0
    assert set(lat["latency_ms"]) == {"p50", "p90", "p99", "max", "samples", "negative"}
    # a call a second per queue for 2.5 s: callers joined, and every one of them was timed
    assert lat["latency_ms"]["samples"] > 0
    assert lat["latency_ms"]["negative"] == 0
    assert lat["latency_ms"]["p50"] <= lat["latency_ms"]["p99"] <= lat["latency_ms"]["max"]
    assert lat["delta_types"].get("caller.joined", 0) > 0
    assert "throughput" not in run  # --load-rate 0 skips it
    # the bare broadcast, same clients and deltas, measured in the same run
    bare = lat["baseline"]
    assert bare["deltas_per_s"] > 0
    assert bare["client_gaps"] == 0
    assert bare["latency_ms"]["samples"] > 0
    assert bare["p99_ratio"] == round(lat["latency_ms"]["p99"] / bare["latency_ms"]["p99"], 2)
    assert bare["throughput_ratio"] == round(lat["deltas_per_s"] / bare["deltas_per_s"], 3)
