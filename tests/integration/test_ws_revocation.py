"""Open wallboard sockets lose their access when it goes (issue 11, item 4): a revoked API key's
sockets close with 4401 on every web replica, a short-lived token's socket closes at its expiry,
and nothing can be booked over a revoked grant.

Two replicas here are two complete web apps (each its own hub, Redis client, revocation watch,
provisioning context and port) over one real Redis and one real database (SQLite; PostgreSQL
too when PBX_TEST_POSTGRES_URL is set), talked to over real TCP websockets. Every wait is a
polling wait with a generous hang guard: nothing here measures time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pbx_core.api.wallboard import TokenClaims, TokenSigner
from pbx_core.bus import EmbeddedRedis
from pbx_core.bus.keys import REVOKED_KEY
from pbx_core.config import Settings
from pbx_core.provisioning.db import upgrade
from pbx_core.provisioning.keys import create_reseller_key, revoke_key
from pbx_core.provisioning.models import CallbackRow
from pbx_core.web import create_app, serving
from pbx_core.web.hub import Hub
from pbx_core.web.provisioning import Provisioning, provisioning
from pbx_core.web.revocation import RevocationWatch, recheck_announcer, revocation_announcer
from tests import conftest
from tests.integration.databases import BACKENDS, throwaway_database

GUARD_S = 30  # hang guard only; nothing here measures time
NEVER_S = 3600.0  # a re-check interval that never comes during a test: only the notice can act


@dataclass
class Replica:
    app: Starlette
    http: str
    prov: Provisioning

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    def ws_url(self, token: str) -> str:
        return self.http.replace("http://", "ws://") + "/ws/wallboard?token=" + token


@dataclass
class Cluster:
    redis: EmbeddedRedis
    replicas: list[Replica]
    url: str
    reseller: str
    supervisor: dict[str, str] = field(default_factory=dict)  # name -> full key
    key_ids: dict[str, str] = field(default_factory=dict)  # name -> public id

    def api(self, replica: int = 0, key: str | None = None) -> httpx.AsyncClient:
        # httpx's 5 s default read timeout failed a setup POST once on a loaded 2-core CI machine;
        # the suite's hang guard is the limit here, as everywhere in this file.
        return httpx.AsyncClient(base_url=f"{self.replicas[replica].http}/api/v1",
                                 headers={"Authorization": f"Bearer {key or self.reseller}"},
                                 timeout=GUARD_S)

    async def callbacks(self) -> list[CallbackRow]:
        async with self.replicas[0].prov.sessions() as session:
            return list((await session.scalars(select(CallbackRow))).all())


@contextlib.asynccontextmanager
async def replica(settings: Settings, url: str, redis_url: str, recheck_s: float) -> AsyncIterator[Replica]:
    async with provisioning(settings, database_url=url) as prov:
        app = create_app(verifier=prov.verifier, redis_url=redis_url, extra_routes=prov.routes,
                         callback_requester=prov.callback_requester, recheck_s=recheck_s)
        assert prov.live is not None
        prov.live.revoked.add(revocation_announcer(app.state.redis))  # as `pbx-core web` wires it
        prov.live.forgotten.add(recheck_announcer(app.state.redis))
        async with serving(app) as http:
            yield Replica(app, http, prov)


@contextlib.asynccontextmanager
async def cluster(url: str, *recheck_s: float) -> AsyncIterator[Cluster]:
    """One Redis, one database, a replica per ``recheck_s``; tenant t1 (queue support) with two
    supervisor keys, "screen" and "other", made through the REST API of replica 0."""
    await upgrade(url)
    settings = Settings.from_env({"PBX_DATABASE_URL": url})
    async with EmbeddedRedis() as redis, contextlib.AsyncExitStack() as stack:
        replicas = [await stack.enter_async_context(replica(settings, url, redis.url, r)) for r in recheck_s]
        async with replicas[0].prov.sessions() as session:
            reseller = await create_reseller_key(session, "Reseller", "main")
            await session.commit()
        c = Cluster(redis, replicas, url, reseller)
        async with c.api() as api:
            r = await api.post("/tenants", json={"slug": "t1", "name": "T1"})
            assert r.status_code == 201, r.text
            r = await api.post("/tenants/t1/queues", json={"name": "support", "strategy": "ringall"})
            assert r.status_code == 201, r.text
            for name in ("screen", "other"):
                r = await api.post("/tenants/t1/api-keys", json={"name": name, "role": "supervisor"})
                assert r.status_code == 201, r.text
                c.supervisor[name], c.key_ids[name] = r.json()["key"], r.json()["id"]
        yield c


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database(request.param, tmp_path) as url:
        yield url


@contextlib.asynccontextmanager
async def board(r: Replica, token: str) -> AsyncIterator[ClientConnection]:
    """A connected wallboard that has had its first snapshot."""
    async with connect(r.ws_url(token), proxy=None, open_timeout=GUARD_S) as ws:
        await until_message(ws, "snapshot")
        yield ws


async def until_message(ws: ClientConnection, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(GUARD_S):
        while True:
            msg: dict[str, Any] = json.loads(await ws.recv())
            if msg["type"] == kind:
                return msg


async def closed_code(ws: ClientConnection) -> int:
    """Read (and drop) whatever comes until the server closes the socket; its close code."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(GUARD_S):  # hang guard: the close is expected within seconds
            while True:
                await ws.recv()
    assert ws.close_code is not None
    return ws.close_code


