"""The client side of ``pbx-core bench wallboard``: many wallboard websockets in one process.

Run by the benchmark as ``python -m bench.wallboard_clients --url ws://.../ws/wallboard --token ...``
and driven over stdin/stdout, one JSON object per line each way:

  stdin   ``connect K``   open K more websockets (tenants round-robin); answer when every one of
                          them has its first snapshot (or failed)
          ``measure S T`` count what arrives for S seconds, timing events stamped at or after
                          wall time T (not the warm-up's backlog); answer with the tally
          ``compare F``   (with ``--boards``) compare every client's board with the boards in the
                          JSON file F (tenant -> board); answer with how many are equal
          ``quit``        close everything and exit
  stdout  ``{"event": "connected" | "measured" | ..., ...}``

Latency is ``time.time()`` when a delta is handed to this process's reader minus the delta's
``ts``: the AMI ``Timestamp`` of the event, which the simulator stamps from its clock just before
it writes the frame. The simulator runs at speed 1 from "now", so its clock is this machine's
wall clock (``--clock-offset`` corrects what is left). Only ``caller.*`` deltas are timed: they
are made from one AMI event and carry its Timestamp (``queue.stats`` may come from a Tick).
Latencies go into 0.1 ms buckets so several client processes can be merged exactly.

With ``--boards`` each client also keeps its board as the browser does (the snapshot, then every
delta applied): ``bench soak`` compares them with the engine's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from pbx_core.domain.board import Board, apply_delta

BUCKETS_PER_MS = 10
SAMPLES = 200  # deltas kept per measurement for the bare baseline to replay
CONNECT_CONCURRENCY = 100  # in-flight handshakes: the server's listen backlog is 2048


@dataclass(slots=True)
class Tally:
    messages: int = 0
    deltas: int = 0
    snapshots: int = 0  # after the first one: resyncs (gap or overflow)
    pings: int = 0
    bytes: int = 0
    gaps: int = 0  # a delta whose seq is not the previous one + 1
    timed: int = 0
    negative: int = 0  # latencies below zero: the clocks disagree by more than the latency
    blanked: int = 0  # snapshots with no queues after a board that had some (e.g. Redis restarted empty)
    blank_s: float = 0.0  # time spent on such an empty board, summed over clients ...
    blank_max_s: float = 0.0  # ... and the longest one
    latency_buckets: Counter[int] = field(default_factory=Counter)  # 0.1 ms bucket -> count
    samples: list[dict[str, Any]] = field(default_factory=list)  # deltas, replayed by the bare baseline
    delta_types: Counter[str] = field(default_factory=Counter)


def raise_nofile() -> int:
    """Thousands of sockets need thousands of file descriptors: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Clients:
    def __init__(
        self, url: str, tokens: list[str], first: int, clock_offset: float, *, boards: bool = False
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.next_index = first  # global client index: spreads tenants evenly over processes
        self.clock_offset = clock_offset
        self.tally = Tally()
        self.since = 0.0  # time only events stamped after this (wall clock): not warm-up backlog
        self.tasks: set[asyncio.Task[None]] = set()
        self.open = 0
        self.snapshotted = 0
        self.failed: Counter[str] = Counter()
        self.closed_early = 0
        self._gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        # With ``boards``: each open client's board, as a browser would show it (keyed by its task).
        self.boards: dict[asyncio.Task[None], Board] | None = {} if boards else None

    async def connect(self, count: int) -> dict[str, Any]:
        start = time.perf_counter()
        ready = [asyncio.get_running_loop().create_future() for _ in range(count)]
        for fut in ready:
            token = self.tokens[self.next_index % len(self.tokens)]
            self.next_index += 1
            task = asyncio.create_task(self._client(token, fut))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await asyncio.gather(*ready)
        return {
            "event": "connected",
            "open": self.open,
            "snapshots": self.snapshotted,
            "failed": dict(self.failed),
            "seconds": round(time.perf_counter() - start, 3),
        }

    async def _client(self, token: str, ready: asyncio.Future[None]) -> None:
        try:
            async with self._gate:
                # No client-side keepalive: the server pings (JSON and protocol); a client that
                # closed itself when an overloaded server answered late would hide the overload.
                ws = await connect(
                    f"{self.url}?token={token}",
                    compression=None,
                    max_size=None,
                    open_timeout=120,
                    ping_interval=None,
                )
                first = json.loads(await ws.recv())
                if first.get("type") != "snapshot":
                    raise RuntimeError(f"first message is {first.get('type')!r}, not a snapshot")
            self.open += 1
            self.snapshotted += 1
            ready.set_result(None)
        except Exception as exc:  # one refused client is a figure in the report, not a crash
            self.failed[type(exc).__name__] += 1
            if not ready.done():
                ready.set_result(None)
            return
        task = asyncio.current_task()
        assert task is not None
        if self.boards is not None:
            self.boards[task] = first["board"]
        try:
            await self._read(ws, int(first["seq"]), task, bool(first["board"]["queues"]))
        except Exception:  # the server closed it: counted, so a bad run shows
            self.closed_early += 1
        finally:
            self.open -= 1
            if self.boards is not None:
                self.boards.pop(task, None)
            await ws.close()

    async def _read(self, ws: ClientConnection, seq: int, task: asyncio.Task[None], shown: bool) -> None:
        """``shown``: the first snapshot had queues. A later snapshot without any blanks the board
        until one with queues comes (timed: what a supervisor would stare at)."""
        boards = self.boards
        blank_since: float | None = None
        async for raw in ws:
            now = time.time()
            msg = json.loads(raw)
            t = self.tally  # read per message: ``measure`` swaps it
            t.messages += 1
            t.bytes += len(raw)
            kind = msg["type"]
            if kind == "delta":
                t.deltas += 1
                if msg["seq"] != seq + 1:
                    t.gaps += 1
                seq = msg["seq"]
                delta = msg["delta"]
                if boards is not None:
                    apply_delta(boards[task], delta)
                dtype = delta["type"]
                t.delta_types[dtype] += 1
                if len(t.samples) < SAMPLES:
                    t.samples.append(delta)
                if dtype.startswith("caller.") and delta["ts"] - self.clock_offset >= self.since:
                    latency_ms = (now - delta["ts"] + self.clock_offset) * 1000
                    t.timed += 1
                    if latency_ms < 0:
                        t.negative += 1
                        latency_ms = 0.0
                    t.latency_buckets[int(latency_ms * BUCKETS_PER_MS)] += 1
            elif kind == "snapshot":
                t.snapshots += 1
                seq = msg["seq"]
                has_queues = bool(msg["board"]["queues"])
                if not has_queues and shown and blank_since is None:
                    t.blanked += 1
                    blank_since = now
                elif has_queues and blank_since is not None:
                    t.blank_s += now - blank_since
                    t.blank_max_s = max(t.blank_max_s, now - blank_since)
                    blank_since = None
                shown = shown or has_queues
                if boards is not None:
                    boards[task] = msg["board"]
            elif kind == "ping":
                t.pings += 1
                await ws.send('{"type":"pong"}')

    async def measure(self, seconds: float, since: float) -> dict[str, Any]:
        self.since = since
        self.tally = Tally()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        tally, self.tally = self.tally, Tally()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        # not asdict(): it would rebuild the Counters from their (key, count) pairs
        out = {f.name: getattr(tally, f.name) for f in fields(tally)}
        out["latency_buckets"] = {str(k): v for k, v in tally.latency_buckets.items()}
        out["delta_types"] = dict(tally.delta_types)
        return {
            "event": "measured",
            "open": self.open,
            "closed_early": self.closed_early,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            **out,
        }

    def compare(self, path: str) -> dict[str, Any]:
        """How many open clients show exactly the board in ``path`` (tenant -> board) for their
        tenant; the first difference found, to say what differs."""
        with open(path, encoding="utf-8") as f:
            expected: dict[str, Board] = json.load(f)
        equal = 0
        differ: Counter[str] = Counter()
        example = ""
        for board in (self.boards or {}).values():
            tenant = board["tenant"]
            want = expected.get(tenant)
            if board == want:
                equal += 1
                continue
            differ[tenant] += 1
            if not example:
                example = f"{tenant}: {board_difference(board, want)}"
        return {"event": "compared", "equal": equal, "differ": dict(differ), "example": example}

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def board_difference(got: Board, want: Board | None) -> str:
    """Where two boards first differ, in a few words (for a failure message)."""
    if want is None:
        return "no such tenant on the other side"
    for name in sorted(set(got["queues"]) | set(want["queues"])):
        a, b = got["queues"].get(name), want["queues"].get(name)
        if a is None or b is None:
            return f"queue {name} only on {'the expected' if a is None else 'this'} side"
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return f"{name}.{key}: {json.dumps(a.get(key))[:200]} != {json.dumps(b.get(key))[:200]}"
    return "different outside the queues"


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, separators=(",", ":")), flush=True)


async def serve(args: argparse.Namespace) -> int:
    clients = Clients(args.url, args.token, args.first, args.clock_offset, boards=args.boards)
    emit({"event": "started", "nofile": raise_nofile()})
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "connect":
                emit(await clients.connect(int(arg)))
            elif cmd == "measure":
                seconds, _, since = arg.partition(" ")
                emit(await clients.measure(float(seconds), float(since or 0)))
            elif cmd == "compare":
                emit(clients.compare(arg))
            elif cmd == "quit":
                break
            elif cmd:
                emit({"event": "error", "error": f"unknown command {cmd!r}"})
    finally:
        await clients.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="ws://host:port/ws/wallboard")
    p.add_argument("--token", action="append", required=True, help="one per tenant, used round-robin")
    p.add_argument("--first", type=int, default=0, help="global index of this process's first client")
    p.add_argument("--clock-offset", type=float, default=0.0, help="simulator clock minus wall clock (s)")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed): a cheaper client")
    p.add_argument("--boards", action="store_true", help="keep every client's board (for ``compare``)")
    args = p.parse_args(argv)
    if args.uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            return uvloop.run(serve(args))
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
