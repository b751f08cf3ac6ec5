"""A deleted tenant's slug reused by another reseller never shows the previous tenant's data: the
bus side (epoch, publisher hold and reset, readers ignoring a stale snapshot) on a real Redis,
and the whole path (REST API delete, bridge, simulator, Redis, websocket wallboard) as `serve`
wires it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from pbx_core.bus import BusPublisher, BusReader, EmbeddedRedis, connect
from pbx_core.bus.keys import Snapshot, epoch_key, snapshot_key, stream_key
from pbx_core.bus.tenants import TenantHooks, forget_tenant
from pbx_core.config import Settings
from pbx_core.domain.board import empty_board, tenant_board
from pbx_core.domain.events import CallerAbandoned, CallerJoined, TenantRemoved
from pbx_core.domain.queue_state import Delta, LiveState, apply
from pbx_core.provisioning.db import upgrade
from pbx_core.provisioning.keys import create_reseller_key
from pbx_core.simulator.server import SimulatedAsterisk
from pbx_core.stack import Stack, running_stack
from pbx_core.web.provisioning import provisioning
from tests import conftest
from tests.conftest import ROOT
from tests.integration.test_apply import BASE_FILES
from tests.integration.test_websocket import wallboard

GUARD_S = 30.0  # hang guard only
T0 = 1795338000.0
SECRET_NAME, SECRET_NUMBER = "Jan Geheim", "0612345678"


async def until(predicate: Any, what: str) -> None:
    await conftest.wait_until(predicate, what, limit_s=GUARD_S)


async def flushed(publisher: BusPublisher) -> None:
    async with asyncio.timeout(GUARD_S):
        await publisher.flush()


def old_tenant(state: LiveState) -> list[Delta]:
    """Tenant t3 as reseller A had it: callers who abandoned, with names and numbers."""
    deltas: list[Delta] = []
    for i in range(3):
        uid = f"a.{i}"
        deltas += apply(state, CallerJoined(T0 + i, "t3-support", uid, f"PJSIP/x-{i}", SECRET_NUMBER,
                                            SECRET_NAME, 1))  # fmt: skip
        deltas += apply(state, CallerAbandoned(T0 + 30 + i, "t3-support", uid, SECRET_NUMBER, SECRET_NAME,
                                               1, 1, 30))  # fmt: skip
    return deltas


async def stream_text(redis: Redis, tenant: str) -> str:
    return json.dumps([[i.decode(), {k.decode(): v.decode() for k, v in f.items()}]
                       for i, f in await redis.xrange(stream_key(tenant))])  # fmt: skip


@pytest.fixture
async def redis_server() -> AsyncIterator[EmbeddedRedis]:
    async with EmbeddedRedis() as server:
        yield server


@pytest.fixture
async def admin(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = connect(redis_server.url)
    yield client
    await client.aclose()


async def test_forget_deletes_the_keys_and_readers_never_take_an_older_epochs_snapshot(
    redis_server: EmbeddedRedis, admin: Redis
) -> None:
    state = LiveState()
    publisher = BusPublisher(redis_server.url)
    await publisher.start()
    try:
        await publisher.publish(old_tenant(state))
        await flushed(publisher)
        reader = BusReader(admin, "t3")
        assert (await reader.current()).board["queues"]["t3-support"]["abandoned_callers"]

        assert await forget_tenant(admin, "t3") == 1
        assert await admin.exists(snapshot_key("t3"), stream_key("t3")) == 0
        assert await admin.smembers("pbx:tenants") == set()
        assert (await reader.current()).board == empty_board("t3")
        # A publisher that has not noticed yet writes the old board back (the race the epoch is
        # for): every reader still sees nothing of it.
        stale = Snapshot("t3", publisher.boards()["t3"], "0-0", 7, epoch=0)
        await admin.set(snapshot_key("t3"), stale.encode())
        snap = await reader.snapshot()
        assert snap.board == empty_board("t3") and snap.epoch == 1
        assert (await reader.current()).board == empty_board("t3")
    finally:
        await publisher.close()


async def test_a_publisher_holds_a_tenant_deleted_elsewhere_until_its_engine_forgot_it(
    redis_server: EmbeddedRedis, admin: Redis
) -> None:
    """The split deployment: the API runs in a web process, the bridge elsewhere. Its publisher
    finds the epoch moved on, asks its engine to forget the tenant, and writes nothing of the
    tenant until the engine's tenant.removed, so the old engine state never reaches the new
    tenant's board, even the queue.stats the old engine emits meanwhile."""
    state = LiveState()
    asked: list[str] = []
    publisher = BusPublisher(redis_server.url, keepalive_s=0.2, on_tenant_reset=asked.append)
    await publisher.start()
    reader = BusReader(admin, "t3")
    try:
        await publisher.publish(old_tenant(state))
        await flushed(publisher)
        await forget_tenant(admin, "t3")  # the web process deleted t3

        # The old engine still has t3-support and carries on: its figures must not get through.
        await publisher.publish(apply(state, CallerJoined(T0 + 60, "t3-support", "a.9", "PJSIP/x-9",
                                                          SECRET_NUMBER, SECRET_NAME, 1)))  # fmt: skip
        await until(lambda: asked == ["t3"], "the publisher asks its engine to forget t3")
        await flushed(publisher)
        assert (await reader.current()).board == empty_board("t3")
        assert SECRET_NUMBER not in await stream_text(admin, "t3")

        # The engine forgets (Bridge.forget_tenant → TenantRemoved), then B's t3 starts.
        await publisher.publish(apply(state, TenantRemoved(T0 + 61, "t3")))
        fresh = apply(state, CallerJoined(T0 + 70, "t3-support", "b.1", "PJSIP/y-1", "0201", "Bea", 1))
        await publisher.publish(fresh)
        await flushed(publisher)
        board = (await reader.current()).board
        assert board == json.loads(json.dumps(tenant_board(state, "t3")))
        assert [c["name"] for c in board["queues"]["t3-support"]["waiting"]] == ["Bea"]
        assert board["queues"]["t3-support"]["abandoned_callers"] == []
        assert board["queues"]["t3-support"]["stats"]["offered"] == 1
        text = await stream_text(admin, "t3")
        assert SECRET_NUMBER not in text and SECRET_NAME not in text
        stored = Snapshot.decode("t3", await admin.get(snapshot_key("t3")))
        assert stored.epoch == 1 and int(await admin.get(epoch_key("t3"))) == 1
        assert publisher.stats.tenants_reset == 1
    finally:
        await publisher.close()


