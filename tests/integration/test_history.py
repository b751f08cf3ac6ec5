"""The history writer against a real Redis (a private EmbeddedRedis) and real SQL: the rows it
writes add up to exactly what the live engine counted, for every recorded Asterisk stream and for
a seeded simulator day over TCP; a redelivered batch writes nothing twice; a Redis restart and a
database outage are waited out."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, pool, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_core.bridge import Bridge
from pbx_core.bus import BusPublisher, EmbeddedRedis, connect, stream_key
from pbx_core.bus.tenants import forget_tenant
from pbx_core.domain.queue_state import LiveState
from pbx_core.history import store
from pbx_core.history.writer import GROUP, HistoryWriter
from pbx_core.ingest import Ingest
from pbx_core.provisioning import db
from pbx_core.provisioning.models import HistoryAgentSession, HistoryCall
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import SimulatedAsterisk
from pbx_core.simulator.traffic import Traffic, TrafficConfig
from tests.conftest import fixture_bytes
from tests.conftest import wait_until as until
from tests.integration.databases import BACKENDS, throwaway_database
from tests.integration.test_bridge import FAST, HANG_GUARD_S

pytestmark = pytest.mark.asyncio(loop_scope="module")

FIXTURES = ("answered", "abandoned", "ringnoanswer", "members", "status_busy", "status_busy_escaped_names",
            "reload", "abandoned_no_timestamps")  # fmt: skip
Q_ = "t1-support"
T0 = datetime(2025, 11, 24, 8, 0, tzinfo=ZoneInfo("Europe/Amsterdam")).timestamp()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[EmbeddedRedis]:
    redis = EmbeddedRedis()
    await redis.start()
    yield redis
    await redis.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def redis_url(server: EmbeddedRedis) -> AsyncIterator[str]:
    if not server.running:  # a failed outage test may have left it down
        await server.start()
    client = connect(server.url)
    await client.flushall()
    await client.aclose()
    yield server.url


async def migrated(url: str, **engine_kwargs: Any) -> tuple[Any, async_sessionmaker[AsyncSession]]:
    await db.upgrade(url)
    engine = db.make_engine(url, **engine_kwargs)
    return engine, db.session_factory(engine)


@pytest_asyncio.fixture(loop_scope="module", params=BACKENDS)
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with throwaway_database(request.param, tmp_path) as url:
        engine, factory = await migrated(url)
        yield factory
        await engine.dispose()


@pytest_asyncio.fixture(loop_scope="module")
async def sqlite_sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine, factory = await migrated(f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    yield factory
    await engine.dispose()


def engine_totals(state: LiveState, tenant: str) -> dict[str, dict[str, int]]:
    return {
        name: q.counters.as_dict() | {"waiting": len(q.callers)}
        for name, q in state.queues.items() if q.tenant == tenant
    }  # fmt: skip


async def history_totals(
    sessions: async_sessionmaker[AsyncSession], state: LiveState, tenant: str
) -> dict[str, dict[str, int]]:
    levels = {name: q.service_level_s for name, q in state.queues.items()}
    async with sessions() as session:
        found = await store.totals(session, tenant, levels)
    zeros = dict.fromkeys(next(iter(engine_totals(state, tenant).values()), {}), 0)
    return {name: found.get(name, zeros) for name, q in state.queues.items() if q.tenant == tenant}


async def caught_up(writer: HistoryWriter) -> None:
    async with asyncio.timeout(HANG_GUARD_S):
        while not await writer.caught_up():  # noqa: ASYNC110 (a state in Redis and SQL, not an event)
            await asyncio.sleep(0.02)


async def flushed(publisher: BusPublisher) -> None:
    async with asyncio.timeout(HANG_GUARD_S):
        await publisher.flush()


async def row_counts(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessions() as session:
        calls = await session.scalar(select(func.count()).select_from(HistoryCall))
        agents = await session.scalar(select(func.count()).select_from(HistoryAgentSession))
    return int(calls or 0), int(agents or 0)


async def all_rows(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[Any, ...]]:
    async with sessions() as session:
        calls = (await session.execute(select(HistoryCall).order_by(HistoryCall.id))).scalars().all()
        agents = (
            await session.execute(select(HistoryAgentSession).order_by(HistoryAgentSession.id))
        ).scalars()
        return [tuple((k, v) for k, v in vars(r).items() if not k.startswith("_")) for r in [*calls, *agents]]


def move_all(source: Path, pattern: str, target: Path) -> None:
    for f in source.glob(pattern):
        shutil.move(f, target / f.name)


# ---------------------------------------------------------------- the day's totals


@pytest.mark.parametrize("name", FIXTURES)
async def test_every_recording_writes_what_the_engine_counted(
    redis_url: str, sessions: async_sessionmaker[AsyncSession], name: str
) -> None:
    ingest = Ingest(start_ts=T0)
    deltas = ingest.feed(fixture_bytes(name))
    publisher = BusPublisher(redis_url)
    await publisher.start()
    writer = HistoryWriter(sessions, redis_url, poll_s=0.02, tenants_every_s=0.05)
    await writer.start()
    try:
        await publisher.publish(deltas)
        await flushed(publisher)
        await caught_up(writer)
        expected = engine_totals(ingest.state, "t1")
        # Every recording has calls, except "members" (agents coming and going) and "reload" (a
        # queue recreated, nothing else): all zero there, and the history must not invent any.
        assert expected
        if name not in ("members", "reload"):
            assert any(t["offered"] for t in expected.values())
        if name == "members":
            assert writer.stats.sessions_written
        assert await history_totals(sessions, ingest.state, "t1") == expected
        assert writer.stats.gaps == 0 and writer.stats.entries > len(deltas) // 2
    finally:
        await writer.close()
        await publisher.close()


async def test_agent_sessions_hold_logins_pauses_and_missed_rings(
    redis_url: str, sqlite_sessions: async_sessionmaker[AsyncSession]
) -> None:
    ingest = Ingest(start_ts=T0)
    deltas = ingest.feed(fixture_bytes("ringnoanswer")) + ingest.feed(fixture_bytes("members"))
    publisher = BusPublisher(redis_url)
    await publisher.start()
    writer = HistoryWriter(sqlite_sessions, redis_url, poll_s=0.02, tenants_every_s=0.05)
    await writer.start()
    try:
        await publisher.publish(deltas)
        await flushed(publisher)
        await caught_up(writer)
    finally:
        await writer.close()
        await publisher.close()
    async with sqlite_sessions() as session:
        rows = (await session.execute(select(HistoryAgentSession))).scalars().all()
    kinds = {r.kind for r in rows}
    assert kinds == {"login", "pause", "ring_no_answer"}
    rna = [r for r in rows if r.kind == "ring_no_answer"]
    assert rna and all(r.uniqueid and r.ring_ms and r.ring_ms > 0 for r in rna)
    assert len(rna) == sum(q.counters.ring_no_answer for q in ingest.state.queues.values())
    pauses = [r for r in rows if r.kind == "pause"]
    closed = [p for p in pauses if p.ended_at is not None]
    assert closed and all(p.ended_at >= p.started_at for p in closed)
    # The members recording removes a dynamic member: its login session is closed.
    assert any(r.kind == "login" and r.ended_at is not None for r in rows)


async def test_a_seeded_simulator_day_over_tcp_writes_what_the_engine_counted(
    redis_url: str, sqlite_sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with SimulatedAsterisk(clock=SimClock.stepped(T0)) as ast:
        traffic = Traffic(ast, TrafficConfig(seed=11, tenants=2, queues=2, agents=3, rate=180))
        traffic.setup()
        publisher = BusPublisher(redis_url)
        await publisher.start()
        bridge = Bridge(ast.url, ami=FAST, sinks=[publisher], tick_s=0.05)
        task = asyncio.create_task(bridge.run())
        writer = HistoryWriter(sqlite_sessions, redis_url, poll_s=0.02, tenants_every_s=0.05)
        await writer.start()
        try:
            await until(
                lambda: bridge.engine.counters.snapshots >= 1, "the first resync", limit_s=HANG_GUARD_S
            )
            await traffic.advance_async(4 * 3600)
            await traffic.drain_calls()
            await until(lambda: all(not q.callers for q in bridge.state.queues.values())
                        and sum(q.counters.handled for q in bridge.state.queues.values())
                        == sum(q.counters.answered for q in bridge.state.queues.values()),
                        "the calls to end in the engine", limit_s=HANG_GUARD_S)  # fmt: skip
            await flushed(publisher)
            await caught_up(writer)
            tenants = {q.tenant for q in bridge.state.queues.values()}
            assert len(tenants) == 2
            offered = 0
            for tenant in sorted(tenants):
                expected = engine_totals(bridge.state, tenant)
                assert await history_totals(sqlite_sessions, bridge.state, tenant) == expected, tenant
                offered += sum(t["offered"] for t in expected.values())
            assert offered > 200  # a real day's worth, not a handful
        finally:
            await writer.close()
            bridge.stop()
            await asyncio.wait_for(task, HANG_GUARD_S)
            await publisher.close()


async def test_entries_that_are_not_deltas_are_skipped_and_counted_and_the_rest_written(
    redis_url: str, sqlite_sessions: async_sessionmaker[AsyncSession]
) -> None:
    ingest = Ingest(start_ts=T0)
    deltas = ingest.feed(fixture_bytes("abandoned"))
    publisher = BusPublisher(redis_url)
    await publisher.start()
    await publisher.publish(deltas[:1])
    await flushed(publisher)
    redis = connect(redis_url)
    garbage = [
        {"d": "not json", "n": 1},
        {"d": "[1, 2]", "n": 2},
        {"x": "no fields we know"},
        {
            "d": '{"type": "caller.answered", "tenant": "t1", "queue": "t1-support", "ts": 1, "data": {}}',
            "n": 3,
        },
    ]
    for fields in garbage:
        await redis.xadd(stream_key("t1"), fields)  # type: ignore[arg-type]
    await redis.aclose()
    writer = HistoryWriter(sqlite_sessions, redis_url, poll_s=0.02, tenants_every_s=0.05)
    await writer.start()
    try:
        await publisher.publish(deltas[1:])
        await flushed(publisher)
        await caught_up(writer)
        assert writer.stats.bad_entries == 1  # the last: delta-shaped, but not a delta we can fold
        assert await history_totals(sqlite_sessions, ingest.state, "t1") == engine_totals(ingest.state, "t1")
    finally:
        await writer.close()
        await publisher.close()


# ---------------------------------------------------------------- redelivery


async def test_a_batch_redelivered_after_a_crash_before_its_ack_writes_nothing_twice(
    redis_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ingest = Ingest(start_ts=T0)
    deltas = ingest.feed(fixture_bytes("status_busy")) + ingest.feed(fixture_bytes("answered"))
    publisher = BusPublisher(redis_url)
    await publisher.start()
    await publisher.publish(deltas)
    await flushed(publisher)
    # A writer that reads, folds and commits one batch, then dies before its XACK.
    crashed = HistoryWriter(sessions, redis_url, batch_max=100_000)
    await crashed._refresh_tenants()
    batch = await crashed._read()  # its own pending entries first: none
    batch = batch or await crashed._read()
    assert batch is not None
    await crashed._fold(batch)
    await crashed._write(batch)
    await crashed.close()
    written = await all_rows(sessions)
    redis = connect(redis_url)
    pending = await redis.xpending(stream_key("t1"), GROUP)
    assert pending["pending"] == len(batch.entries["t1"]) > 0
    # A fresh writer (nothing in memory) reads its pending entries again and folds them again.
    writer = HistoryWriter(sessions, redis_url, poll_s=0.02, tenants_every_s=0.05)
    await writer.start()
    try:
        await caught_up(writer)
        assert writer.stats.entries == len(batch.entries["t1"])
        assert await all_rows(sessions) == written  # same rows, same ids, same values
        # And everything delivered again from the start of the stream changes nothing either.
        await redis.xgroup_setid(stream_key("t1"), GROUP, "0")
        await caught_up(writer)
        assert writer.stats.entries == 2 * len(batch.entries["t1"])
        assert await all_rows(sessions) == written
        assert await history_totals(sessions, ingest.state, "t1") == engine_totals(ingest.state, "t1")
    finally:
        await writer.close()
        await publisher.close()
        await redis.aclose()


# ---------------------------------------------------------------- outages and resets


async def test_redis_restarting_empty_and_a_tenant_reset_are_followed_without_a_crash(
    server: EmbeddedRedis, redis_url: str, sqlite_sessions: async_sessionmaker[AsyncSession]
) -> None:
    ingest = Ingest(start_ts=T0)
    publisher = BusPublisher(redis_url, retry_max_s=0.2, keepalive_s=0.2)
    await publisher.start()
    writer = HistoryWriter(sqlite_sessions, redis_url, poll_s=0.02, tenants_every_s=0.05, retry_max_s=0.2)
    await writer.start()
    try:
        await publisher.publish(ingest.feed(fixture_bytes("answered")))
        await flushed(publisher)
        await caught_up(writer)
        await server.stop()  # Redis dies and comes back empty (no persistence)
        await until(lambda: not writer.stats.redis_up, "the writer to notice", limit_s=HANG_GUARD_S)
        await server.start()
        await until(lambda: writer.stats.redis_up, "the writer to reconnect", limit_s=HANG_GUARD_S)
        await publisher.publish(ingest.feed(fixture_bytes("abandoned")))
        await flushed(publisher)
        await caught_up(writer)
        assert writer.stats.redis_outages == 1
        assert await history_totals(sqlite_sessions, ingest.state, "t1") == engine_totals(ingest.state, "t1")
        # The API deletes the tenant: its stream and our group go; its history stays at its epoch.
        before = await row_counts(sqlite_sessions)
        redis = connect(redis_url)
        epoch = await forget_tenant(redis, "t1")
        await redis.aclose()
        await until(
            lambda: writer.stats.tenants_reset >= 1, "the writer to see NOGROUP", limit_s=HANG_GUARD_S
        )
        assert await row_counts(sqlite_sessions) == before
        # The publisher starts the tenant afresh once it notices (what it wrote before that is
        # the old tenant's, and goes); then a new tenant with the same slug has calls.
        await until(
            lambda: publisher.stats.tenants_reset >= 1, "the publisher to notice", limit_s=HANG_GUARD_S
        )
        await flushed(publisher)
        fresh = Ingest(start_ts=T0 + 3600)
        await publisher.publish(fresh.feed(fixture_bytes("answered")))
        await flushed(publisher)
        await caught_up(writer)
        async with sqlite_sessions() as session:
            epochs = (await session.execute(select(HistoryCall.epoch).distinct())).scalars().all()
        assert sorted(epochs) == [0, epoch]
    finally:
        await writer.close()
        await publisher.close()


async def test_a_database_outage_holds_the_batch_and_resumes(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    # No pool: every batch opens the file afresh, so taking it away is an outage at once.
    engine, sessions = await migrated(f"sqlite+aiosqlite:///{path}", poolclass=pool.NullPool)
    ingest = Ingest(start_ts=T0)
    publisher = BusPublisher(redis_url)
    await publisher.start()
    writer = HistoryWriter(sessions, redis_url, poll_s=0.02, tenants_every_s=0.05, retry_max_s=0.2)
    await writer.start()
    aside = tmp_path / "aside"
    aside.mkdir()
    try:
        await publisher.publish(ingest.feed(fixture_bytes("answered")))
        await flushed(publisher)
        await caught_up(writer)
        move_all(tmp_path, "history.db*", aside)
        path.mkdir()  # a directory where the database was: "unable to open database file"
        await publisher.publish(ingest.feed(fixture_bytes("status_busy")))
        await flushed(publisher)
        await until(lambda: not writer.stats.db_up, "the writer to notice", limit_s=HANG_GUARD_S)
        assert not await writer.caught_up()
        path.rmdir()
        move_all(aside, "*", tmp_path)
        await caught_up(writer)
        assert writer.stats.db_up and writer.stats.db_outages == 1
        assert await history_totals(sessions, ingest.state, "t1") == engine_totals(ingest.state, "t1")
    finally:
        await writer.close()
        await publisher.close()
        await engine.dispose()


# ---------------------------------------------------------------- inside serve and demo


async def test_the_stack_of_serve_and_demo_runs_the_writer(
    redis_url: str, sqlite_sessions: async_sessionmaker[AsyncSession]
) -> None:
    from pbx_core.config import Settings
    from pbx_core.simulator.server import SimMember
    from pbx_core.stack import running_stack
    from pbx_core.web.auth import Scope, StaticTokens

    settings = Settings.from_env({"PBX_REDIS_URL": redis_url})
    async with SimulatedAsterisk(clock=SimClock.stepped(T0)) as sim:
        sim.queue("acme-support")
        sim.add_member("acme-support", SimMember("Local/201@acme-agents/n", "201"), emit=False)
        tokens = StaticTokens({"t": Scope("acme")})
        stacked = running_stack(settings, sim.url, tokens, port=0, history_sessions=sqlite_sessions)
        async with stacked as stack:
            assert stack.history is not None
            await until(lambda: "acme-support" in stack.bridge.state.queues, "the first resync")
            caller = sim.arrive("acme-support", "0612345678", "Ann")
            sim.clock.advance(12)
            agent = sim.queues["acme-support"].members["Local/201@acme-agents/n"]
            ring = sim.ring("acme-support", caller, agent)
            sim.answer(ring)
            sim.clock.advance(60)
            sim.complete(ring, reason="transfer")
            counters = stack.bridge.state.queues["acme-support"].counters
            await until(lambda: counters.handled == 1, "the call to end")
            await flushed(stack.publisher)
            await caught_up(stack.history)
            assert stack.stats()["history"]["calls_written"] >= 1
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"{stack.base_url}/metrics")).text
            assert "pbx_history_db_up 1.0" in metrics and "pbx_history_calls_written_total" in metrics
        async with sqlite_sessions() as session:
            [row] = (await session.execute(select(HistoryCall))).scalars().all()
        assert (row.tenant, row.queue, row.number, row.name, row.outcome) == (
            "acme", "acme-support", "0612345678", "Ann", "answered")  # fmt: skip
        assert (row.waited_s, row.talk_s, row.end_reason, row.transfers, row.agent) == (
            12, 60, "transfer", 1, "Local/201@acme-agents/n")  # fmt: skip


# ---------------------------------------------------------------- retention


async def test_calls_past_the_retention_are_anonymised_and_the_rest_kept(
    redis_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    from pbx_core.history.core import CallRow
    from pbx_core.history.writer import months_before

    now = datetime(2026, 12, 4, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    cutoff = months_before(now, 13)
    assert datetime.fromtimestamp(cutoff, ZoneInfo("UTC")) == datetime(
        2025, 11, 4, 12, 0, tzinfo=ZoneInfo("UTC")
    )
    rows = [
        CallRow("t1", 0, Q_, "old", "0611", "Old", joined_at=cutoff - 60, outcome="answered", waited_s=7),
        CallRow("t1", 0, Q_, "seen-at-end", "0612", "End", joined_at=None, completed_at=cutoff - 60),
        CallRow("t1", 0, Q_, "recent", "0613", "New", joined_at=cutoff + 60, outcome="abandoned", waited_s=9),
    ]
    async with sessions() as session, session.begin():
        await store.write(session, rows, [])
    writer = HistoryWriter(sessions, redis_url, retention_months=13)
    try:
        assert await writer.anonymise(now) == 2
        assert await writer.anonymise(now) == 0  # done once
    finally:
        await writer.close()
    async with sessions() as session:
        got = {r.uniqueid: (r.number, r.name, r.anonymised, r.outcome, r.waited_s)
               for r in (await session.execute(select(HistoryCall))).scalars()}  # fmt: skip
    assert got == {
        "old": ("", "", True, "answered", 7),  # the figures stay for the reports
        "seen-at-end": ("", "", True, "waiting", None),
        "recent": ("0613", "New", False, "abandoned", 9),
    }
