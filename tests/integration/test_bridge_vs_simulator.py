"""The real bridge (AMI client + engine) against seeded simulator traffic over TCP, on a PBX
clock that is not ours: the bridge joins while calls are already waiting, and still ends with
exactly the simulator's ground truth for everything it saw."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from pbx_core.bridge import Bridge
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import SimulatedAsterisk
from pbx_core.simulator.traffic import Traffic, TrafficConfig
from tests.integration.test_bridge import FAST, HANG_GUARD_S, consistent, wait_until

# A year behind the wall clock: stamping anything with time.time() would show up at once.
T0 = datetime(2025, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam")).timestamp()


async def test_bridge_joining_mid_traffic_on_a_skewed_clock_matches_the_truth() -> None:
    async with SimulatedAsterisk(clock=SimClock.stepped(T0)) as ast:
        traffic = Traffic(ast, TrafficConfig(seed=7, tenants=2, queues=2, agents=2, rate=240))
        traffic.setup()
        await traffic.advance_async(20 * 60)  # traffic runs before the bridge exists
        waiting_before = {q.name: len(q.callers) for q in ast.queues.values()}
        assert sum(waiting_before.values()) > 0, "the seed should leave callers waiting"
        offered_before = {name: t.offered for name, t in ast.truth.items()}

        bridge = Bridge(ast.url, ami=FAST, tick_s=0.05)
        task = asyncio.create_task(bridge.run())
        try:
            # The resync snapshot brings in the callers already waiting, with their real waits.
            await wait_until(
                lambda: {n: len(q.callers) for n, q in bridge.state.queues.items()} == waiting_before,
                "resynced waiting callers",
            )
            for name, q in bridge.state.queues.items():
                for caller in q.callers.values():
                    assert T0 <= caller.joined_at <= T0 + 20 * 60, (name, caller)

            await traffic.advance_async(40 * 60)
            await traffic.drain_calls()
            # Everyone the simulator let go has left the engine too, resynced callers included.
            await wait_until(
                lambda: all(not q.callers for q in bridge.state.queues.values())
                and all(
                    bridge.state.queues[name].counters.offered
                    == t.offered - offered_before[name] + waiting_before[name]
                    for name, t in ast.truth.items()
                ),
                "the queues to drain in the engine",
            )
            for name, truth in ast.truth.items():
                q = bridge.state.queues[name]
                assert consistent(q), name
                c = q.counters
                # The resynced callers count as offered (they are in today's queue) and then
                # left like everyone else: answered or abandoned, never lost, never counted twice.
                assert c.offered > waiting_before[name], name
                assert (c.answered + c.abandoned, c.other_exits) == (c.offered, 0), name
                assert c.abandoned < truth.abandoned and c.answered < truth.answered, name
            assert bridge.state.now >= T0 + 60 * 60 - 1  # ticks follow Asterisk's clock
            assert bridge.state.now < T0 + 24 * 3600
        finally:
            bridge.stop()
            await asyncio.wait_for(task, HANG_GUARD_S)


async def test_a_caller_named_with_quotes_has_one_name_in_events_and_in_queue_status() -> None:
    """The simulator writes names as Asterisk 22 does: C-escaped in channel events, raw in
    QueueEntry. Join, resync after a reconnect, and abandon all show the same name."""
    name = "Ruud van 't Hof"
    async with SimulatedAsterisk(clock=SimClock.stepped(T0)) as ast:
        ast.queue("t1-support")
        bridge = Bridge(ast.url, ami=FAST, tick_s=0.05)
        task = asyncio.create_task(bridge.run())
        try:
            await wait_until(lambda: bridge.engine.counters.snapshots >= 1, "the first resync")
            caller = ast.arrive("t1-support", "0612345678", name)
            q = lambda: bridge.state.queues["t1-support"]  # noqa: E731
            await wait_until(lambda: caller.uniqueid in q().callers, "the join")
            assert q().callers[caller.uniqueid].name == name
            ast.drop()  # reconnect: the resync lists the caller from QueueStatus, raw
            await wait_until(lambda: bridge.engine.counters.snapshots >= 2, "the resync")
            assert [c.name for c in q().callers.values()] == [name]
            ast.abandon("t1-support", caller)
            await wait_until(lambda: bool(q().abandoned), "the abandon")
            assert [a.name for a in q().abandoned] == [name]
        finally:
            bridge.stop()
            await asyncio.wait_for(task, HANG_GUARD_S)