async def test_an_idle_publisher_notices_a_deletion_and_a_lost_epoch_is_put_back(
    redis_server: EmbeddedRedis, admin: Redis
) -> None:
    state = LiveState()
    publisher = BusPublisher(redis_server.url, keepalive_s=0.2)  # no engine hook: resets at once
    await publisher.start()
    try:
        await publisher.publish(old_tenant(state))
        await flushed(publisher)
        await forget_tenant(admin, "t3")
        await until(lambda: publisher.stats.tenants_reset == 1, "the keepalive notices the deletion")
        await flushed(publisher)
        assert publisher.boards()["t3"] == empty_board("t3")
        assert Snapshot.decode("t3", await admin.get(snapshot_key("t3"))).epoch == 1

        # Redis restarted empty: the epoch key is gone with everything else. That is not a
        # deletion (the board stays), and the epoch is written back, so a later deletion is seen.
        bea = CallerJoined(T0 + 90, "t3-support", "b.1", "PJSIP/y", "1", "Bea", 1)
        await publisher.publish(apply(state, bea))
        await flushed(publisher)
        await admin.flushall()
        await until(lambda: publisher.stats.outages >= 1, "the keepalive notices the loss")
        async with asyncio.timeout(GUARD_S):
            while await admin.get(epoch_key("t3")) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert int(await admin.get(epoch_key("t3"))) == 1
        assert publisher.stats.tenants_reset == 1
        assert (await BusReader(admin, "t3").current()).board["queues"]["t3-support"]["waiting"]
    finally:
        await publisher.close()


# --------------------------------------------------------------------------- the whole path


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    for name in BASE_FILES:
        shutil.copyfile(ROOT / "asterisk-config" / name, etc / name)
    return etc


@dataclass
class Served:
    """`serve`'s wiring (provisioning API + bridge + bus + web) against a simulator playing
    /etc/asterisk, with two resellers' API keys."""

    ast: SimulatedAsterisk
    stack: Stack
    redis: Redis
    key_a: str
    key_b: str

    def api(self, key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"{self.stack.base_url}/api/v1", timeout=GUARD_S,
                                 headers={"Authorization": f"Bearer {key}"})  # fmt: skip


@contextlib.asynccontextmanager
async def served(etc: Path, tmp_path: Path) -> AsyncIterator[Served]:
    db_url = f"sqlite:///{tmp_path / 'pbx.db'}"
    await upgrade(db_url)
    settings = Settings.from_env({"PBX_DATABASE_URL": db_url, "PBX_WALLBOARD_TOKENS": "tv=t3"})
    async with (
        SimulatedAsterisk(config_dir=etc) as ast,
        provisioning(settings, database_url=db_url, ami_url=ast.url, config_dir=etc / "pbx-core") as prov,
        running_stack(settings, ast.url, prov.verifier, host="127.0.0.1", port=0, extra_routes=prov.routes,
                      live_hooks=prov.live) as stack,
    ):  # fmt: skip
        async with prov.sessions() as session:
            key_a = await create_reseller_key(session, "Reseller A", "main")
            key_b = await create_reseller_key(session, "Reseller B", "main")
            await session.commit()
        redis = connect(stack.redis_url)
        try:
            yield Served(ast, stack, redis, key_a, key_b)
        finally:
            await redis.aclose()


