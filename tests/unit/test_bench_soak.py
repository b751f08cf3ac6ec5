"""The judgements of ``pbx-core bench soak`` on figures made up to sit either side of them: a
process that settles is bounded and one that keeps growing is not; any lost delta, closed
client, missing outage or unequal board fails the run."""

from __future__ import annotations

import copy
from typing import Any

from bench.soak import RSS_SLACK_KIB, render, rss_verdict, verdicts

MIB = 1024


def test_a_process_that_settles_is_bounded() -> None:
    # Grows while clients connect and Redis restarts, then stays (with allocator noise).
    samples = [(t, 60 * MIB + min(t, 100) * 100 + (t % 7) * 50) for t in range(0, 600, 5)]
    verdict = rss_verdict(samples, 600)
    assert verdict["bounded"]
    assert verdict["start_kib"] == 60 * MIB
    assert verdict["peak_kib"] == max(k for _, k in samples)
    assert verdict["end_kib"] == samples[-1][1]


def test_a_process_that_keeps_growing_is_not() -> None:
    # 0.2 MiB a second: 40 MiB over the last third, past 10 % + the slack of a 100 MiB process.
    samples = [(t, 60 * MIB + t * 205) for t in range(0, 600, 5)]
    verdict = rss_verdict(samples, 600)
    assert not verdict["bounded"]
    assert verdict["late_peak_kib"] > verdict["bound_kib"]


def test_a_spike_during_an_outage_that_comes_back_down_is_bounded() -> None:
    samples = [(t, 80 * MIB + (40 * MIB if 200 <= t < 215 else 0)) for t in range(0, 600, 5)]
    assert rss_verdict(samples, 600)["bounded"]
    assert rss_verdict([], 600)["bounded"] is False  # never sampled: nothing shows it was bounded
    assert RSS_SLACK_KIB > 0


def passing() -> dict[str, Any]:
    bounded = {"start_kib": 1, "peak_kib": 2, "end_kib": 2, "bound_kib": 3, "bounded": True, "judged": True}
    return {
        "config": {"minutes": 10, "clients": 500, "client_procs": 2, "web": 2, "tenants": 10, "queues": 2,
                   "agents": 4, "rate": 60, "speed": 10, "restarts": 2, "outage_s": 10, "cpus": 2},
        "seconds": 600.0,
        "sim": {"offered": 1000},
        "restarts": [{"killed_s": 150, "restarted_s": 160}, {"killed_s": 300, "restarted_s": 310}],
        "rss": {"bridge": dict(bounded), "web1": dict(bounded), "clients0": {**bounded, "bounded": False,
                                                                              "judged": False}},
        "clients": {"deltas": 10_000, "gaps": 0, "snapshots": 2000, "open_at_end": 500, "closed_early": 0,
                    "refused": {}, "deltas_after_last_restart": 4000},
        "bridge": {"publisher": {"dropped": 0, "outages": 2, "snapshot_rewrites": 20}},
        "boards": {"equal": True, "attempts": 1, "tenants": 10, "redis_equal": 10, "clients_equal": 500,
                   "clients_differ": 0, "difference": ""},
    }  # fmt: skip


def failing(change: str) -> dict[str, Any]:
    r = copy.deepcopy(passing())
    if change == "leak":
        r["rss"]["web1"]["bounded"] = False
    elif change == "gap":
        r["clients"]["gaps"] = 1
    elif change == "publisher drop":
        r["bridge"]["publisher"]["dropped"] = 3
    elif change == "client closed":
        r["clients"]["open_at_end"], r["clients"]["closed_early"] = 499, 1
    elif change == "outage unseen":
        r["bridge"]["publisher"]["outages"] = 1
    elif change == "silent after restart":
        r["clients"]["deltas_after_last_restart"] = 0
    elif change == "board differs":
        r["boards"].update(
            equal=False, clients_equal=499, clients_differ=1, difference="t3: t3-sales.waiting"
        )
    return r


def test_each_criterion_fails_on_its_own_evidence() -> None:
    assert verdicts(passing())["passed"]
    assert "soak PASSED" in render(passing())
    expected = {
        "leak": "RSS bounded",
        "gap": "no delta lost",
        "publisher drop": "no delta lost",
        "client closed": "clients connected throughout",
        "outage unseen": "Redis killed and restarted 2x",
        "silent after restart": "Redis killed and restarted 2x",
        "board differs": "every board equals the engine",
    }
    for change, criterion in expected.items():
        v = verdicts(failing(change))
        assert not v["passed"], change
        assert [c["criterion"] for c in v["checks"] if not c["passed"]] == [criterion], change
        assert "soak FAILED" in render(failing(change))
    assert "t3-sales.waiting" in render(failing("board differs"))
