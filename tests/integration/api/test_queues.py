"""/tenants/{slug}/queues: CRUD, replace semantics, ETags, limits, references, audit."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.api.conftest import World, assert_error, auth

SUPPORT: dict[str, Any] = {"name": "support", "strategy": "ringall", "ring_timeout_s": 20}


async def audit_of(client: httpx.AsyncClient, key: str, entity: str) -> list[dict[str, Any]]:
    r = await client.get("/tenants/acme/audit", headers=auth(key), params={"limit": 200})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["entity"] == entity]


async def test_create_get_list_and_location(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    r = await client.post("/tenants/acme/queues", json=SUPPORT, headers=key)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/api/v1/tenants/acme/queues/support" and r.headers["ETag"] == '"1"'
    body = r.json()
    assert body["asterisk_name"] == "acme-support" and body["strategy"] == "ringall"
    assert body["ring_timeout_s"] == 20 and body["service_level_s"] == 30  # defaults filled in
    got = await client.get("/tenants/acme/queues/support", headers=auth(world.supervisor))
    assert got.status_code == 200 and got.json() == body and got.headers["ETag"] == '"1"'
    listed = await client.get("/tenants/acme/queues", headers=key)
    assert listed.json() == {"items": [body], "total": 1, "limit": 50, "offset": 0}


async def test_duplicate_name_is_409_naming_the_field(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    assert (await client.post("/tenants/acme/queues", json=SUPPORT, headers=key)).status_code == 201
    assert_error(
        await client.post("/tenants/acme/queues", json=SUPPORT, headers=key),
        409,
        field="body.name",
        code="conflict",
    )
    # Same name in another tenant is fine: names are per tenant.
    r = await client.post("/tenants/globex/queues", json=SUPPORT, headers=auth(world.admin_b))
    assert r.status_code == 201 and r.json()["asterisk_name"] == "globex-support"


async def test_put_is_idempotent_and_honours_etags(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    body = {"strategy": "leastrecent"}
    r = await client.put("/tenants/acme/queues/sales", json=body, headers={**key, "If-None-Match": "*"})
    assert r.status_code == 201 and r.headers["ETag"] == '"1"'
    assert r.headers["Location"] == "/api/v1/tenants/acme/queues/sales"
    again = await client.put("/tenants/acme/queues/sales", json=body, headers=key)
    assert again.status_code == 200 and again.headers["ETag"] == '"1"' and again.json() == r.json()
    assert_error(
        await client.put("/tenants/acme/queues/sales", json=body, headers={**key, "If-None-Match": "*"}),
        412,
        code="precondition_failed",
    )
    changed = {"strategy": "ringall", "wrapup_s": 10}
    assert_error(
        await client.put("/tenants/acme/queues/sales", json=changed, headers={**key, "If-Match": '"9"'}), 412
    )
    r = await client.put("/tenants/acme/queues/sales", json=changed, headers={**key, "If-Match": '"1"'})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"' and r.json()["wrapup_s"] == 10
    assert_error(await client.delete("/tenants/acme/queues/sales", headers={**key, "If-Match": '"1"'}), 412)
    assert (
        await client.delete("/tenants/acme/queues/sales", headers={**key, "If-Match": '"2"'})
    ).status_code == 204
    assert_error(await client.get("/tenants/acme/queues/sales", headers=key), 404, code="not_found")
    assert_error(await client.delete("/tenants/acme/queues/sales", headers=key), 404)
    # Audit: create, update (with the changed fields only), delete - by this key.
    entries = await audit_of(client, world.admin, "queue")
    assert [e["action"] for e in entries] == ["delete", "update", "create"]
    assert entries[1]["changes"] == {
        "strategy": {"from": "leastrecent", "to": "ringall"},
        "wrapup_s": {"from": 0, "to": 10},
    }
    assert all(e["actor"].startswith("acme tenant-admin (") for e in entries)


async def test_validation_names_the_field(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    assert_error(
        await client.post("/tenants/acme/queues", json={"name": "Bad-Name"}, headers=key),
        422,
        field="body.name",
    )
    assert_error(
        await client.put("/tenants/acme/queues/support", json={"ring_timeout_s": 1}, headers=key),
        422,
        field="body.ring_timeout_s",
    )
    assert_error(
        await client.put("/tenants/acme/queues/support", json={"colour": "red"}, headers=key),
        422,
        field="body.colour",
    )
    # The overflow destination must exist in the tenant.
    overflow = {"max_wait_s": 60, "overflow": {"type": "queue", "target": "nowhere"}}
    error = assert_error(
        await client.put("/tenants/acme/queues/support", json=overflow, headers=key),
        422,
        field="body.overflow.target",
        code="validation_error",
    )
    assert "nowhere" in error["message"]
    assert_error(await client.put("/tenants/acme/queues/x-y", json={}, headers=key), 422, field="path.name")


async def test_delete_refused_while_referenced_naming_referrers(
    client: httpx.AsyncClient, world: World
) -> None:
    key = auth(world.admin)
    assert (await client.put("/tenants/acme/queues/support", json={}, headers=key)).status_code == 201
    did = {"destination": {"type": "queue", "target": "support"}}
    assert (await client.put("/tenants/acme/dids/+31201234567", json=did, headers=key)).status_code == 201
    error = assert_error(
        await client.delete("/tenants/acme/queues/support", headers=key), 409, code="conflict"
    )
    assert "dids.+31201234567.destination.target" in error["message"]
    assert (await client.delete("/tenants/acme/dids/+31201234567", headers=key)).status_code == 204
    assert (await client.delete("/tenants/acme/queues/support", headers=key)).status_code == 204


async def test_limit_on_queue_count(client: httpx.AsyncClient, world: World) -> None:
    r = await client.put(
        "/tenants/acme", json={"name": "Acme", "limits": {"max_queues": 1}}, headers=auth(world.reseller_a)
    )
    assert r.status_code == 200, r.text
    key = auth(world.admin)
    assert (await client.put("/tenants/acme/queues/one", json={}, headers=key)).status_code == 201
    error = assert_error(await client.put("/tenants/acme/queues/two", json={}, headers=key), 409)
    assert "limits.max_queues" in error["message"]


async def test_pagination_and_filters(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    for name, strategy in (("a1", "ringall"), ("b2", "linear"), ("c3", "ringall"), ("d4", "random")):
        r = await client.put(f"/tenants/acme/queues/{name}", json={"strategy": strategy}, headers=key)
        assert r.status_code == 201
    page = await client.get("/tenants/acme/queues", params={"limit": 2, "offset": 1}, headers=key)
    assert [q["name"] for q in page.json()["items"]] == ["b2", "c3"] and page.json()["total"] == 4
    assert 'rel="next"' in page.headers["Link"]
    ringall = await client.get("/tenants/acme/queues", params={"strategy": "ringall"}, headers=key)
    assert [q["name"] for q in ringall.json()["items"]] == ["a1", "c3"] and ringall.json()["total"] == 2
    by_name = await client.get("/tenants/acme/queues", params={"q": "B"}, headers=key)
    assert [q["name"] for q in by_name.json()["items"]] == ["b2"]
    assert_error(
        await client.get("/tenants/acme/queues", params={"limit": 0}, headers=key), 422, field="query.limit"
    )
    assert_error(
        await client.get("/tenants/acme/queues", params={"strategy": "best"}, headers=key),
        422,
        field="query.strategy",
    )


async def test_roles_and_queue_limited_keys(client: httpx.AsyncClient, world: World) -> None:
    from tests.integration.api.conftest import tenant_key

    key = auth(world.admin)
    for name in ("support", "sales"):
        assert (await client.put(f"/tenants/acme/queues/{name}", json={}, headers=key)).status_code == 201
    assert_error(
        await client.put("/tenants/acme/queues/x", json={}, headers=auth(world.supervisor)),
        403,
        code="forbidden",
    )
    assert_error(await client.get("/tenants/acme/queues", headers=auth(world.agent)), 403)
    limited = await tenant_key(client, world.admin, "acme", "supervisor", queues=["sales"])
    listed = await client.get("/tenants/acme/queues", headers=auth(limited))
    assert [q["name"] for q in listed.json()["items"]] == ["sales"]
    assert_error(await client.get("/tenants/acme/queues/support", headers=auth(limited)), 404)
    # Another tenant's admin: 404, not 403.
    assert_error(await client.get("/tenants/acme/queues/sales", headers=auth(world.admin_b)), 404)
