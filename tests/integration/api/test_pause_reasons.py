"""/tenants/{slug}/pause-reasons: agents read, tenant admins write."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import World, assert_error, auth


async def test_crud_etag_audit_and_roles(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    r = await client.post(
        "/tenants/acme/pause-reasons", json={"code": "lunch", "label": "Lunch"}, headers=key
    )
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/api/v1/tenants/acme/pause-reasons/lunch"
    assert r.json()["paid"] is False and r.json()["version"] == 1
    assert_error(
        await client.post("/tenants/acme/pause-reasons", json={"code": "lunch", "label": "L"}, headers=key),
        409,
        field="body.code",
    )
    # Agents read them; they cannot write them.
    assert (
        await client.get("/tenants/acme/pause-reasons/lunch", headers=auth(world.agent))
    ).json() == r.json()
    assert (await client.get("/tenants/acme/pause-reasons", headers=auth(world.agent))).json()["total"] == 1
    assert_error(
        await client.put(
            "/tenants/acme/pause-reasons/coffee", json={"label": "Coffee"}, headers=auth(world.agent)
        ),
        403,
    )
    assert_error(await client.get("/tenants/acme/pause-reasons", headers=auth(world.admin_b)), 404)
    same = await client.put("/tenants/acme/pause-reasons/lunch", json={"label": "Lunch"}, headers=key)
    assert same.status_code == 200 and same.headers["ETag"] == '"1"'
    paid = {"label": "Lunch break", "paid": True}
    assert_error(
        await client.put("/tenants/acme/pause-reasons/lunch", json=paid, headers={**key, "If-Match": '"2"'}),
        412,
    )
    r = await client.put("/tenants/acme/pause-reasons/lunch", json=paid, headers={**key, "If-Match": '"1"'})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"' and r.json()["paid"] is True
    assert_error(
        await client.delete("/tenants/acme/pause-reasons/lunch", headers={**key, "If-Match": '"1"'}), 412
    )
    assert (await client.delete("/tenants/acme/pause-reasons/lunch", headers=key)).status_code == 204
    assert_error(await client.get("/tenants/acme/pause-reasons/lunch", headers=key), 404)
    audit = (await client.get("/tenants/acme/audit", headers=key)).json()["items"]
    entries = [(e["action"], e["changes"]) for e in audit if e["entity"] == "pause_reason"]
    assert entries == [
        ("delete", {"label": "Lunch break", "paid": True}),
        ("update", {"label": {"from": "Lunch", "to": "Lunch break"}, "paid": {"from": False, "to": True}}),
        ("create", {"label": "Lunch", "paid": False}),
    ]


async def test_validation_pagination_and_filter(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    assert_error(
        await client.put("/tenants/acme/pause-reasons/Lunch", json={"label": "x"}, headers=key),
        422,
        field="path.code",
    )
    assert_error(
        await client.put("/tenants/acme/pause-reasons/lunch", json={"label": "two\nlines"}, headers=key),
        422,
        field="body.label",
    )
    assert_error(
        await client.put("/tenants/acme/pause-reasons/lunch", json={}, headers=key), 422, field="body.label"
    )
    for code, is_paid in (("a", True), ("b", False), ("c", True)):
        r = await client.put(
            f"/tenants/acme/pause-reasons/{code}", json={"label": code.upper(), "paid": is_paid}, headers=key
        )
        assert r.status_code == 201
    paid = await client.get("/tenants/acme/pause-reasons", params={"paid": "true"}, headers=key)
    assert [p["code"] for p in paid.json()["items"]] == ["a", "c"]
    page = await client.get("/tenants/acme/pause-reasons", params={"limit": 2, "offset": 2}, headers=key)
    assert [p["code"] for p in page.json()["items"]] == ["c"] and page.json()["total"] == 3
