"""/tenants/{slug}/api-keys: created once-visible, listed without secrets, revoked for good."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from pbx_core.api import ApiContext
from pbx_core.provisioning.keys import hash_secret, parse_key
from pbx_core.provisioning.models import ApiKey, Queue, Tenant
from pbx_core.provisioning.schemas import QueueIn
from tests.integration.api.conftest import World, assert_error, auth


async def add_queue(ctx: ApiContext, slug: str, name: str) -> None:
    async with ctx.sessions() as session:
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == slug))
        session.add(Queue(tenant_id=tenant_id, name=name, settings=QueueIn().model_dump(mode="json")))
        await session.commit()


async def test_create_shows_the_key_once(client: httpx.AsyncClient, ctx: ApiContext, world: World) -> None:
    await add_queue(ctx, "acme", "support")
    r = await client.post("/tenants/acme/api-keys", json={"name": "Wall screen", "role": "supervisor",
                                                          "queues": ["support"]}, headers=auth(world.admin))
    assert r.status_code == 201, r.text
    created = r.json()
    parsed = parse_key(created["key"])
    assert parsed is not None and parsed[0] == created["id"]
    assert r.headers["Location"] == f"/api/v1/tenants/acme/api-keys/{created['id']}"
    assert (created["role"], created["tenant"], created["queues"]) == ("supervisor", "acme", ["support"])
    assert created["last_used_at"] is None and created["revoked_at"] is None
    # Only the hash is stored; reads never show the key again.
    async with ctx.sessions() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.public_id == created["id"]))
    assert row is not None and row.secret_hash == hash_secret(parsed[1]) and parsed[1] not in row.secret_hash
    got = await client.get(f"/tenants/acme/api-keys/{created['id']}", headers=auth(world.admin))
    assert "key" not in got.json() and parsed[1] not in got.text
    listed = await client.get("/tenants/acme/api-keys", headers=auth(world.reseller_a))
    assert parsed[1] not in listed.text
    assert {k["role"] for k in listed.json()["items"]} == {"tenant-admin", "supervisor", "agent"}
    # The new key works, and its use is noted.
    assert (await client.get("/tenants/acme/users", headers=auth(created["key"]))).status_code == 200
    got = await client.get(f"/tenants/acme/api-keys/{created['id']}", headers=auth(world.admin))
    assert got.json()["last_used_at"] is not None


async def test_validation(client: httpx.AsyncClient, ctx: ApiContext, world: World) -> None:
    key = auth(world.admin)
    assert_error(await client.post("/tenants/acme/api-keys", json={"name": "x", "role": "reseller"},
                                   headers=key),
                 422, field="body.role")
    assert_error(await client.post("/tenants/acme/api-keys", json={"name": "x", "role": "supervisor",
                                                                   "queues": ["nope"]}, headers=key),
                 422, field="body.queues.0")
    await add_queue(ctx, "acme", "sales")
    assert_error(await client.post("/tenants/acme/api-keys", json={"name": "x", "role": "tenant-admin",
                                                                   "queues": ["sales"]}, headers=key),
                 422, field="body.queues")
    assert_error(await client.post("/tenants/acme/api-keys", json={"name": "x\ty", "role": "agent"},
                                   headers=key),
                 422, field="body.name")


async def test_revoke(client: httpx.AsyncClient, world: World) -> None:
    r = await client.post("/tenants/acme/api-keys", json={"name": "Temp", "role": "tenant-admin"},
                          headers=auth(world.admin))
    temp = r.json()
    assert (await client.get("/tenants/acme", headers=auth(temp["key"]))).status_code == 200
    assert (await client.delete(f"/tenants/acme/api-keys/{temp['id']}",
                                headers=auth(world.admin))).status_code \
        == 204
    assert_error(await client.get("/tenants/acme", headers=auth(temp["key"])), 401)
    # Revoking again is a no-op; the key stays listed, marked revoked.
    assert (await client.delete(f"/tenants/acme/api-keys/{temp['id']}",
                                headers=auth(world.admin))).status_code \
        == 204
    revoked = (await client.get("/tenants/acme/api-keys", params={"revoked": "true"},
                                headers=auth(world.admin))).json()
    assert [k["id"] for k in revoked["items"]] == [temp["id"]] and revoked["items"][0]["revoked_at"]
    active = (await client.get("/tenants/acme/api-keys", params={"revoked": "false"},
                               headers=auth(world.admin))).json()
    assert temp["id"] not in [k["id"] for k in active["items"]] and active["total"] == 3
    audit = (await client.get("/tenants/acme/audit", params={"entity": "api_key", "entity_key": temp["id"]},
                              headers=auth(world.admin))).json()["items"]
    assert [e["action"] for e in audit] == ["delete", "create"]
    assert temp["key"] not in str(audit)


async def test_keys_of_another_tenant_are_not_found(client: httpx.AsyncClient, world: World) -> None:
    other = (await client.get("/tenants/globex/api-keys",
                              headers=auth(world.admin_b))).json()["items"][0]["id"]
    assert_error(await client.get(f"/tenants/acme/api-keys/{other}", headers=auth(world.admin)), 404)
    assert_error(await client.delete(f"/tenants/acme/api-keys/{other}", headers=auth(world.reseller_a)), 404)
    assert (await client.get("/tenants/globex",
                             headers=auth(world.admin_b))).status_code == 200  # not revoked


async def test_supervisor_and_agent_cannot_manage_keys(client: httpx.AsyncClient, world: World) -> None:
    for key in (world.supervisor, world.agent):
        assert_error(await client.post("/tenants/acme/api-keys", json={"name": "me2", "role": "tenant-admin"},
                                       headers=auth(key)), 403)
        assert_error(await client.get("/tenants/acme/api-keys", headers=auth(key)), 403)
