"""The simulator and the bridge of ``pbx-core bench soak``, each in a process of its own.

Run by the soak as ``python -m bench.soak_children sim|bridge ...`` (see ``bench.wallboard.Child``)
and driven over stdin/stdout, one JSON object per line each way; logs go to stderr.

  sim     the simulated Asterisk (``Simulation``, as ``pbx-core simulate`` runs it) on a free
          loopback port: ``ready {url, pid}``; commands ``forward S`` (play S simulated seconds as
          fast as the bridge reads), ``traffic`` (live traffic on the sped-up clock), ``pause``
          (no more calls, so the boards can settle), ``stats``, ``quit``
  bridge  ``pbx-core bridge`` as it runs in production (``bridge_with_bus``: PBX_AMI_URL,
          PBX_REDIS_URL), plus a window on its engine: ``ready`` once logged in and resynced;
          ``caught-up`` (everything received is applied and in Redis), ``boards`` (the engine's
          board of every tenant, once caught up), ``stats``, ``quit``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

from pbx_core.config import Settings
from pbx_core.domain.board import tenant_board

from .wallboard import caught_up
from .wallboard_clients import emit

GUARD_S = 120.0  # hang guard for the bridge's first login and resync


async def _commands() -> asyncio.Queue[str]:
    """stdin lines, read in a thread so the loop keeps running (EOF reads as ``quit``)."""
    lines: asyncio.Queue[str] = asyncio.Queue()

    async def pump() -> None:
        while line := await asyncio.to_thread(sys.stdin.readline):
            await lines.put(line.strip())
        await lines.put("quit")

    _readers.add(asyncio.create_task(pump()))  # held: a task nobody references may be collected
    return lines


_readers: set[asyncio.Task[None]] = set()


async def run_sim(args: argparse.Namespace) -> int:
    from pbx_core.simulator.simulation import Simulation, SimulationConfig
    from pbx_core.simulator.traffic import TrafficConfig

    traffic = TrafficConfig(
        tenants=args.tenants, queues=args.queues, agents=args.agents, rate=args.rate, seed=args.seed,
        profile="flat",  # the same load all through the run
    )  # fmt: skip
    sim = Simulation(SimulationConfig(traffic=traffic, speed=args.speed, start=args.start))
    await sim.start(traffic=False)
    try:
        emit({"event": "ready", "url": sim.url_text, "pid": os.getpid()})
        lines = await _commands()
        while (line := await lines.get()) != "quit":
            cmd, _, arg = line.partition(" ")
            if cmd == "forward":
                await sim.fast_forward(float(arg))
                emit({"event": "forwarded", "sim": sim.totals()})
            elif cmd == "traffic":
                sim.start_traffic()
                emit({"event": "traffic"})
            elif cmd == "pause":
                await sim.stop_traffic()
                emit({"event": "paused", "sim": sim.totals()})
            elif cmd == "stats":
                emit({"event": "stats", "sim": sim.totals(), "status": sim.status_line()})
            elif cmd:
                emit({"event": "error", "error": f"unknown command {cmd!r}"})
    finally:
        await sim.stop()
    return 0


async def run_bridge(args: argparse.Namespace) -> int:
    from pbx_core.bridge import bridge_with_bus

    settings = Settings.from_env()
    async with bridge_with_bus(settings) as (bridge, publisher):
        assert publisher is not None, "the soak's bridge needs PBX_REDIS_URL"
        task = asyncio.create_task(bridge.run(fail_fast_auth=True), name="bridge")
        try:
            async with asyncio.timeout(GUARD_S):
                await bridge.client.wait_connected()
                while bridge.engine.counters.snapshots < 1:  # noqa: ASYNC110 - a counter, no signal
                    await asyncio.sleep(0.05)
            emit({"event": "ready", "pid": os.getpid()})
            lines = await _commands()
            while (line := await lines.get()) != "quit":
                if task.done():  # the bridge died: say so rather than answer from a dead engine
                    emit({"event": "error", "error": f"bridge stopped: {task.exception()!r}"})
                    return 1
                if line == "caught-up":
                    emit({"event": "caught-up", "seconds": await caught_up(bridge, publisher)})
                elif line == "boards":
                    await caught_up(bridge, publisher)
                    state = bridge.state
                    tenants = sorted({q.tenant for q in state.queues.values()})
                    emit({"event": "boards", "boards": {t: tenant_board(state, t) for t in tenants}})
                elif line == "stats":
                    emit({"event": "stats", **bridge.stats(), "bus": publisher.stats.as_dict()})
                elif line:
                    emit({"event": "error", "error": f"unknown command {line!r}"})
        finally:
            bridge.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="bench soak: the simulator or the bridge, driven over stdin")
    sub = p.add_subparsers(dest="role", required=True)
    sim = sub.add_parser("sim")
    sim.add_argument("--tenants", type=int, default=10)
    sim.add_argument("--queues", type=int, default=2)
    sim.add_argument("--agents", type=int, default=4)
    sim.add_argument("--rate", type=float, default=60.0)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--speed", type=float, default=10.0)
    sim.add_argument("--start", type=float, default=None, help="virtual epoch of the start")
    sub.add_parser("bridge")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    return asyncio.run(run_sim(args) if args.role == "sim" else run_bridge(args))


if __name__ == "__main__":
    sys.exit(main())
