"""Wallboard tokens end to end: minted over the REST API (mounted on the real web app), verified
by the real wallboard websocket under uvicorn with a private Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pbx_core.api import ApiContext, ApiKeyVerifier, api_mount
from pbx_core.api.wallboard import TokenClaims, TokenSigner
from pbx_core.bus import EmbeddedRedis
from pbx_core.provisioning.models import Queue
from pbx_core.provisioning.schemas import QueueIn
from pbx_core.web import Scope, create_app, serving
from tests.integration.api.conftest import World, assert_error, auth, tenant_key

GUARD_S = 30  # hang guard only


async def add_queues(sessions: async_sessionmaker[AsyncSession], slug_id: int, *names: str) -> None:
    async with sessions() as session:
        for name in names:
            session.add(Queue(tenant_id=slug_id, name=name, settings=QueueIn().model_dump(mode="json")))
        await session.commit()


async def tenant_id(client: httpx.AsyncClient, ctx: ApiContext, slug: str) -> int:
    from sqlalchemy import select

    from pbx_core.provisioning.models import Tenant

    async with ctx.sessions() as session:
        found = await session.scalar(select(Tenant.id).where(Tenant.slug == slug))
    assert found is not None
    return found


async def mint(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    r = await client.post("/tenants/acme/wallboard-tokens", json=body, headers=auth(key))
    assert r.status_code == 201, r.text
    minted: dict[str, Any] = r.json()
    return minted


async def test_minted_token_scopes(client: httpx.AsyncClient, ctx: ApiContext, world: World) -> None:
    await add_queues(ctx.sessions, await tenant_id(client, ctx, "acme"), "sales", "support")
    verifier = ApiKeyVerifier(ctx.sessions)  # a separate instance: shares only the database
    before = time.time()
    all_queues = await mint(client, world.supervisor)
    assert all_queues["tenant"] == "acme" and all_queues["queues"] is None
    assert await verifier.verify(all_queues["token"]) == Scope("acme", None)
    from datetime import datetime

    expires = datetime.fromisoformat(all_queues["expires_at"]).timestamp()
    assert before + 43_200 - 5 <= expires <= time.time() + 43_200  # the default lifetime: 12 h

    # No body at all (the README's first curl): the same defaults as `{}`.
    bare = await client.post("/tenants/acme/wallboard-tokens", headers=auth(world.supervisor))
    assert bare.status_code == 201, bare.text
    assert bare.json()["queues"] is None
    assert await verifier.verify(bare.json()["token"]) == Scope("acme", None)

    sales = await mint(client, world.admin, queues=["sales"], ttl_s=60)
    assert await verifier.verify(sales["token"]) == Scope("acme", frozenset({"acme-sales"}))
    # A queue-limited supervisor: its tokens never cover more than the key does.
    limited = await tenant_key(client, world.admin, "acme", "supervisor", queues=["support"])
    assert (await mint(client, limited))["queues"] == ["support"]
    assert_error(await client.post("/tenants/acme/wallboard-tokens", json={"queues": ["sales"]},
                                   headers=auth(limited)), 403)
    assert_error(await client.post("/tenants/acme/wallboard-tokens", json={"queues": ["nope"]},
                                   headers=auth(world.admin)), 422, field="body.queues.0")
    for ttl in (59, 86_401):
        assert_error(await client.post("/tenants/acme/wallboard-tokens", json={"ttl_s": ttl},
                                       headers=auth(world.admin)), 422, field="body.ttl_s")
    assert_error(await client.post("/tenants/acme/wallboard-tokens", json={}, headers=auth(world.agent)), 403)
    assert_error(await client.post("/tenants/globex/wallboard-tokens", json={}, headers=auth(world.admin)),
                 404)


async def test_api_keys_as_wallboard_tokens(client: httpx.AsyncClient, ctx: ApiContext, world: World) -> None:
    await add_queues(ctx.sessions, await tenant_id(client, ctx, "acme"), "support")
    verifier = ApiKeyVerifier(ctx.sessions)
    limited = await tenant_key(client, world.admin, "acme", "supervisor", queues=["support"])
    assert await verifier.verify(world.supervisor) == Scope("acme", None)
    assert await verifier.verify(world.admin) == Scope("acme", None)
    assert await verifier.verify(limited) == Scope("acme", frozenset({"acme-support"}))
    # Agents and resellers have no wallboard; a wrong secret is nobody.
    assert await verifier.verify(world.agent) is None
    assert await verifier.verify(world.reseller_a) is None
    wrong = world.supervisor[:-1] + ("a" if world.supervisor[-1] != "a" else "b")
    assert await verifier.verify(wrong) is None
    assert await verifier.verify("") is None


async def test_refused_tokens(client: httpx.AsyncClient, ctx: ApiContext, world: World) -> None:
    verifier = ApiKeyVerifier(ctx.sessions)
    token = (await mint(client, world.supervisor))["token"]
    prefix, payload, signature = token.split(".")
    # Tampered payload (another tenant), truncated signature, garbage.
    import base64

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "t": "globex"}).encode()).rstrip(b"=").decode()
    for bad in (f"{prefix}.{forged}.{signature}", f"{prefix}.{payload}.{signature[:-2]}", "wbt1.x.y",
                "wbt1.."):
        assert await verifier.verify(bad) is None, bad
    # Expired: signed with the same (database) key, but in the past.
    signer = TokenSigner(ctx.sessions, None)
    key_id = claims["k"]
    expired = await signer.mint(TokenClaims("acme", None, key_id, int(time.time()) - 1))
    assert await verifier.verify(expired) is None
    assert await verifier.verify(await signer.mint(TokenClaims("acme", None, key_id, int(time.time()) + 60)))
    # Another server secret does not verify it.
    assert await ApiKeyVerifier(ctx.sessions, secret_key="another").verify(token) is None
    # Revoking the minting key kills its tokens.
    r = await client.delete(f"/tenants/acme/api-keys/{key_id}", headers=auth(world.admin))
    assert r.status_code == 204
    assert await verifier.verify(token) is None


async def test_secret_key_signs_when_configured(ctx: ApiContext) -> None:
    a, b = TokenSigner(ctx.sessions, "s3cret"), TokenSigner(ctx.sessions, "s3cret")
    claims = TokenClaims("acme", ("acme-sales",), "0123456789abcdef", int(time.time()) + 60)
    assert await b.claims(await a.mint(claims)) == claims
    assert await TokenSigner(ctx.sessions, "other").claims(await a.mint(claims)) is None


async def test_stored_secret_is_made_once(ctx: ApiContext) -> None:
    """Concurrent first uses (as two replicas would) end up with one and the same key."""
    signers = [TokenSigner(ctx.sessions, None) for _ in range(4)]
    keys = await asyncio.gather(*(s.key() for s in signers))
    assert len(set(keys)) == 1 and len(keys[0]) >= 48


@contextlib.asynccontextmanager
async def web_stack(ctx: ApiContext) -> AsyncIterator[str]:
    """The real web app with the API mounted at /api/v1 and API keys as wallboard tokens."""
    async with EmbeddedRedis() as redis:
        app = create_app(verifier=ApiKeyVerifier(ctx.sessions, ctx.secret_key), redis_url=redis.url,
                         extra_routes=[api_mount(ctx)])
        async with serving(app) as http:
            yield http


async def first_message_or_close(http: str, token: str) -> tuple[int | None, dict[str, Any] | None]:
    url = http.replace("http://", "ws://") + "/ws/wallboard?token=" + token
    async with asyncio.timeout(GUARD_S), connect(url, proxy=None) as ws:
        try:
            return None, json.loads(await ws.recv())
        except ConnectionClosed:
            return ws.close_code, None


async def test_minted_token_opens_the_real_wallboard(ctx: ApiContext, world: World) -> None:
    async with web_stack(ctx) as http, httpx.AsyncClient(base_url=http + "/api/v1") as api:
        minted = await mint(api, world.supervisor, ttl_s=60)
        code, msg = await first_message_or_close(http, minted["token"])
        assert code is None and msg is not None and msg["type"] == "snapshot"
        code, msg = await first_message_or_close(http, world.supervisor)
        assert code is None and msg is not None and msg["type"] == "snapshot"
        _, payload, signature = minted["token"].split(".")
        for refused in (f"wbt1.{payload}.{'A' * len(signature)}", world.agent, "nope"):
            assert await first_message_or_close(http, refused) == (4401, None)
        expired = await TokenSigner(ctx.sessions, None).mint(
            TokenClaims("acme", None, (await api.get("/tenants/acme/api-keys", params={"role": "supervisor"},
                                                     headers=auth(world.admin))).json()["items"][0]["id"],
                        int(time.time()) - 10))
        assert await first_message_or_close(http, expired) == (4401, None)
