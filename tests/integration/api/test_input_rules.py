"""Input the database cannot hold or the schema does not allow is a 422 naming the field, on
SQLite and PostgreSQL alike - never a 500 from the driver, never silently coerced."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import World, assert_error, auth


@pytest.mark.parametrize("char", ["\x00", "\x1c", "\x7f", "\x85", "\u2028"])
async def test_a_control_character_in_a_text_field_is_a_422(
    client: httpx.AsyncClient, world: World, char: str
) -> None:
    h = auth(world.admin)
    body = {"name": "Ann", "email": f"a{char}b@x.com"}
    r = await client.put("/tenants/acme/users/201", json=body, headers=h)
    err = assert_error(r, 422, field="body.email")
    if char in "\x00\x1c\x7f":  # the others the e-mail pattern refuses first
        assert "control characters" in err["message"]
    for path, body, field in (
        ("/tenants/acme/users/201", {"name": f"A{char}nn"}, "body.name"),
        ("/tenants/acme/pause-reasons/lunch", {"label": f"Lun{char}ch"}, "body.label"),
        ("/tenants/acme/menus/main", {"prompt": {"kind": "tts", "text": f"Hi{char}"}}, "body.prompt.text"),
        ("/tenants/acme", {"name": f"Acme{char}"}, "body.name"),
    ):
        assert_error(await client.put(path, json=body, headers=h), 422, field=field)
    # Nothing was written.
    assert (await client.get("/tenants/acme/users", headers=h)).json()["total"] == 0


async def test_a_lone_surrogate_is_a_422_not_a_driver_error(client: httpx.AsyncClient, world: World) -> None:
    body = b'{"name": "Ann \\ud800"}'
    r = await client.put("/tenants/acme/users/201", content=body,
                         headers={**auth(world.admin), "Content-Type": "application/json"})
    assert_error(r, 422, field="body.name")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/tenants", {"q": "a\x00b"}),
        ("/tenants/acme/audit", {"entity": "user\x00"}),
        ("/tenants/acme/audit", {"entity_key": "201\x00"}),
    ],
)
async def test_a_control_character_in_a_query_parameter_is_a_422(
    client: httpx.AsyncClient, world: World, path: str, params: dict[str, str]
) -> None:
    (name,) = params
    assert_error(await client.get(path, params=params, headers=auth(world.reseller_a)), 422,
                 field=f"query.{name}")


async def test_a_control_character_in_a_path_is_a_404_or_422_not_a_500(
    client: httpx.AsyncClient, world: World
) -> None:
    h = auth(world.reseller_a)
    for path in ("/tenants/ac%00me", "/tenants/acme/api-keys/0123456789abcde%00",
                 "/tenants/acme/users/201/devices/de%00sk/rotate-secret"):
        r = await client.request("POST" if path.endswith("secret") else "GET", path, headers=h)
        assert_error(r, 404)
    assert_error(await client.put("/tenants/ac%00me", json={"name": "x"}, headers=h), 422, field="path.slug")
    for path in ("/tenants/acme/users/2%0001", "/tenants/acme/queues/sup%00port",
                 "/tenants/acme/callbacks/x%00y"):
        assert_error(await client.get(path, headers=h), 422)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/tenants/acme/pause-reasons/lunch", {"label": "Lunch", "paid": 0}, "body.paid"),
        ("/tenants/acme/pause-reasons/lunch", {"label": "Lunch", "paid": "yes"}, "body.paid"),
        ("/tenants/acme/queues/support", {"ring_timeout_s": 15.0}, "body.ring_timeout_s"),
        ("/tenants/acme/queues/support", {"announce_position": "false"}, "body.announce_position"),
        ("/tenants", {"slug": "initech", "name": "Initech", "limits": {"max_users": "5"}},
         "body.limits.max_users"),
    ],
)
async def test_the_schema_types_are_enforced_strictly(
    client: httpx.AsyncClient, world: World, path: str, body: dict[str, Any], field: str
) -> None:
    key = world.reseller_a if path == "/tenants" else world.admin
    send = client.post if path == "/tenants" else client.put
    assert_error(await send(path, json=body, headers=auth(key)), 422, field=field)


async def test_a_float_penalty_is_refused(client: httpx.AsyncClient, world: World) -> None:
    h = auth(world.admin)
    assert (await client.put("/tenants/acme/users/201", json={"name": "Ann"}, headers=h)).status_code == 201
    assert (await client.put("/tenants/acme/queues/support", json={}, headers=h)).status_code == 201
    r = await client.put("/tenants/acme/queues/support/members/201", json={"penalty": 5.0}, headers=h)
    assert_error(r, 422, field="body.penalty")
    r = await client.put("/tenants/acme/queues/support/members/201", json={"penalty": 5}, headers=h)
    assert r.status_code == 201 and r.json()["penalty"] == 5
