"""/tenants/{slug}/queues/{name}/members/{extension}: stored memberships (Asterisk is covered over
real AMI in test_apply_api.py); here without AMI, so every change is pending the next apply."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import World, assert_error, auth, tenant_key


async def setup(client: httpx.AsyncClient, key: str) -> None:
    for path, body in (
        ("/tenants/acme/users/201", {"name": "Ann"}),
        ("/tenants/acme/users/202", {"name": "Bob"}),
        ("/tenants/acme/queues/support", {}),
        ("/tenants/acme/queues/sales", {}),
    ):
        assert (await client.put(path, json=body, headers=auth(key))).status_code == 201


async def test_add_change_list_remove(client: httpx.AsyncClient, world: World) -> None:
    await setup(client, world.admin)
    key = auth(world.admin)
    r = await client.put("/tenants/acme/queues/support/members/201", json={"penalty": 3}, headers=key)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/api/v1/tenants/acme/queues/support/members/201"
    assert r.json() | {"note": None} == {
        "queue": "support",
        "extension": "201",
        "penalty": 3,
        "interface": "Local/201@acme-agents/n",
        "asterisk": "pending",
        "note": None,
    }
    same = await client.put("/tenants/acme/queues/support/members/201", json={"penalty": 3}, headers=key)
    assert same.status_code == 200 and same.json()["asterisk"] == "unchanged"
    changed = await client.put("/tenants/acme/queues/support/members/201", json={"penalty": 7}, headers=key)
    assert changed.status_code == 200 and changed.json()["penalty"] == 7
    assert (
        await client.put("/tenants/acme/queues/support/members/202", json={}, headers=key)
    ).status_code == 201
    listed = await client.get("/tenants/acme/queues/support/members", headers=auth(world.supervisor))
    assert listed.json()["total"] == 2
    assert [(m["extension"], m["penalty"]) for m in listed.json()["items"]] == [("201", 7), ("202", 0)]
    page = await client.get(
        "/tenants/acme/queues/support/members", params={"limit": 1, "offset": 1}, headers=key
    )
    assert [m["extension"] for m in page.json()["items"]] == ["202"]
    one = await client.get("/tenants/acme/queues/support/members/201", headers=key)
    assert one.json() == {
        "queue": "support",
        "extension": "201",
        "penalty": 7,
        "interface": "Local/201@acme-agents/n",
    }
    gone = await client.delete("/tenants/acme/queues/support/members/201", headers=key)
    assert gone.status_code == 200 and gone.json()["asterisk"] == "pending"
    assert_error(await client.get("/tenants/acme/queues/support/members/201", headers=key), 404)
    assert_error(await client.delete("/tenants/acme/queues/support/members/201", headers=key), 404)
    # The snapshot the renderer and apply read has the membership.
    config = await client.get("/tenants/acme/config", headers=key)
    assert config.status_code == 200
    audit = (await client.get("/tenants/acme/audit", headers=key)).json()["items"]
    members = [(e["action"], e["entity_key"], e["changes"]) for e in audit if e["entity"] == "queue_member"]
    assert members == [
        ("delete", "support/201", {"penalty": 7}),
        ("create", "support/202", {"penalty": 0}),
        ("update", "support/201", {"penalty": {"from": 3, "to": 7}}),
        ("create", "support/201", {"penalty": 3}),
    ]


async def test_validation_and_references(client: httpx.AsyncClient, world: World) -> None:
    await setup(client, world.admin)
    key = auth(world.admin)
    assert_error(
        await client.put("/tenants/acme/queues/support/members/201", json={"penalty": 11}, headers=key),
        422,
        field="body.penalty",
    )
    assert_error(
        await client.put("/tenants/acme/queues/support/members/999", json={}, headers=key),
        422,
        field="path.extension",
    )
    assert_error(
        await client.put("/tenants/acme/queues/support/members/abc", json={}, headers=key),
        422,
        field="path.extension",
    )
    assert_error(await client.put("/tenants/acme/queues/nope/members/201", json={}, headers=key), 404)
    assert_error(
        await client.put("/tenants/acme/queues/support/members/201", json={}, headers=auth(world.supervisor)),
        403,
    )


async def test_deleting_a_user_or_queue_drops_its_memberships(
    client: httpx.AsyncClient, world: World
) -> None:
    await setup(client, world.admin)
    key = auth(world.admin)
    for queue in ("support", "sales"):
        r = await client.put(f"/tenants/acme/queues/{queue}/members/201", json={}, headers=key)
        assert r.status_code == 201
    assert (await client.delete("/tenants/acme/users/201", headers=key)).status_code == 204
    assert (await client.get("/tenants/acme/queues/sales/members", headers=key)).json()["total"] == 0
    assert (
        await client.put("/tenants/acme/queues/sales/members/202", json={}, headers=key)
    ).status_code == 201
    assert (await client.delete("/tenants/acme/queues/sales", headers=key)).status_code == 204
    assert_error(await client.get("/tenants/acme/queues/sales/members", headers=key), 404)


async def test_queue_limited_supervisor_sees_only_its_queues_members(
    client: httpx.AsyncClient, world: World
) -> None:
    await setup(client, world.admin)
    limited = await tenant_key(client, world.admin, "acme", "supervisor", queues=["sales"])
    assert (await client.get("/tenants/acme/queues/sales/members", headers=auth(limited))).status_code == 200
    assert_error(await client.get("/tenants/acme/queues/support/members", headers=auth(limited)), 404)
    assert_error(await client.get("/tenants/acme/queues/support/members", headers=auth(world.admin_b)), 404)
