"""Every route and method of the OpenAPI document, called with keys that must not reach reseller
A's tenant: reseller B's key and another tenant's admin get 404 (never 403, and the same answer as
for a tenant that does not exist), no key gets 401, and A's data is untouched afterwards."""

from __future__ import annotations

from typing import Any

import httpx

from pbx_core.api import ApiContext, build_api
from tests.integration.api.conftest import World, auth, tenant_key

NUMBER = "+31201234567"
METHODS = ("get", "post", "put", "patch", "delete")


def operations(ctx: ApiContext) -> list[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = build_api(ctx).openapi()["paths"]
    return [(method, path) for path, item in sorted(paths.items()) for method in METHODS if method in item]


def fill(path: str, values: dict[str, str]) -> str:
    """``path`` with A's real object keys; which ``{name}`` depends on the collection before it."""
    parts = path.strip("/").split("/")
    out = []
    for i, part in enumerate(parts):
        if part.startswith("{"):
            param = part[1:-1]
            key = f"{parts[i - 1]}.{param}" if param == "name" else param
            part = values[key]
        out.append(part)
    return "/" + "/".join(out)


async def provision_a(client: httpx.AsyncClient, world: World) -> dict[str, str]:
    h = auth(world.admin)
    for path, body in (
        ("/tenants/acme/users/201", {"name": "Ann", "devices": [{"name": "desk", "kind": "desk"}]}),
        ("/tenants/acme/queues/support", {}),
        ("/tenants/acme/queues/support/members/201", {"penalty": 1}),
        (
            "/tenants/acme/hours/office",
            {
                "weekly": [{"days": ["mon"], "open": "09:00", "close": "17:00"}],
                "open_destination": {"type": "queue", "target": "support"},
            },
        ),
        (
            "/tenants/acme/menus/main",
            {
                "prompt": {"kind": "tts", "text": "Hi"},
                "hours": "office",
                "options": {"1": {"type": "queue", "target": "support"}},
            },
        ),
        (f"/tenants/acme/dids/{NUMBER}", {"destination": {"type": "menu", "target": "main"}}),
        ("/tenants/acme/pause-reasons/lunch", {"label": "Lunch"}),
    ):
        r = await client.put(path, json=body, headers=h)
        assert r.status_code == 201, (path, r.text)
    keys = (await client.get("/tenants/acme/api-keys", headers=h)).json()["items"]
    booked = await client.post(
        "/tenants/acme/callbacks", json={"queue": "support", "number": NUMBER}, headers=h
    )
    assert booked.status_code == 201, booked.text
    return {
        "id": booked.json()["id"],
        "slug": "acme",
        "extension": "201",
        "devices.name": "desk",
        "queues.name": "support",
        "menus.name": "main",
        "hours.name": "office",
        "number": NUMBER,
        "code": "lunch",
        "key_id": keys[0]["id"],
    }


# Valid bodies, so a 404 is the tenant wall and not a body check that happened to come first.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("put", "/tenants/{slug}"): {"name": "Taken Over"},
    ("post", "/tenants/{slug}/users"): {"extension": "202", "name": "Eve"},
    ("put", "/tenants/{slug}/users/{extension}"): {"name": "Eve"},
    ("post", "/tenants/{slug}/queues"): {"name": "evil"},
    ("put", "/tenants/{slug}/queues/{name}"): {"strategy": "ringall"},
    ("put", "/tenants/{slug}/queues/{name}/members/{extension}"): {"penalty": 0},
    ("post", "/tenants/{slug}/menus"): {"name": "evil", "prompt": {"kind": "tts", "text": "x"}},
    ("put", "/tenants/{slug}/menus/{name}"): {"prompt": {"kind": "tts", "text": "x"}},
    ("post", "/tenants/{slug}/hours"): {
        "name": "evil",
        "weekly": [{"days": ["mon"], "open": "09:00", "close": "10:00"}],
        "open_destination": {"type": "hangup"},
    },
    ("put", "/tenants/{slug}/hours/{name}"): {
        "weekly": [{"days": ["mon"], "open": "09:00", "close": "10:00"}],
        "open_destination": {"type": "hangup"},
    },
    ("post", "/tenants/{slug}/dids"): {"number": "0201111111", "destination": {"type": "hangup"}},
    ("put", "/tenants/{slug}/dids/{number}"): {"destination": {"type": "hangup"}},
    ("post", "/tenants/{slug}/pause-reasons"): {"code": "evil", "label": "x"},
    ("put", "/tenants/{slug}/pause-reasons/{code}"): {"label": "x"},
    ("post", "/tenants/{slug}/api-keys"): {"name": "evil", "role": "tenant-admin"},
    ("post", "/tenants/{slug}/wallboard-tokens"): {},
    ("post", "/tenants"): {"slug": "evil", "name": "Evil"},
    ("post", "/tenants/{slug}/callbacks"): {"queue": "support", "number": "+31201234567"},
}


