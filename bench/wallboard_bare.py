"""The baseline of ``pbx-core bench wallboard``: a bare websocket broadcast server.

The same stack as the wallboard (Starlette + uvicorn, with the web server's own uvicorn config and
websocket protocol class) and the same client processes, but no pbx-core logic: no AMI, no bus,
no boards. Each tenant's deltas are replayed from ``--samples`` (real deltas captured by the
clients during the pbx-core measurement), Poisson at ``traffic R`` deltas per second per tenant,
each one stamped ``ts = now``, encoded once and appended to every client's queue; one writer task per
client sends. So its latency is the floor of broadcasting those payloads to those sockets on
this machine, and its throughput the same deltas/s the pbx-core run delivered (or what it could).

Driven over stdin/stdout in JSON lines like ``bench.wallboard``'s server: ``ready`` on start;
``traffic R`` · ``rss`` · ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pbx_core.web.server import serving

from .wallboard import _emit, _rss_kib
from .wallboard_clients import raise_nofile


class BareClient:
    __slots__ = ("queue", "wake", "ws")

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.queue: deque[str] = deque()
        self.wake = asyncio.Event()

    async def writer(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.queue:
                    await self.ws.send_text(self.queue.popleft())


class Bare:
    def __init__(self, samples: list[dict[str, Any]]) -> None:
        # Only the payload matters: no board, so any queue name will do.
        self.samples = samples or [{"v": 1, "type": "caller.joined", "queue": "q", "data": {}}]
        self.tenants: dict[str, set[BareClient]] = {}
        self.seq: dict[str, int] = {}

    async def endpoint(self, ws: WebSocket) -> None:
        tenant = ws.query_params.get("token", "").removeprefix("demo-")
        await ws.accept()
        client = BareClient(ws)
        seq = self.seq.setdefault(tenant, 0)
        client.queue.append(
            json.dumps({"type": "snapshot", "seq": seq, "board": {"tenant": tenant, "queues": {"q": {}}}})
        )
        client.wake.set()
        self.tenants.setdefault(tenant, set()).add(client)
        writer = asyncio.create_task(client.writer())
        try:
            while True:
                await ws.receive_text()  # pongs
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.tenants[tenant].discard(client)
            writer.cancel()

    async def broadcast(self, tenant: str, index: int, per_s: float) -> None:
        # Poisson arrivals, independent per tenant, like the simulator's calls: a fixed interval
        # would fire every tenant at once and make the baseline burstier than pbx-core's traffic.
        rng = random.Random(index)
        i = index * 7
        next_at = time.monotonic()
        while True:
            next_at += rng.expovariate(per_s)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            delta = {**self.samples[i % len(self.samples)], "tenant": tenant, "ts": time.time()}
            i += 1
            self.seq[tenant] += 1
            now = f"{time.time():.3f}"
            text = (
                f'{{"type":"delta","seq":{self.seq[tenant]},"server_time":{now},"pbx_time":{now},'
                f'"delta":{json.dumps(delta, separators=(",", ":"), ensure_ascii=False)}}}'
            )
            for c in self.tenants.get(tenant, ()):
                c.queue.append(text)
                c.wake.set()


async def _serve(opts: argparse.Namespace) -> int:
    """``opts.samples``: the deltas themselves (read before the loop starts)."""
    raise_nofile()
    bare = Bare(opts.samples)
    app = Starlette(routes=[WebSocketRoute("/ws/wallboard", bare.endpoint)])
    tenants = [f"t{i}" for i in range(opts.tenants)]
    tasks: list[asyncio.Task[None]] = []
    async with serving(app, "127.0.0.1", 0) as url:
        _emit({"event": "ready", "url": url, "pid": os.getpid(), "tokens": [f"demo-{t}" for t in tenants],
               "clock_offset_s": 0.0, "backlog_s": 0.0})  # fmt: skip
        while line := await asyncio.to_thread(sys.stdin.readline):
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "rss":
                gc.collect()
                _emit({"event": "rss", "rss_kib": _rss_kib()})
            elif cmd == "traffic":
                per_s = float(arg)
                if per_s > 0:
                    tasks = [asyncio.create_task(bare.broadcast(t, i, per_s)) for i, t in enumerate(tenants)]
                _emit({"event": "traffic", "wall": time.time(), "clock_offset_s": 0.0})
            elif cmd == "stats":
                _emit({"event": "stats"})
            elif cmd == "quit":
                break
        for t in tasks:
            t.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="bench wallboard baseline: a bare websocket broadcast server")
    p.add_argument("--tenants", type=int, default=10)
    p.add_argument("--samples", required=True, help="JSON list of delta objects to replay")
    opts = p.parse_args(argv)
    opts.samples = json.loads(Path(opts.samples).read_text(encoding="utf-8"))
    return asyncio.run(_serve(opts))


if __name__ == "__main__":
    sys.exit(main())