async def still_open(ws: ClientConnection) -> bool:
    await ws.send(json.dumps({"type": "resync"}))
    return (await until_message(ws, "snapshot"))["type"] == "snapshot"


async def refused_code(r: Replica, token: str) -> int:
    async with connect(r.ws_url(token), proxy=None, open_timeout=GUARD_S) as ws:
        return await closed_code(ws)


async def mint(c: Cluster, key: str, ttl_s: int = 600) -> str:
    async with c.api(key=key) as api:
        r = await api.post("/tenants/t1/wallboard-tokens", json={"ttl_s": ttl_s})
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token


async def book(ws: ClientConnection, ref: str) -> dict[str, Any] | int:
    """Ask for a callback: the ack, or the close code if the socket is closed instead."""
    await ws.send(json.dumps({"type": "callback", "queue": "t1-support", "number": "0201234567", "ref": ref}))
    try:
        async with asyncio.timeout(GUARD_S):
            while True:
                msg: dict[str, Any] = json.loads(await ws.recv())
                if msg["type"] == "callback.ack" and msg.get("ref") == ref:
                    return msg
    except ConnectionClosed:
        assert ws.close_code is not None
        return ws.close_code


# --------------------------------------------------------------------------- the tests


async def test_revoking_a_key_on_one_replica_closes_its_sockets_on_another(database: str) -> None:
    # No re-check ever runs: only the revocation notice through Redis can close anything.
    async with cluster(database, NEVER_S, NEVER_S) as c:
        a, b = c.replicas
        token = await mint(c, c.supervisor["screen"])  # a wall screen's token, minted by the key
        async with (
            board(b, c.supervisor["screen"]) as by_key,
            board(b, token) as by_token,
            board(a, c.supervisor["screen"]) as on_a,
            board(b, c.supervisor["other"]) as other,
        ):
            async with c.api(0) as api:  # revoked through replica A's API
                r = await api.delete(f"/tenants/t1/api-keys/{c.key_ids['screen']}")
                assert r.status_code == 204, r.text
            assert await closed_code(by_key) == 4401
            assert await closed_code(by_token) == 4401  # the token dies with its minting key
            assert await closed_code(on_a) == 4401
            assert b.hub.stats.revoked["revoked"] == 2 and a.hub.stats.revoked["revoked"] == 1
            async with httpx.AsyncClient(timeout=GUARD_S) as http:
                metrics = (await http.get(f"{b.http}/metrics")).text
            assert 'pbx_web_revoked_total{why="revoked"} 2.0' in metrics
            assert await still_open(other)  # another key's screen is untouched
            watch: RevocationWatch = b.app.state.revocations
            assert watch.rechecks == 0 and watch.notices == 1
        # The revoked key and its token open nothing any more, so they book nothing either.
        assert await refused_code(b, c.supervisor["screen"]) == 4401
        assert await refused_code(a, token) == 4401
        assert await c.callbacks() == []