def body_for(method: str, path: str = "") -> dict[str, Any] | None:
    if (method, path) in BODIES:
        return BODIES[(method, path)]
    return {} if method in ("post", "put", "patch") else None


def test_every_write_with_a_body_has_a_valid_one(ctx: ApiContext) -> None:
    doc = build_api(ctx).openapi()["paths"]
    with_body = {
        (m, p)
        for p, item in doc.items()
        for m, op in item.items()
        if isinstance(op, dict) and "requestBody" in op and op["requestBody"].get("required")
    }
    assert with_body <= set(BODIES), sorted(with_body - set(BODIES))


async def state_of_a(client: httpx.AsyncClient, world: World) -> list[Any]:
    h = auth(world.reseller_a)
    paths = [
        "/tenants/acme",
        "/tenants/acme/users",
        "/tenants/acme/queues",
        "/tenants/acme/queues/support/members",
        "/tenants/acme/menus",
        "/tenants/acme/hours",
        "/tenants/acme/dids",
        "/tenants/acme/pause-reasons",
        "/tenants/acme/api-keys",
        "/tenants/acme/audit",
        "/tenants/acme/apply-runs",
        "/tenants/acme/callbacks",
    ]
    return [(await client.get(p, headers=h, params={"limit": 200})).json() for p in paths]


def normalised(response: httpx.Response, slug: str) -> str:
    return response.text.replace(slug, "SLUG")


async def test_other_reseller_and_other_tenant_get_404_on_every_route(
    client: httpx.AsyncClient, world: World, ctx: ApiContext
) -> None:
    values = await provision_a(client, world)
    before = await state_of_a(client, world)
    ops = operations(ctx)
    assert len(ops) >= 30  # the whole API is in the document
    outsiders = {"reseller B": world.reseller_b, "globex admin": world.admin_b}
    tenant_routes = [(m, p) for m, p in ops if "{slug}" in p]
    for who, key in outsiders.items():
        for method, path in tenant_routes:
            url = fill(path, values)
            r = await client.request(method.upper(), url, json=body_for(method, path), headers=auth(key))
            if (method, path) == ("put", "/tenants/{slug}") and who == "reseller B":
                # The documented exception: as a create, the slug is taken (slugs are global).
                assert_slug_taken(r)
                continue
            assert r.status_code == 404, (who, method, url, r.text)
            assert r.json()["error"]["code"] == "not_found"
            # Indistinguishable from a tenant that does not exist.
            ghost = await client.request(
                method.upper(),
                fill(path, values | {"slug": "ghost"}),
                json=body_for(method, path),
                headers=auth(key),
            )
            assert normalised(r, "acme") == normalised(ghost, "ghost"), (who, method, url)
    # Routes without a tenant: each outsider sees only its own.
    for who, key in outsiders.items():
        for method, path in ops:
            if "{slug}" in path:
                continue
            r = await client.request(method.upper(), path, json=body_for(method, path), headers=auth(key))
            assert r.status_code not in (200, 201) or "acme" not in r.text, (who, method, path, r.text)
    listed = await client.get("/tenants", headers=auth(world.reseller_b))
    assert "acme" not in [t["slug"] for t in listed.json()["items"]] and listed.json()["total"] >= 1
    assert await state_of_a(client, world) == before


