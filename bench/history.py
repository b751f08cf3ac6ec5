"""``pbx-core bench history``: the history writer's throughput against a raw consumer, on the
same stream entries in the same run.

Realistic traffic (``bench/stream.py``: whole call flows from the recorded Asterisk 22 streams,
over ``--tenants`` tenants) goes through the engine and the bus publisher into a private Redis
(not timed). Then, each on a consumer group of its own over exactly those entries:

  (a) raw      XREADGROUP + XACK of every tenant's stream in the writer's batches, nothing else:
               the floor any consumer group reader pays
  (b) writer   the history writer: read, decode, fold into rows, write them to SQL (a temp SQLite
               file, or ``--database``) in one transaction per batch, XACK

Reported: entries/s of each, b/a, and b against the target: 20x the event rate of 100 calls/s,
where the event rate per call is measured on this very stream (entries ÷ calls offered).
Wall-clock time (Redis is another process; SQLite's driver runs in a thread); the median of
``--rounds`` rounds, measured in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pbx_core.bus import BusPublisher, EmbeddedRedis, connect, stream_key
from pbx_core.bus.keys import TENANTS_KEY
from pbx_core.history.writer import HistoryWriter
from pbx_core.ingest import Ingest
from pbx_core.provisioning import db

from .stream import generate

TARGET_CALLS_PER_S = 100
TARGET_FACTOR = 20


async def _publish(url: str, args: argparse.Namespace) -> tuple[int, int, list[str]]:
    info = generate(args.frames, tenants=args.tenants, seed=args.seed)
    ingest = Ingest()
    deltas = ingest.feed(info.data)
    publisher = BusPublisher(url, maxlen=10_000_000, buffer_max=10_000_000)
    await publisher.start()
    await publisher.publish(deltas)
    await publisher.flush()
    await publisher.close()
    calls = sum(q.counters.offered for q in ingest.state.queues.values())
    redis = connect(url)
    tenants = sorted(m.decode() for m in await redis.smembers(TENANTS_KEY))
    pipe = redis.pipeline(transaction=False)
    for t in tenants:
        pipe.xlen(stream_key(t))
    entries = sum(await pipe.execute())
    await redis.aclose()
    return entries, calls, tenants


async def _raw(url: str, tenants: list[str], group: str, batch: int, total: int) -> float:
    redis = connect(url)
    pipe = redis.pipeline(transaction=False)
    for t in tenants:
        pipe.xgroup_create(stream_key(t), group, id="0")
    await pipe.execute()
    count = max(10, batch // len(tenants))
    done = 0
    start = time.perf_counter()
    while done < total:
        pipe = redis.pipeline(transaction=False)
        for t in tenants:
            pipe.xreadgroup(group, "raw", {stream_key(t): ">"}, count=count)
        replies = await pipe.execute()
        pipe = redis.pipeline(transaction=False)
        for reply in replies:
            for stream, items in reply or ():
                pipe.xack(stream, group, *[i for i, _ in items])
                done += len(items)
        await pipe.execute()
    elapsed = time.perf_counter() - start
    await redis.aclose()
    return elapsed


async def _writer(url: str, database: str, group: str, batch: int, total: int) -> float:
    import pbx_core.history.writer as w

    await db.upgrade(database)
    engine = db.make_engine(database)
    writer = HistoryWriter(
        db.session_factory(engine), url, batch_max=batch, poll_s=0.001, tenants_every_s=3600
    )
    w.GROUP = group  # a fresh group per round, over the same entries
    start = time.perf_counter()
    await writer.start()
    # Polled, every 20 ms: a tighter poll steals the GIL from the SQLite driver thread at each
    # row (a convoy that slows the writer several times); 20 ms is ~1% of a round.
    while writer.stats.entries < total or writer._batch is not None:  # noqa: ASYNC110 (last: its commit and XACK)
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - start
    await writer.close()
    await engine.dispose()
    return elapsed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    def progress(text: str) -> None:
        if not args.quiet:
            print(f"bench history: {text}", file=sys.stderr, flush=True)

    async with EmbeddedRedis() as server:
        progress(
            f"generating ~{args.frames:,} AMI frames over {args.tenants} tenants and publishing them ..."
        )
        total, calls, tenants = await _publish(server.url, args)
        per_call = total / max(1, calls)
        progress(f"{total:,} stream entries, {calls:,} calls ({per_call:.1f} entries per call)")
        raw_s: list[float] = []
        writer_s: list[float] = []
        with tempfile.TemporaryDirectory(prefix="pbx-bench-history-") as tmp:
            for r in range(args.rounds):
                raw_s.append(await _raw(server.url, tenants, f"raw{r}", args.batch, total))
                database = args.database or f"sqlite:///{Path(tmp) / f'history{r}.db'}"
                if args.database:
                    await _drop_rows(database)
                writer_s.append(await _writer(server.url, database, f"history{r}", args.batch, total))
                progress(
                    f"round {r + 1}: raw {total / raw_s[-1]:,.0f}/s, writer {total / writer_s[-1]:,.0f}/s"
                )
    raw_rate = total / statistics.median(raw_s)
    writer_rate = total / statistics.median(writer_s)
    target = TARGET_FACTOR * TARGET_CALLS_PER_S * per_call
    return {
        "entries": total,
        "calls": calls,
        "entries_per_call": round(per_call, 2),
        "tenants": len(tenants),
        "batch": args.batch,
        "database": "postgresql" if args.database and "postgres" in args.database else "sqlite",
        "raw_entries_per_s": round(raw_rate),
        "writer_entries_per_s": round(writer_rate),
        "writer_over_raw": round(writer_rate / raw_rate, 3),
        "target_entries_per_s": round(target),
        "writer_over_target": round(writer_rate / target, 2),
        "met": writer_rate >= target,
    }


async def _drop_rows(database: str) -> None:
    from sqlalchemy import text

    await db.upgrade(database)
    engine = db.make_engine(database)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM history_calls"))
        await conn.execute(text("DELETE FROM history_agent_sessions"))
    await engine.dispose()


def main(args: argparse.Namespace) -> int:
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    r = result
    print(f"history writer, {r['entries']:,} entries ({r['calls']:,} calls, {r['entries_per_call']} entries "
          f"per call, {r['tenants']} tenants, batch {r['batch']}, {r['database']})")  # fmt: skip
    print(f"  (a) raw XREADGROUP+XACK  {result['raw_entries_per_s']:>10,} entries/s")
    print(f"  (b) history writer       {r['writer_entries_per_s']:>10,} entries/s   "
          f"b/a = {r['writer_over_raw']}")  # fmt: skip
    verdict = "met" if result["met"] else "BELOW"
    print(f"  target: {TARGET_FACTOR}x the event rate of {TARGET_CALLS_PER_S} calls/s = "
          f"{r['target_entries_per_s']:,} entries/s; "
          f"b/target = {r['writer_over_target']} ({verdict})")  # fmt: skip
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "history", help="history writer throughput vs a raw consumer group", description=__doc__
    )
    p.add_argument(
        "--frames", type=int, default=300_000, help="AMI frames of generated traffic (default 300000)"
    )
    p.add_argument("--tenants", type=int, default=50, help="tenants in the traffic (default 50)")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same traffic")
    p.add_argument(
        "--batch", type=int, default=5000, help="entries per batch, as PBX_HISTORY_BATCH (default 5000)"
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    p.add_argument(
        "--database", help="write to this database instead of a temp SQLite file (its history is emptied)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=main)
