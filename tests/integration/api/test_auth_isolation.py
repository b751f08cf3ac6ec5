"""Who may reach what: 401 without a valid key, 404 outside the key's reach (never 403, so
nothing leaks), 403 only for a role too weak inside its own tenant."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import World, assert_error, auth

USER = {"name": "Gus", "devices": [{"name": "desk", "kind": "desk"}]}

# Every tenant sub-resource route of this module's owner, as (method, path, body).
TENANT_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/tenants/{t}", None),
    ("DELETE", "/tenants/{t}", None),
    ("GET", "/tenants/{t}/users", None),
    ("POST", "/tenants/{t}/users", {"extension": "555", **USER}),
    ("GET", "/tenants/{t}/users/201", None),
    ("PUT", "/tenants/{t}/users/201", USER),
    ("DELETE", "/tenants/{t}/users/201", None),
    ("POST", "/tenants/{t}/users/201/devices/desk/rotate-secret", None),
    ("GET", "/tenants/{t}/api-keys", None),
    ("POST", "/tenants/{t}/api-keys", {"name": "x", "role": "tenant-admin"}),
    ("GET", "/tenants/{t}/api-keys/0123456789abcdef", None),
    ("DELETE", "/tenants/{t}/api-keys/0123456789abcdef", None),
    ("GET", "/tenants/{t}/audit", None),
    ("POST", "/tenants/{t}/wallboard-tokens", {}),
]


async def call(client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None,
               key: str | None) -> httpx.Response:
    return await client.request(method, path, json=body, headers=auth(key) if key else {})


@pytest.fixture
async def globex_user(client: httpx.AsyncClient, world: World) -> None:
    r = await client.put("/tenants/globex/users/201", json=USER, headers=auth(world.admin_b))
    assert r.status_code == 201


@pytest.mark.usefixtures("globex_user")
async def test_other_resellers_tenant_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    for method, template, body in TENANT_ROUTES:
        path = template.format(t="globex")
        for key in (world.reseller_a, world.admin, world.supervisor, world.agent):
            err = assert_error(await call(client, method, path, body, key), 404, code="not_found")
            assert err["message"] == "tenant 'globex' not found", (method, path)
        # Same answer as a tenant that does not exist at all: nothing to tell them apart.
        missing = await call(client, method, template.format(t="nosuch"), body, world.reseller_a)
        assert_error(missing, 404)
        assert missing.json()["error"]["message"] == "tenant 'nosuch' not found"
    # Nothing changed in globex.
    user = await client.get("/tenants/globex/users/201", headers=auth(world.admin_b))
    assert user.status_code == 200 and user.json()["version"] == 1
    audit = (await client.get("/tenants/globex/audit", headers=auth(world.admin_b))).json()
    assert {e["actor"].split(" (")[0] for e in audit["items"]} <= {"b-main", "globex tenant-admin"}


async def test_without_a_valid_key_401(client: httpx.AsyncClient, world: World) -> None:
    public_id = world.admin.split("_")[1]
    wrong_secret = f"pbx_{public_id}_{'A' * 43}"
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer garbage"},
                    {"Authorization": f"Basic {world.admin}"}, {"Authorization": f"Bearer {wrong_secret}"},
                    {"Authorization": f"Bearer pbx_{'0' * 16}_{'A' * 43}"}):
        for method, template, body in TENANT_ROUTES:
            r = await client.request(method, template.format(t="acme"), json=body, headers=headers)
            assert_error(r, 401, code="unauthorized")
            assert r.headers["WWW-Authenticate"] == "Bearer"
    assert_error(await client.get("/tenants", headers={"Authorization": "Bearer garbage"}), 401)
    assert_error(await client.post("/tenants", json={"slug": "x", "name": "x"}), 401)


async def test_revoked_key_401(client: httpx.AsyncClient, world: World) -> None:
    assert (await client.get("/tenants/acme/users", headers=auth(world.supervisor))).status_code == 200
    keys = (await client.get("/tenants/acme/api-keys", params={"role": "supervisor"},
                             headers=auth(world.admin))).json()["items"]
    assert (await client.delete(f"/tenants/acme/api-keys/{keys[0]['id']}",
                                headers=auth(world.admin))).status_code == 204
    err = assert_error(await client.get("/tenants/acme/users", headers=auth(world.supervisor)), 401)
    assert "revoked" in err["message"]


async def test_roles_inside_own_tenant(client: httpx.AsyncClient, world: World) -> None:
    assert (await client.put("/tenants/acme/users/201", json=USER,
                             headers=auth(world.admin))).status_code == 201
    writes = [(m, p.format(t="acme"), b) for m, p, b in TENANT_ROUTES if m != "GET"
              and p != "/tenants/{t}/wallboard-tokens"]
    for method, path, body in writes:
        err = assert_error(await call(client, method, path, body, world.supervisor), 403, code="forbidden")
        assert "supervisor key may not" in err["message"]
        assert_error(await call(client, method, path, body, world.agent), 403)
    # Supervisors read the tenant's configuration (but not its keys); agents do not.
    for path in ("/tenants/acme", "/tenants/acme/users", "/tenants/acme/users/201", "/tenants/acme/audit"):
        assert (await client.get(path, headers=auth(world.supervisor))).status_code == 200
        assert_error(await client.get(path, headers=auth(world.agent)), 403)
    assert_error(await client.get("/tenants/acme/api-keys", headers=auth(world.supervisor)), 403)
    # Only the reseller deletes the tenant; tenant-admins do everything else.
    assert_error(await client.delete("/tenants/acme", headers=auth(world.admin)), 403)
    assert (await client.delete("/tenants/acme/users/201", headers=auth(world.admin))).status_code == 204


async def test_tenant_admin_of_one_tenant_sees_nothing_of_another(client: httpx.AsyncClient,
                                                                    world: World) -> None:
    for method, template, body in TENANT_ROUTES:
        assert_error(await call(client, method, template.format(t="acme"), body, world.admin_b), 404)
    # ...while its own tenant works.
    assert (await client.get("/tenants/globex", headers=auth(world.admin_b))).status_code == 200
    # Reseller B's key reaches its own tenant only.
    page = (await client.get("/tenants", headers=auth(world.reseller_b))).json()
    assert [t["slug"] for t in page["items"]] == ["globex"] and page["total"] == 1
