"""Input the database cannot hold or the schema does not allow is a 422 naming the field, on
SQLite and PostgreSQL alike - never a 500 from the driver, never silently coerced."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pbx_core.api import ApiContext, build_api
from tests.integration.api.conftest import World, assert_error, auth
from tests.integration.api.test_isolation_sweep import BODIES, fill, provision_a


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


# JSON values of another type than the schema says, each of which lax parsing would coerce.
WRONG_TYPES: dict[str, list[Any]] = {
    "boolean": [0, 1, "true", "no"],
    "integer": [5.0, "5", True],
    "number": ["5", True],
    "string": [5, 5.5, True],
}


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself: $refs followed, ``X | None`` unwrapped."""
    if "$ref" in schema:
        return _resolve(doc, doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return _resolve(doc, options[0])
    return schema


def _typed_fields(doc: dict[str, Any], schema: dict[str, Any], prefix: tuple[str, ...] = (),
                  depth: int = 0) -> list[tuple[tuple[str, ...], str]]:
    """(path of the field, JSON type) for every scalar field, into nested objects (2 levels)."""
    out = []
    for name, prop in _resolve(doc, schema).get("properties", {}).items():
        resolved = _resolve(doc, prop)
        kind = resolved.get("type")
        if kind in WRONG_TYPES:
            out.append(((*prefix, name), kind))
        elif kind == "object" and "properties" in resolved and depth < 2:
            out += _typed_fields(doc, resolved, (*prefix, name), depth + 1)
    return out


def _with(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    head, *rest = path
    inner = body.get(head) if isinstance(body.get(head), dict) else {}
    return {**body, head: _with(inner, tuple(rest), value) if rest else value}


async def test_every_typed_body_field_refuses_other_json_types(
    client: httpx.AsyncClient, world: World, ctx: ApiContext
) -> None:
    """Driven by the OpenAPI document: every boolean, integer, number and string field of every
    request body (nested objects included) is refused with a 422 naming it when it gets a JSON
    value of another type - what the schema says is what is accepted (schemathesis found
    ``"paid": 0`` and ``"penalty": 5.0`` accepted)."""
    values = await provision_a(client, world)
    doc = build_api(ctx).openapi()
    checked, accepted = 0, []
    for (method, path), body in BODIES.items():
        request_body = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        for field, kind in _typed_fields(doc, request_body):
            for bad in WRONG_TYPES[kind]:
                r = await client.request(method.upper(), fill(path, values), json=_with(body, field, bad),
                                         headers=auth(world.reseller_a))
                checked += 1
                names = [f["field"] for f in r.json().get("error", {}).get("fields", [])]
                if r.status_code != 422 or "body." + ".".join(field) not in names:
                    accepted.append(f"{method.upper()} {path} {'.'.join(field)}={bad!r}: {r.status_code}")
    assert not accepted, "\n".join(accepted)
    assert checked > 300  # the document really was walked


def test_the_rules_that_span_objects_are_in_the_openapi_document(ctx: ApiContext) -> None:
    """What a client cannot see in the JSON Schema alone - rules between fields, objects and
    tenants - is written in the schema and operation descriptions it reads."""
    doc = build_api(ctx).openapi()
    schemas = doc["components"]["schemas"]
    expected = {
        "Destination": ["must exist in the same tenant", "cannot be deleted"],
        "TenantIn": ["limits", "may not be lowered"],
        "QueueIn": ["max_wait_s` and `overflow` go together", "limits.max_queues"],
        "MenuIn": ["limits.max_menu_depth", "digit `0` is the operator", "limits.max_menus"],
        "UserIn": ["limits.max_users", "unique in the tenant"],
        "HoursIn": ["destinations must exist", "cannot be deleted"],
        "DidIn": ["one place on the whole platform"],
        "ApiKeyCreate": ["limits.max_api_keys", "must name queues of the tenant"],
        "MemberIn": ["user of the same tenant"],
    }
    for name, phrases in expected.items():
        for variant in (name, name.replace("In", "Create")):  # PUT bodies and POST bodies
            if variant not in schemas:
                continue
            text = " ".join(schemas[variant].get("description", "").split()).replace("``", "`")
            for phrase in phrases:
                assert phrase in text, (variant, phrase, text)
    post_key = doc["paths"]["/tenants/{slug}/api-keys"]["post"]
    assert "10 new keys a minute" in post_key["description"] and "429" in post_key["responses"]
    book = doc["paths"]["/tenants/{slug}/callbacks"]["post"]
    assert "PBX_CALLBACK_RATE_LIMIT" in book["description"] and "429" in book["responses"]
    info = " ".join(doc["info"]["description"].split())
    for phrase in ("slugs are global", "checked before the body is read", "per key and per tenant"):
        assert phrase in info, phrase
