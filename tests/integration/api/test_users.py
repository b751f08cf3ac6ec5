"""/tenants/{slug}/users: devices with generated secrets, replace semantics, limits, references."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.integration.api.conftest import World, assert_error, auth

ANN: dict[str, Any] = {"extension": "201", "name": "Ann de Vries", "email": "ann@example.com",
                       "role": "agent",
                       "devices": [{"name": "desk", "kind": "desk"}, {"name": "soft", "kind": "softphone"}]}
SECRET = re.compile(r"[A-Za-z0-9_-]{32}")


def put_body(user: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in user.items() if k != "extension"}


async def create_ann(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    r = await client.post("/tenants/acme/users", json=ANN, headers=auth(key))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_devices_get_strong_generated_credentials(client: httpx.AsyncClient, world: World) -> None:
    r = await client.post("/tenants/acme/users", json=ANN, headers=auth(world.admin))
    assert r.status_code == 201 and r.headers["Location"] == "/api/v1/tenants/acme/users/201"
    devices = {d["name"]: d for d in r.json()["devices"]}
    assert devices["desk"]["endpoint"] == devices["desk"]["username"] == "acme-201-desk"
    assert devices["soft"]["endpoint"] == "acme-201-soft"
    assert all(SECRET.fullmatch(d["secret"]) for d in devices.values())
    assert devices["desk"]["secret"] != devices["soft"]["secret"]
    # The reseller sees secrets too; a supervisor sees them masked.
    as_reseller = await client.get("/tenants/acme/users/201", headers=auth(world.reseller_a))
    assert {d["name"]: d["secret"] for d in as_reseller.json()["devices"]} == \
        {n: d["secret"] for n, d in devices.items()}
    as_supervisor = await client.get("/tenants/acme/users/201", headers=auth(world.supervisor))
    assert as_supervisor.status_code == 200
    assert {d["secret"] for d in as_supervisor.json()["devices"]} == {"********"}
    listed = await client.get("/tenants/acme/users", headers=auth(world.supervisor))
    assert "********" in listed.text and devices["desk"]["secret"] not in listed.text


async def test_put_keeps_unchanged_devices_secrets(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    first = await create_ann(client, world.admin)
    secrets = {d["name"]: d["secret"] for d in first["devices"]}
    # Same body (devices in another order): nothing changes, not even the version.
    same = put_body(ANN) | {"devices": list(reversed(ANN["devices"]))}
    r = await client.put("/tenants/acme/users/201", json=same, headers=key)
    assert r.status_code == 200 and r.headers["ETag"] == '"1"' and r.json() == first
    # desk unchanged, soft changes kind, web is new.
    changed = put_body(ANN) | {"devices": [{"name": "desk", "kind": "desk"}, {"name": "soft",
                                                                              "kind": "webrtc"},
                                           {"name": "web", "kind": "webrtc"}]}
    r = await client.put("/tenants/acme/users/201", json=changed, headers={**key, "If-Match": '"1"'})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"'
    after = {d["name"]: d["secret"] for d in r.json()["devices"]}
    assert after["desk"] == secrets["desk"]
    assert after["soft"] != secrets["soft"] and SECRET.fullmatch(after["soft"])
    assert SECRET.fullmatch(after["web"])
    # Dropping a device removes it.
    r = await client.put("/tenants/acme/users/201", json=put_body(ANN) | {"devices": []}, headers=key)
    assert r.json()["devices"] == [] and r.json()["version"] == 3


async def test_put_creates_with_201_and_preconditions(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    r = await client.put("/tenants/acme/users/300", json={"name": "Bob"}, headers={**key,
                                                                                   "If-None-Match": "*"})
    assert r.status_code == 201 and r.headers["ETag"] == '"1"' and r.json()["extension"] == "300"
    assert_error(await client.put("/tenants/acme/users/300", json={"name": "Bob"},
                                  headers={**key, "If-None-Match": "*"}), 412)
    assert_error(await client.put("/tenants/acme/users/300", json={"name": "Bobby"},
                                  headers={**key, "If-Match": '"7"'}), 412)
    assert_error(await client.put("/tenants/acme/users/x1", json={"name": "Bob"}, headers=key), 422,
                 field="path.extension")


async def test_validation_and_duplicates(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    await create_ann(client, world.admin)
    assert_error(await client.post("/tenants/acme/users", json=ANN, headers=key), 409, field="body.extension")
    assert_error(await client.post("/tenants/acme/users", json={**ANN, "extension": "01"}, headers=key), 422,
                 field="body.extension")
    assert_error(await client.post("/tenants/acme/users", json={**ANN, "extension": "202", "name": "A\nB"},
                                   headers=key), 422, field="body.name")
    assert_error(await client.post("/tenants/acme/users", json={**ANN, "extension": "202", "secret": "x"},
                                   headers=key), 422, field="body.secret")
    assert_error(await client.post("/tenants/acme/users", json={**ANN, "extension": "202", "devices": [
        {"name": "desk", "kind": "desk",
         "secret": "mine"}]}, headers=key), 422, field="body.devices.0.secret")
    assert_error(await client.post("/tenants/acme/users", json={**ANN, "extension": "202", "devices": [
        {"name": "desk", "kind": "desk"}, {"name": "desk", "kind": "softphone"}]}, headers=key), 422,
        field="body")  # a model-level rule of UserIn: pydantic locates it at the body
    assert_error(await client.post("/tenants/acme/users", json={**ANN, "extension": "202", "role": "boss"},
                                   headers=key), 422, field="body.role")


async def test_user_limit(client: httpx.AsyncClient, world: World) -> None:
    r = await client.put("/tenants/acme", json={"name": "Acme", "limits": {"max_users": 2}},
                         headers=auth(world.reseller_a))
    assert r.status_code == 200
    for ext in ("201", "202"):
        assert (await client.put(f"/tenants/acme/users/{ext}", json={"name": "U"},
                                 headers=auth(world.admin))).status_code == 201
    err = assert_error(await client.post("/tenants/acme/users", json={"extension": "203", "name": "U"},
                                         headers=auth(world.admin)), 409)
    assert "limits.max_users" in err["message"] and "2" in err["message"]
    # Replacing an existing user is not a new user.
    assert (await client.put("/tenants/acme/users/202", json={"name": "U2"},
                             headers=auth(world.admin))).status_code == 200


async def test_delete_refused_while_referenced(client: httpx.AsyncClient, world: World) -> None:
    await create_ann(client, world.admin)
    r = await client.put("/tenants/acme", json={"name": "Acme", "operator": {"type": "voicemail",
                                                                             "target": "201"}},
                         headers=auth(world.admin))
    assert r.status_code == 200, r.text
    err = assert_error(await client.delete("/tenants/acme/users/201", headers=auth(world.admin)), 409)
    assert "operator.target" in err["message"]
    assert_error(await client.delete("/tenants/acme/users/201", headers=auth(world.supervisor)), 403)
    r = await client.put("/tenants/acme", json={"name": "Acme"}, headers=auth(world.admin))
    assert_error(await client.delete("/tenants/acme/users/201", headers={**auth(world.admin),
                                                                         "If-Match": '"9"'}), 412)
    assert (await client.delete("/tenants/acme/users/201", headers=auth(world.admin))).status_code == 204
    assert_error(await client.get("/tenants/acme/users/201", headers=auth(world.admin)), 404)
    assert_error(await client.delete("/tenants/acme/users/201", headers=auth(world.admin)), 404)


async def test_rotate_secret(client: httpx.AsyncClient, world: World) -> None:
    before = {d["name"]: d["secret"] for d in (await create_ann(client, world.admin))["devices"]}
    r = await client.post("/tenants/acme/users/201/devices/desk/rotate-secret", headers=auth(world.admin))
    assert r.status_code == 200 and r.json()["endpoint"] == "acme-201-desk"
    assert SECRET.fullmatch(r.json()["secret"]) and r.json()["secret"] != before["desk"]
    user = (await client.get("/tenants/acme/users/201", headers=auth(world.admin))).json()
    assert user["version"] == 2
    assert {d["name"]: d["secret"] for d in user["devices"]} == {"desk": r.json()["secret"],
                                                                 "soft": before["soft"]}
    assert_error(await client.post("/tenants/acme/users/201/devices/desk/rotate-secret",
                                   headers=auth(world.supervisor)), 403)
    assert_error(await client.post("/tenants/acme/users/201/devices/nope/rotate-secret",
                                   headers=auth(world.admin)), 404)


async def test_list_filters_and_pages(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.admin)
    for ext, name, role in (("201", "Ann", "agent"), ("202", "Bob", "supervisor"), ("203", "Cas", "agent"),
                            ("210", "Dirk", "admin")):
        r = await client.put(f"/tenants/acme/users/{ext}", json={"name": name, "role": role}, headers=key)
        assert r.status_code == 201
    page = (await client.get("/tenants/acme/users", params={"limit": 2, "offset": 2}, headers=key)).json()
    assert page["total"] == 4 and [u["extension"] for u in page["items"]] == ["203", "210"]
    agents = (await client.get("/tenants/acme/users", params={"role": "agent"}, headers=key)).json()
    assert [u["extension"] for u in agents["items"]] == ["201", "203"]
    q = (await client.get("/tenants/acme/users", params={"q": "21"}, headers=key)).json()
    assert [u["name"] for u in q["items"]] == ["Dirk"]
    q = (await client.get("/tenants/acme/users", params={"q": "bo"}, headers=key)).json()
    assert [u["name"] for u in q["items"]] == ["Bob"]
    assert_error(await client.get("/tenants/acme/users", params={"role": "boss"}, headers=key), 422,
                 field="query.role")


async def test_writes_are_audited_without_secrets(client: httpx.AsyncClient, world: World) -> None:
    user = await create_ann(client, world.admin)
    await client.put("/tenants/acme/users/201", json=put_body(ANN) | {"name": "Ann Jansen"},
                     headers=auth(world.admin))
    rotated = await client.post("/tenants/acme/users/201/devices/desk/rotate-secret",
                                headers=auth(world.admin))
    await client.delete("/tenants/acme/users/201", headers=auth(world.admin))
    r = await client.get("/tenants/acme/audit", params={"entity": "user"}, headers=auth(world.supervisor))
    entries = r.json()["items"]
    assert [e["action"] for e in entries] == ["delete", "update", "create"]  # newest first
    admin_id = (await client.get("/tenants/acme/api-keys", params={"role": "tenant-admin"},
                                 headers=auth(world.admin))).json()["items"][0]["id"]
    assert all(e["actor"] == f"acme tenant-admin ({admin_id})" for e in entries)
    assert entries[1]["changes"] == {"name": {"from": "Ann de Vries", "to": "Ann Jansen"}}
    assert entries[2]["changes"]["devices"] == [{"name": "desk", "kind": "desk"},
                                                {"name": "soft", "kind": "softphone"}]
    everything = (await client.get("/tenants/acme/audit", headers=auth(world.admin))).text
    for secret in [d["secret"] for d in user["devices"]] + [rotated.json()["secret"]]:
        assert secret not in everything
    device = (await client.get("/tenants/acme/audit", params={"entity": "device"}, headers=auth(world.admin)))
    assert device.json()["items"][0]["changes"] == {"secret": "***"}
    assert json.loads(everything)["total"] >= 4
