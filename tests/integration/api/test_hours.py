"""/tenants/{slug}/hours: business-hours schedules."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.api.conftest import World, assert_error, auth

OFFICE: dict[str, Any] = {
    "weekly": [{"days": ["mon", "tue", "wed", "thu", "fri"], "open": "08:30", "close": "17:00"}],
    "holidays": [{"date": "2025-12-25", "name": "Christmas"}],
    "open_destination": {"type": "queue", "target": "support"},
    "closed_destination": {"type": "voicemail", "target": "201"},
}


async def prerequisites(client: httpx.AsyncClient, key: str) -> None:
    for path, body in (("/tenants/acme/queues/support", {}), ("/tenants/acme/users/201", {"name": "Ann"})):
        assert (await client.put(path, json=body, headers=auth(key))).status_code == 201


async def test_crud_etag_and_audit(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    await prerequisites(client, world.admin)
    r = await client.post("/tenants/acme/hours", json={"name": "office", **OFFICE}, headers=key)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/api/v1/tenants/acme/hours/office"
    assert r.json()["holidays"] == OFFICE["holidays"] and r.json()["closed_message"] is None
    assert_error(
        await client.post("/tenants/acme/hours", json={"name": "office", **OFFICE}, headers=key),
        409,
        field="body.name",
    )
    assert (await client.put("/tenants/acme/hours/office", json=OFFICE, headers=key)).headers["ETag"] == '"1"'
    later = OFFICE | {"weekly": [{"days": ["sat"], "open": "10:00", "close": "12:00"}]}
    assert_error(
        await client.put("/tenants/acme/hours/office", json=later, headers={**key, "If-Match": '"0"'}), 412
    )
    r = await client.put("/tenants/acme/hours/office", json=later, headers={**key, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert (await client.get("/tenants/acme/hours/office", headers=auth(world.supervisor))).json() == r.json()
    listed = await client.get("/tenants/acme/hours", params={"q": "off"}, headers=key)
    assert listed.json()["total"] == 1
    assert (await client.delete("/tenants/acme/hours/office", headers=key)).status_code == 204
    assert_error(await client.get("/tenants/acme/hours/office", headers=key), 404)
    audit = (await client.get("/tenants/acme/audit", headers=key)).json()["items"]
    assert [e["action"] for e in audit if e["entity"] == "hours"] == ["delete", "update", "create"]


async def test_validation_names_the_field(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    error = assert_error(
        await client.put("/tenants/acme/hours/office", json=OFFICE, headers=key),
        422,
        field="body.open_destination.target",
    )
    assert "support" in error["message"]
    assert_error(
        await client.put(
            "/tenants/acme/hours/office",
            json=OFFICE | {"weekly": [{"days": ["mon"], "open": "18:00", "close": "09:00"}]},
            headers=key,
        ),
        422,
        field="body.weekly.0",
    )
    assert_error(
        await client.put(
            "/tenants/acme/hours/office",
            json=OFFICE | {"weekly": [{"days": ["someday"], "open": "08:00", "close": "09:00"}]},
            headers=key,
        ),
        422,
        field="body.weekly.0.days.0",
    )
    assert_error(
        await client.put("/tenants/acme/hours/office", json=OFFICE | {"weekly": []}, headers=key),
        422,
        field="body.weekly",
    )


async def test_schedule_in_use_cannot_be_deleted(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    await prerequisites(client, world.admin)
    assert (await client.put("/tenants/acme/hours/office", json=OFFICE, headers=key)).status_code == 201
    main = {"prompt": {"kind": "tts", "text": "Welcome"}, "hours": "office"}
    assert (await client.put("/tenants/acme/menus/main", json=main, headers=key)).status_code == 201
    did = {"destination": {"type": "hours", "target": "office"}}
    assert (await client.put("/tenants/acme/dids/0201234567", json=did, headers=key)).status_code == 201
    error = assert_error(await client.delete("/tenants/acme/hours/office", headers=key), 409)
    assert "menus.main.hours" in error["message"] and "dids.0201234567.destination.target" in error["message"]
    # And what it routes to is protected in turn.
    error = assert_error(await client.delete("/tenants/acme/queues/support", headers=key), 409)
    assert "hours.office.open_destination.target" in error["message"]