async def test_a_booking_over_a_key_revoked_without_notice_is_refused_and_closes_the_socket(
    database: str,
) -> None:
    async with cluster(database, NEVER_S) as c:
        (a,) = c.replicas
        async with board(a, c.supervisor["screen"]) as ws, board(a, c.supervisor["other"]) as other:
            # Revoked straight in the database: no notice, no re-check due. The booking itself
            # checks the grant.
            async with a.prov.sessions() as session:
                await revoke_key(session, c.key_ids["screen"])
                await session.commit()
            assert await book(ws, "r1") == 4401
            assert await c.callbacks() == []
            ack = await book(other, "r2")  # the same button over a valid key still books
            assert isinstance(ack, dict) and ack["ok"] is True, ack
            assert [cb.number for cb in await c.callbacks()] == ["0201234567"]


async def test_the_recheck_closes_sockets_of_a_key_revoked_while_notices_were_lost(database: str) -> None:
    async with cluster(database, 0.2) as c:
        (a,) = c.replicas
        token = await mint(c, c.supervisor["screen"])
        async with board(a, token) as ws, board(a, c.supervisor["other"]) as other:
            async with a.prov.sessions() as session:  # no notice is ever sent
                await revoke_key(session, c.key_ids["screen"])
                await session.commit()
            assert await closed_code(ws) == 4401
            assert await still_open(other)
            watch: RevocationWatch = a.app.state.revocations
            assert watch.notices == 0 and watch.rechecks >= 1
            notices = await a.app.state.redis.xrange(REVOKED_KEY)
            assert not [f for _, f in notices if b"key" in f]  # no revocation notice was sent


async def test_a_short_lived_tokens_socket_closes_at_its_expiry_and_the_token_opens_nothing_after(
    database: str,
) -> None:
    async with cluster(database, NEVER_S) as c:
        (a,) = c.replicas
        # The API mints for at least 60 s; a token signed the same way (same database secret)
        # for a few seconds keeps the test short.
        signer = TokenSigner(a.prov.sessions, None)
        expires = int(time.time()) + 3
        token = await signer.mint(TokenClaims("t1", None, c.key_ids["screen"], expires))
        async with board(a, token) as ws, board(a, c.supervisor["screen"]) as by_key:
            assert await closed_code(ws) == 4401
            assert time.time() >= expires - 1  # closed because it expired, not before
            assert a.hub.stats.revoked["expired"] == 1
            assert await still_open(by_key)  # the key that minted it is still good
        assert await refused_code(a, token) == 4401
        assert await c.callbacks() == []


async def test_deleting_a_tenant_closes_its_screens_on_every_replica_and_a_reused_slugs_stay(
    database: str,
) -> None:
    async with cluster(database, NEVER_S, NEVER_S) as c:
        a, b = c.replicas
        async with c.api(0) as api:  # a second tenant of the reseller, its screen must stay
            assert (await api.post("/tenants", json={"slug": "t2", "name": "T2"})).status_code == 201
            r = await api.post("/tenants/t2/api-keys", json={"name": "tv", "role": "supervisor"})
            assert r.status_code == 201, r.text
            t2_key = r.json()["key"]
        reseller_token = await mint(c, c.reseller)  # a reseller's token for t1
        async with (
            board(b, c.supervisor["screen"]) as by_key,
            board(b, reseller_token) as by_reseller,
            board(b, t2_key) as t2,
        ):
            async with c.api(0) as api:
                r = await api.delete("/tenants/t1", params={"force": "true"})
                assert r.status_code == 204, r.text
            # The tenant's own key went with it; the reseller's key no longer reaches the slug.
            assert await closed_code(by_key) == 4401
            assert await closed_code(by_reseller) == 4401
            assert await still_open(t2)
            watch: RevocationWatch = b.app.state.revocations
            assert watch.rechecks >= 1
            # The slug comes back (another tenant now): a new screen for it is valid and stays
            # through the re-check that the creation asks for.
            async with c.api(0) as api:
                assert (await api.post("/tenants", json={"slug": "t1", "name": "New"})).status_code == 201
                r = await api.post("/tenants/t1/api-keys", json={"name": "new", "role": "supervisor"})
                assert r.status_code == 201, r.text
            async with board(b, r.json()["key"]) as new:
                checks = watch.rechecks
                assert a.prov.live is not None
                await a.prov.live.forgotten("t1")  # one more re-check notice, as a deletion sends
                await _until(lambda: watch.rechecks > checks, "a re-check on replica B")
                assert await still_open(new)


async def _until(predicate: Callable[[], bool], what: str) -> None:
    await conftest.wait_until(predicate, what, limit_s=GUARD_S)
