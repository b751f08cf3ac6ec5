"""``pbx-core bench soak`` for a few seconds: its own Redis killed and restarted once under a
bridge, two ``pbx-core web`` processes and a dozen wallboards. It must pass, and its figures must
show that what it checks happened: the outage reached every client (a fresh snapshot each), deltas
flowed before and after it, and every client's board was compared with the engine's."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

CLIENTS = 12
TENANTS = 4


def test_a_short_soak_with_one_redis_restart_passes_on_real_figures() -> None:
    argv = [
        sys.executable, "-m", "pbx_core", "bench", "soak", "--json", "-q",
        "--minutes", "0.3", "--clients", str(CLIENTS), "--tenants", str(TENANTS),
        "--restarts", "1", "--outage", "1", "--warmup", "60", "--rate", "120",
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)

    checks = {c["criterion"]: c["passed"] for c in result["verdicts"]["checks"]}
    assert checks == {
        "RSS bounded": True,
        "no delta lost": True,
        "clients connected throughout": True,
        "Redis killed and restarted 1x": True,
        "every board equals the engine": True,
    }
    clients = result["clients"]
    assert clients["deltas"] > 0 and clients["gaps"] == 0
    assert clients["deltas_after_last_restart"] > 0
    # Redis restarted empty: every client was sent a fresh board, none was left on a stale one.
    assert clients["snapshots"] >= CLIENTS
    assert clients["open_at_end"] == CLIENTS
    (restart,) = result["restarts"]
    assert restart["restarted_s"] - restart["killed_s"] >= 1.0
    assert result["bridge"]["publisher"]["outages"] >= 1
    assert result["bridge"]["publisher"]["snapshot_rewrites"] >= TENANTS
    boards = result["boards"]
    assert (boards["redis_equal"], boards["clients_equal"]) == (TENANTS, CLIENTS)
    # Every process of the shape was sampled all along, each with its own figures.
    assert set(result["rss"]) == {"redis", "sim", "bridge", "web1", "web2", "clients0", "clients1"}
    for role, rss in result["rss"].items():
        assert rss["samples"] >= 5, role
        assert 0 < rss["start_kib"] <= rss["peak_kib"] and rss["end_kib"] <= rss["peak_kib"], role
