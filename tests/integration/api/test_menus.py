"""/tenants/{slug}/menus: IVR menus checked against the whole tenant (targets, depth, schedule)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.api.conftest import World, assert_error, auth

PROMPT = {"kind": "recording", "recording": "custom/acme-welcome"}


def menu(options: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"prompt": PROMPT, "options": options or {}, **extra}


def to_menu(name: str) -> dict[str, str]:
    return {"type": "menu", "target": name}


async def test_crud_etag_and_audit(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    assert (await client.put("/tenants/acme/queues/sales", json={}, headers=key)).status_code == 201
    body = {"name": "main", **menu({"1": {"type": "queue", "target": "sales"}})}
    r = await client.post("/tenants/acme/menus", json=body, headers=key)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/api/v1/tenants/acme/menus/main" and r.headers["ETag"] == '"1"'
    assert r.json()["context"] == "acme-ivr-main" and r.json()["timeout_s"] == 5
    assert_error(await client.post("/tenants/acme/menus", json=body, headers=key), 409, field="body.name")
    got = await client.get("/tenants/acme/menus/main", headers=auth(world.supervisor))
    assert got.json() == r.json()
    same = await client.put(
        "/tenants/acme/menus/main", json=menu({"1": {"type": "queue", "target": "sales"}}), headers=key
    )
    assert same.status_code == 200 and same.headers["ETag"] == '"1"'
    changed = menu({"1": {"type": "queue", "target": "sales"}}, timeout_s=9)
    assert_error(
        await client.put("/tenants/acme/menus/main", json=changed, headers={**key, "If-Match": '"2"'}), 412
    )
    r = await client.put("/tenants/acme/menus/main", json=changed, headers={**key, "If-Match": '"1"'})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"' and r.json()["timeout_s"] == 9
    assert (
        await client.delete("/tenants/acme/menus/main", headers={**key, "If-Match": '"2"'})
    ).status_code == 204
    audit = (await client.get("/tenants/acme/audit", headers=key)).json()["items"]
    entries = [(e["action"], e["changes"]) for e in audit if e["entity"] == "menu"]
    assert [a for a, _ in entries] == ["delete", "update", "create"]
    assert entries[1][1] == {"timeout_s": {"from": 5, "to": 9}}


async def test_dangling_targets_are_422_naming_the_field(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    error = assert_error(
        await client.put(
            "/tenants/acme/menus/main", json=menu({"1": {"type": "queue", "target": "ghost"}}), headers=key
        ),
        422,
        field="body.options.1.target",
    )
    assert "ghost" in error["message"]
    assert_error(
        await client.put(
            "/tenants/acme/menus/main",
            json=menu(timeout_destination={"type": "extension", "target": "555"}),
            headers=key,
        ),
        422,
        field="body.timeout_destination.target",
    )
    assert_error(
        await client.put("/tenants/acme/menus/main", json=menu(hours="office"), headers=key),
        422,
        field="body.hours",
    )
    # Schema-level: digit 0 is the operator unless disabled.
    assert_error(
        await client.put("/tenants/acme/menus/main", json=menu({"0": {"type": "hangup"}}), headers=key), 422
    )
    assert_error(
        await client.put("/tenants/acme/menus/main", json=menu({"x": {"type": "hangup"}}), headers=key),
        422,
        field="body.options.x.[key]",
    )


async def test_menu_depth_over_the_limit_is_422(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)  # default limits.max_menu_depth = 3
    assert (await client.put("/tenants/acme/menus/c", json=menu(), headers=key)).status_code == 201
    assert (
        await client.put("/tenants/acme/menus/b", json=menu({"1": to_menu("c")}), headers=key)
    ).status_code == 201
    assert (
        await client.put("/tenants/acme/menus/a", json=menu({"1": to_menu("b")}), headers=key)
    ).status_code == 201
    # "back to a" from c is a cycle to an ancestor: fine.
    r = await client.put("/tenants/acme/menus/c", json=menu({"9": to_menu("a")}), headers=key)
    assert r.status_code == 200, r.text
    assert (await client.put("/tenants/acme/menus/d", json=menu(), headers=key)).status_code == 201
    error = assert_error(
        await client.put(
            "/tenants/acme/menus/c", json=menu({"9": to_menu("a"), "2": to_menu("d")}), headers=key
        ),
        422,
        field="body.options.2.target",
    )
    assert "nest too deep" in error["message"]


async def test_delete_refused_while_referenced(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    assert (await client.put("/tenants/acme/menus/sub", json=menu(), headers=key)).status_code == 201
    assert (
        await client.put("/tenants/acme/menus/main", json=menu({"1": to_menu("sub")}), headers=key)
    ).status_code == 201
    error = assert_error(await client.delete("/tenants/acme/menus/sub", headers=key), 409)
    assert "menus.main.options.1.target" in error["message"]
    assert (await client.delete("/tenants/acme/menus/main", headers=key)).status_code == 204
    assert (await client.delete("/tenants/acme/menus/sub", headers=key)).status_code == 204


async def test_limit_pagination_and_filters(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    office = {
        "weekly": [{"days": ["mon"], "open": "09:00", "close": "17:00"}],
        "open_destination": {"type": "hangup"},
    }
    assert (await client.put("/tenants/acme/hours/office", json=office, headers=key)).status_code == 201
    for name in ("m1", "m2", "m3"):
        extra = {"hours": "office"} if name != "m2" else {}
        assert (
            await client.put(f"/tenants/acme/menus/{name}", json=menu(**extra), headers=key)
        ).status_code == 201
    page = await client.get("/tenants/acme/menus", params={"limit": 1, "offset": 2}, headers=key)
    assert [m["name"] for m in page.json()["items"]] == ["m3"] and page.json()["total"] == 3
    using = await client.get("/tenants/acme/menus", params={"hours": "office"}, headers=key)
    assert [m["name"] for m in using.json()["items"]] == ["m1", "m3"]
    r = await client.put(
        "/tenants/acme", json={"name": "Acme", "limits": {"max_menus": 3}}, headers=auth(world.reseller_a)
    )
    assert r.status_code == 200, r.text
    error = assert_error(await client.put("/tenants/acme/menus/m4", json=menu(), headers=key), 409)
    assert "limits.max_menus" in error["message"]