async def test_delete_with_force_then_reuse_the_slug_through_the_api_shows_nothing_old(
    etc: Path, tmp_path: Path
) -> None:
    """Reseller A's t3 has abandoned callers on its board; A deletes t3 with force; reseller B
    creates t3. B's first wallboard snapshot is empty, and nothing of A's is left anywhere."""
    async with served(etc, tmp_path) as s:
        ast, stack, redis, bridge = s.ast, s.stack, s.redis, s.stack.bridge
        async with s.api(s.key_a) as a:
            assert (await a.post("/tenants", json={"slug": "t3", "name": "A's t3"})).status_code == 201
            r = await a.post("/tenants/t3/queues", json={"name": "support", "strategy": "ringall"})
            assert r.status_code == 201, r.text
            r = await a.post("/tenants/t3/apply")
            assert r.status_code == 200 and r.json()["status"] == "ok", r.text
            await until(lambda: "t3-support" in bridge.state.queues, "the applied queue in the engine")
            for _ in range(3):
                caller = ast.join("t3-support", SECRET_NUMBER, SECRET_NAME)
                ast.leave("t3-support", caller.uniqueid, abandon=True)
            await until(lambda: len(bridge.state.queues["t3-support"].abandoned) == 3, "A's abandons")
            async with asyncio.timeout(GUARD_S):
                await stack.publisher.flush()
            old_board = (await BusReader(redis, "t3").current()).board
            assert len(old_board["queues"]["t3-support"]["abandoned_callers"]) == 3

            async with wallboard(_Url(stack.base_url), "token=tv") as a_wb:
                await a_wb.until(lambda m: m["type"] == "snapshot")
                r = await a.delete("/tenants/t3", params={"force": "true"})
                assert r.status_code == 204, r.text
                # A's own open board empties too: nothing of t3 is live anymore.
                await a_wb.until(lambda m: a_wb.board is not None and not a_wb.board["queues"])

        assert not [q for q in bridge.state.queues if q.startswith("t3-")]
        assert "t3-support" not in ast.queues or ast.queues["t3-support"].dead
        async with asyncio.timeout(GUARD_S):
            await stack.publisher.flush()
        for text in (await stream_text(redis, "t3"), str(await redis.get(snapshot_key("t3")))):
            assert SECRET_NUMBER not in text and SECRET_NAME not in text

        async with s.api(s.key_b) as b:
            assert (await b.post("/tenants", json={"slug": "t3", "name": "B's t3"})).status_code == 201
            async with wallboard(_Url(stack.base_url), "token=tv") as b_wb:
                first = await b_wb.until(lambda m: m["type"] == "snapshot")
                assert first["board"] == {"tenant": "t3", "queues": {}}
                r = await b.post("/tenants/t3/queues", json={"name": "support", "strategy": "ringall"})
                assert r.status_code == 201, r.text
                r = await b.post("/tenants/t3/apply")
                assert r.status_code == 200, r.text
                # B's queue appears (the apply's reload resyncs the bridge), empty.
                await b_wb.until(lambda m: "t3-support" in (b_wb.board or {}).get("queues", {}))
                q = b_wb.board["queues"]["t3-support"]  # type: ignore[index]
                assert q["abandoned_callers"] == [] and q["stats"]["offered"] == 0
                seen = json.dumps([*b_wb.snapshots, *b_wb.deltas])
                assert SECRET_NUMBER not in seen and SECRET_NAME not in seen


async def test_an_apply_that_drops_a_queue_clears_it_even_without_the_reload_event(
    etc: Path, tmp_path: Path
) -> None:
    """An AMI user without read class ``system`` (a manager.conf from before pbx-core needed it)
    never gets ``Reload``; in one process the API's apply tells the bridge to resync itself."""
    async with served(etc, tmp_path) as s:
        s.ast.read_classes = {"agent", "call", "user"}
        bridge = s.stack.bridge
        async with s.api(s.key_a) as a:
            assert (await a.post("/tenants", json={"slug": "t3", "name": "T3"})).status_code == 201
            for name in ("support", "sales"):
                r = await a.post("/tenants/t3/queues", json={"name": name, "strategy": "ringall"})
                assert r.status_code == 201, r.text
            assert (await a.post("/tenants/t3/apply")).status_code == 200
            await until(lambda: {"t3-support", "t3-sales"} <= set(bridge.state.queues), "both queues")
            assert (await a.delete("/tenants/t3/queues/sales")).status_code == 204
            assert (await a.post("/tenants/t3/apply")).status_code == 200
            await until(lambda: "t3-sales" not in bridge.state.queues, "sales leaves the engine")
            async with asyncio.timeout(GUARD_S):
                await s.stack.publisher.flush()
            assert set((await BusReader(s.redis, "t3").current()).board["queues"]) == {"t3-support"}


class _Url:
    def __init__(self, http: str) -> None:
        self.http = http

    def ws_url(self, query: str) -> str:
        return self.http.replace("http://", "ws://") + "/ws/wallboard?" + query


def test_tenant_hooks_run_every_hook_even_when_one_fails() -> None:
    calls: list[str] = []

    def broken(tenant: str) -> None:
        raise RuntimeError("down")

    async def recorded(tenant: str) -> None:
        calls.append(tenant)

    hooks = TenantHooks()
    hooks.add(broken)
    hooks.add(recorded)
    asyncio.run(hooks("t3"))
    assert calls == ["t3"]
