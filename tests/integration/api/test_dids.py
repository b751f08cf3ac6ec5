"""/tenants/{slug}/dids: inbound numbers, globally unique across tenants."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import World, assert_error, auth

NUMBER = "+31201234567"
TO_SUPPORT = {"destination": {"type": "queue", "target": "support"}, "description": "main line"}


async def test_crud_etag_audit_and_plus_in_the_path(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    assert (await client.put("/tenants/acme/queues/support", json={}, headers=key)).status_code == 201
    r = await client.post("/tenants/acme/dids", json={"number": NUMBER, **TO_SUPPORT}, headers=key)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/api/v1/tenants/acme/dids/{NUMBER}" and r.headers["ETag"] == '"1"'
    assert_error(
        await client.post("/tenants/acme/dids", json={"number": NUMBER, **TO_SUPPORT}, headers=key),
        409,
        field="body.number",
    )
    assert (await client.get("/tenants/acme/dids/%2B31201234567", headers=key)).json() == r.json()
    assert (
        await client.get(f"/tenants/acme/dids/{NUMBER}", headers=auth(world.supervisor))
    ).json() == r.json()
    same = await client.put(f"/tenants/acme/dids/{NUMBER}", json=TO_SUPPORT, headers=key)
    assert same.status_code == 200 and same.headers["ETag"] == '"1"'
    hang_up = {"destination": {"type": "hangup"}}
    assert_error(
        await client.put(f"/tenants/acme/dids/{NUMBER}", json=hang_up, headers={**key, "If-Match": '"3"'}),
        412,
    )
    r = await client.put(f"/tenants/acme/dids/{NUMBER}", json=hang_up, headers={**key, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["description"] is None and r.headers["ETag"] == '"2"'
    assert (await client.delete(f"/tenants/acme/dids/{NUMBER}", headers=key)).status_code == 204
    assert_error(await client.delete(f"/tenants/acme/dids/{NUMBER}", headers=key), 404)
    audit = (await client.get("/tenants/acme/audit", headers=key)).json()["items"]
    entries = [(e["action"], e["changes"]) for e in audit if e["entity"] == "did"]
    assert [a for a, _ in entries] == ["delete", "update", "create"]
    assert entries[1][1] == {
        "description": {"from": "main line", "to": None},
        "destination": {
            "from": {"type": "queue", "target": "support"},
            "to": {"type": "hangup", "target": None},
        },
    }


async def test_number_routed_by_another_tenant_says_only_already_routed(
    client: httpx.AsyncClient, world: World
) -> None:
    r = await client.put(
        f"/tenants/globex/dids/{NUMBER}",
        json={"destination": {"type": "hangup"}},
        headers=auth(world.admin_b),
    )
    assert r.status_code == 201
    for attempt, field in (
        (
            client.put(
                f"/tenants/acme/dids/{NUMBER}",
                json={"destination": {"type": "hangup"}},
                headers=auth(world.admin),
            ),
            "path.number",
        ),
        (
            client.post(
                "/tenants/acme/dids",
                json={"number": NUMBER, "destination": {"type": "hangup"}},
                headers=auth(world.admin),
            ),
            "body.number",
        ),
    ):
        error = assert_error(await attempt, 409, field=field, code="conflict")
        assert error["message"] == f"number {NUMBER} is already routed"
        assert "globex" not in str(error)
    # Still nothing to see for acme.
    assert_error(await client.get(f"/tenants/acme/dids/{NUMBER}", headers=auth(world.admin)), 404)
    assert_error(await client.get(f"/tenants/globex/dids/{NUMBER}", headers=auth(world.admin)), 404)


async def test_validation_names_the_field(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    error = assert_error(
        await client.put(f"/tenants/acme/dids/{NUMBER}", json=TO_SUPPORT, headers=key),
        422,
        field="body.destination.target",
    )
    assert "support" in error["message"]
    assert_error(
        await client.put("/tenants/acme/dids/12", json=TO_SUPPORT, headers=key), 422, field="path.number"
    )
    assert_error(
        await client.put(
            f"/tenants/acme/dids/{NUMBER}",
            json={"destination": {"type": "hangup", "target": "x"}},
            headers=key,
        ),
        422,
        field="body.destination",
    )
    assert_error(
        await client.post("/tenants/acme/dids", json=TO_SUPPORT, headers=key), 422, field="body.number"
    )


async def test_pagination_and_destination_filter(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    assert (await client.put("/tenants/acme/users/201", json={"name": "Ann"}, headers=key)).status_code == 201
    for i, dest in enumerate(
        [
            {"type": "hangup"},
            {"type": "extension", "target": "201"},
            {"type": "hangup"},
            {"type": "voicemail", "target": "201"},
        ]
    ):
        r = await client.put(f"/tenants/acme/dids/020123456{i}", json={"destination": dest}, headers=key)
        assert r.status_code == 201, r.text
    page = await client.get("/tenants/acme/dids", params={"limit": 2}, headers=key)
    assert [d["number"] for d in page.json()["items"]] == ["0201234560", "0201234561"]
    assert page.json()["total"] == 4 and "offset=2" in page.headers["Link"]
    hangups = await client.get("/tenants/acme/dids", params={"destination_type": "hangup"}, headers=key)
    assert [d["number"] for d in hangups.json()["items"]] == ["0201234560", "0201234562"]
    assert hangups.json()["total"] == 2
    by_number = await client.get("/tenants/acme/dids", params={"q": "563"}, headers=key)
    assert [d["number"] for d in by_number.json()["items"]] == ["0201234563"]
    # The user they route to cannot go.
    error = assert_error(await client.delete("/tenants/acme/users/201", headers=key), 409)
    assert "dids.0201234561.destination.target" in error["message"]
