"""The bus on a real Redis Cluster (three masters, three replicas on loopback; see
``redis_cluster.py``): the bridge's publisher, the bus readers and the web hub's wallboards run
against it with tenants spread over the slots of all three masters. A master is SIGKILLed in
the middle of traffic; once its replica has taken over, every board (Redis snapshot + stream,
every websocket wallboard) comes back equal to the engine, with nothing phantom. Deleting a
tenant works across slots too. Skips (saying why) only if redis-server cannot run a cluster."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from pbx_core.ami.client import AmiOptions
from pbx_core.bridge import Bridge
from pbx_core.bus import BusPublisher, BusReader, connect
from pbx_core.bus.keys import REDIS_ERRORS, stream_key
from pbx_core.bus.reader import stored_snapshots
from pbx_core.bus.tenants import forget_tenant
from pbx_core.domain.board import Board, tenant_board
from pbx_core.simulator.simulation import Simulation, SimulationConfig
from pbx_core.simulator.traffic import TrafficConfig
from pbx_core.web import StaticTokens, create_app, serving
from tests import conftest
from tests.integration.redis_cluster import ClusterUnsupported, LocalRedisCluster
from tests.integration.test_websocket import Wallboard, wallboard

GUARD_S = 90.0  # hang guard only
TENANTS = [f"t{i}" for i in range(1, 7)]
START = 1795338000.0  # a weekday morning, Europe/Amsterdam
FAST = AmiOptions(ping_interval_s=1.0, ping_timeout_s=3.0, action_timeout_s=10.0,
                  reconnect_min_s=0.05, reconnect_max_s=0.5)  # fmt: skip


def normalised(board: Board) -> Board:
    return json.loads(json.dumps(board))


@pytest.fixture
async def cluster() -> AsyncIterator[LocalRedisCluster]:
    try:
        async with LocalRedisCluster() as c:
            yield c
    except ClusterUnsupported as exc:
        pytest.skip(f"no Redis Cluster here: {exc}")


class _Url:
    def __init__(self, http: str) -> None:
        self.http = http

    def ws_url(self, query: str) -> str:
        return self.http.replace("http://", "ws://") + "/ws/wallboard?" + query


async def until(predicate: Any, what: str) -> None:
    await conftest.wait_until(predicate, what, limit_s=GUARD_S, poll_s=0.05)


async def test_boards_survive_a_master_failover_and_equal_the_engine(cluster: LocalRedisCluster) -> None:
    # The tenants' keys are spread over all three masters (their hash tags pick the slots).
    masters = {(await cluster.master_of(stream_key(t))).port for t in TENANTS}
    assert len(masters) == 3, "the test tenants should cover every master"

    traffic = TrafficConfig(tenants=len(TENANTS), queues=2, agents=3, rate=900, seed=11, profile="flat")
    tokens = ";".join(f"w-{t}={t}" for t in TENANTS)
    async with AsyncExitStack() as stack:
        sim = Simulation(SimulationConfig(traffic=traffic, start=START))
        await sim.start(traffic=False)
        stack.push_async_callback(sim.stop)
        publisher = BusPublisher(cluster.url)
        bridge = Bridge(sim.url, ami=FAST, sinks=[publisher], tick_s=0.5)
        publisher.on_tenant_reset = bridge.forget_deleted_tenant
        await publisher.start()
        stack.push_async_callback(publisher.close)
        bridge_task = asyncio.create_task(bridge.run())

        async def stop_bridge() -> None:
            bridge.stop()
            await asyncio.wait_for(bridge_task, GUARD_S)

        stack.push_async_callback(stop_bridge)
        app = create_app(verifier=StaticTokens.parse(tokens), redis_url=cluster.url)
        http = await stack.enter_async_context(serving(app))
        admin = connect(cluster.url)
        stack.push_async_callback(admin.aclose)
        await until(lambda: bridge.engine.counters.snapshots >= 1, "the bridge's first resync")

        boards: dict[str, Wallboard] = {}
        for t in TENANTS:
            boards[t] = await stack.enter_async_context(wallboard(_Url(http), f"token=w-{t}"))

        async def pump() -> None:
            """Read every wallboard as fast as the server sends (a browser would)."""
            async def read(wb: Wallboard) -> None:
                while True:
                    await wb.step()

            await asyncio.gather(*(read(wb) for wb in boards.values()))

        pumping = asyncio.create_task(pump())
        stack.push_async_callback(_cancel, pumping)

        def engine_board(tenant: str) -> Board:
            return normalised(tenant_board(bridge.state, tenant))

        async def every_board_equals_the_engine() -> None:
            # A barrier: a QueueStatus goes out on the same socket after everything the simulator
            # sent, and its listing is applied in order, so once it is in the engine has the rest.
            # (It is a resync too: boards must come out of it equal, nothing phantom.)
            resyncs = bridge.engine.counters.snapshots
            assert bridge.client.request_resync()
            await until(lambda: bridge.engine.counters.snapshots > resyncs, "a QueueStatus resync")
            for t in TENANTS:
                assert engine_board(t)["queues"], f"{t} has no queues: the traffic did not reach it"

                async def stored(t: str = t) -> Board | None:
                    async with asyncio.timeout(GUARD_S):
                        await publisher.flush()
                    try:
                        return normalised((await BusReader(admin, t).current()).board)
                    except REDIS_ERRORS:  # a pooled connection to the dead master, once: ask again
                        return None

                # Eventually (wrap-ups keep ending on the engine's clock): a board that stays
                # different fails with the difference.
                await eventually_equal(stored, lambda t=t: engine_board(t), f"{t}: Redis snapshot + stream")
                wb = boards[t]
                await eventually_equal(lambda wb=wb: _board(wb), lambda t=t: engine_board(t),
                                       f"{t}: its websocket wallboard")  # fmt: skip

        await sim.fast_forward(600)
        await every_board_equals_the_engine()

        # Kill the master that holds t1 (and the other tenants of its slots) in the middle of
        # traffic. Its replica takes over; the publisher buffers meanwhile, readers retry.
        victim_tenants = [t for t in TENANTS if (await cluster.master_of(stream_key(t))).port
                          == (await cluster.master_of(stream_key("t1"))).port]  # fmt: skip
        during = asyncio.create_task(_traffic_in_steps(sim, 600))
        killed, promoted = await cluster.kill_master_of(stream_key("t1"))
        await asyncio.wait_for(during, GUARD_S)
        await sim.fast_forward(120)  # and more after the failover
        assert not killed.server.running and promoted.port != killed.port
        assert publisher.stats.outages >= 1, "the publisher should have noticed the dead master"
        await every_board_equals_the_engine()
        assert victim_tenants
        # /metrics' read of every tenant's snapshot at once: one pipeline over all three masters.
        assert set(await stored_snapshots(admin, TENANTS)) == set(TENANTS)

        # Deleting a tenant on the cluster: its keys go (several slots in one pipeline), the
        # publisher notices the epoch, the engine forgets and resyncs; every board equals again.
        await forget_tenant(admin, "t2")
        await sim.fast_forward(60)
        await until(lambda: publisher.stats.tenants_reset >= 1, "the publisher noticed t2's deletion")
        await every_board_equals_the_engine()


async def _board(wb: Wallboard) -> Board | None:
    return normalised(wb.board) if wb.board is not None else None


async def eventually_equal(actual: Any, expected: Any, what: str) -> None:
    """Poll ``await actual()`` against ``expected()`` until they agree; after the hang guard,
    assert they do (so the failure shows the difference)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD_S
    while True:
        got, want = await actual(), expected()
        if got == want or loop.time() > deadline:
            assert got == want, what
            return
        await asyncio.sleep(0.05)


async def _traffic_in_steps(sim: Simulation, seconds: float, step: float = 20.0) -> None:
    done = 0.0
    while done < seconds:
        await sim.fast_forward(step)
        done += step
        await asyncio.sleep(0.05)  # spread it over the failover window


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