TAKEN = {"error": {"status": 409, "code": "conflict",
                   "message": "tenant slug 'acme' is already taken; choose another",
                   "fields": [{"field": "body.slug", "message": "already taken"}]}}


def assert_slug_taken(r: httpx.Response) -> None:
    """The documented 409 (README "Keys and isolation", the OpenAPI descriptions): exactly this
    body, naming nothing of the tenant or its reseller."""
    assert r.status_code == 409 and r.json() == TAKEN, r.text


async def test_another_resellers_slug_is_taken_and_says_nothing_more(
    client: httpx.AsyncClient, world: World, ctx: ApiContext
) -> None:
    """Slugs are global (they name Asterisk objects): creating one in use is a 409, the same
    whether it is one's own or another reseller's; nothing else about the tenant leaks, and the
    tenant is untouched. Keys that cannot create tenants get the 404 of everything else."""
    await provision_a(client, world)
    body = {"name": "Taken Over", "timezone": "UTC"}
    for key, slug in ((world.admin_b, "acme"), (world.agent, "globex")):  # (may not create tenants)
        r = await client.put(f"/tenants/{slug}", json=body, headers=auth(key))
        assert r.status_code == 404, r.text
    before = await state_of_a(client, world)
    answers = [
        await client.put("/tenants/acme", json=body, headers=auth(world.reseller_b)),
        await client.post("/tenants", json={"slug": "acme", **body}, headers=auth(world.reseller_b)),
        await client.post("/tenants", json={"slug": "acme", **body}, headers=auth(world.reseller_a)),
        await client.put("/tenants/acme", json=body,
                         headers={**auth(world.reseller_b), "If-None-Match": "*"}),
    ]
    for r in answers:
        assert_slug_taken(r)
        assert "Reseller A" not in r.text and "Acme" not in r.text and "ETag" not in r.headers
    assert await state_of_a(client, world) == before
    doc = build_api(ctx).openapi()
    for method, path in (("put", "/tenants/{slug}"), ("post", "/tenants")):
        op = doc["paths"][path][method]
        assert "slugs are global" in op["responses"]["409"]["description"], (method, path)
    assert "slugs are global" in doc["info"]["description"]


async def test_own_tenant_but_other_keys_objects_do_not_leak(client: httpx.AsyncClient, world: World) -> None:
    """A's keys on B's objects: the same wall from the other side."""
    values = await provision_a(client, world)
    h = auth(world.admin_b)
    assert (await client.put("/tenants/globex/queues/support", json={}, headers=h)).status_code == 201
    for key in (world.admin, world.supervisor, world.agent, world.reseller_a):
        for path in ("/tenants/globex", "/tenants/globex/queues/support", "/tenants/globex/queues"):
            assert (await client.get(path, headers=auth(key))).status_code == 404
    assert values["slug"] == "acme"


async def test_no_key_or_a_bad_key_is_401_everywhere(
    client: httpx.AsyncClient, world: World, ctx: ApiContext
) -> None:
    values = await provision_a(client, world)
    revoked = await tenant_key(client, world.admin, "acme", "tenant-admin", name="old")
    public_id = revoked.split("_")[1]
    assert (
        await client.delete(f"/tenants/acme/api-keys/{public_id}", headers=auth(world.admin))
    ).status_code == 204
    before = await state_of_a(client, world)
    for method, path in operations(ctx):
        url = fill(path, values)
        for headers in (
            {},
            auth("pbx_0000000000000000_nope"),
            auth(revoked),
            {"Authorization": "Basic eDp5"},
        ):
            r = await client.request(method.upper(), url, json=body_for(method, path), headers=headers)
            assert r.status_code == 401, (method, url, headers, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
    assert await state_of_a(client, world) == before
