"""One error shape everywhere, and an OpenAPI document that promises it."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from pbx_core.api import ApiContext, build_api
from pbx_core.provisioning.db import make_engine, session_factory
from tests.integration.api.conftest import World, assert_error, auth

ERROR_REF = "#/components/schemas/ErrorResponse"


async def test_framework_errors_have_the_shape(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.reseller_a)
    err = assert_error(await client.get("/nowhere", headers=key), 404, code="not_found")
    assert "/api/v1/nowhere" in err["message"]
    assert_error(await client.patch("/tenants/acme", json={"name": "x"}, headers=key), 405,
                 code="method_not_allowed")
    r = await client.post("/tenants", content=b'{"slug": ', headers={**key,
                                                                     "Content-Type": "application/json"})
    assert_error(r, 422, code="validation_error")
    err = assert_error(await client.post("/tenants", json=["not", "an", "object"], headers=key), 422)
    assert err["fields"] and err["fields"][0]["field"] == "body"
    err = assert_error(await client.post("/tenants", json={"name": "x"}, headers=key), 422, field="body.slug")
    assert err["fields"][0]["message"] == "required"
    assert_error(await client.get("/tenants", params={"offset": -1}, headers=key), 422, field="query.offset")


async def test_unhandled_errors_leak_nothing(tmp_path: Any) -> None:
    """The database is unreachable: a 500 in the error shape, no driver message or SQL in it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    app = Starlette(routes=[Mount("/api/v1", app=build_api(ApiContext(sessions=session_factory(engine))))])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as client:
            r = await client.get("/tenants", headers=auth(f"pbx_{'0' * 16}_{'A' * 43}"))
    finally:
        await engine.dispose()
    err = assert_error(r, 500, code="internal_error")
    assert err["message"] == "internal error; the request was not completed"
    assert "sqlite" not in r.text.lower() and "select" not in r.text.lower()


async def test_openapi_document(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["info"]["title"] == "pbx-core provisioning API" and doc["info"]["version"] == "1"
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    operations = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    assert len(operations) >= 15
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        assert op.get("security") == [{"HTTPBearer": []}], where
        for status in ("401", "422", "429"):
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, where
        if "{slug}" in path:
            assert "404" in op["responses"], where
        success = [s for s in op["responses"] if s.startswith("2")]
        assert success, where
        for s in success:
            if s != "204":
                assert op["responses"][s]["content"]["application/json"]["schema"], where
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text


async def test_method_not_allowed_lists_every_method(client: httpx.AsyncClient, world: World) -> None:
    r = await client.request("OPTIONS", "/tenants", headers=auth(world.reseller_a))
    assert_error(r, 405)
    assert (await client.head("/tenants", headers=auth(world.reseller_a))).status_code == 405
    assert set(r.headers["Allow"].split(", ")) == {"GET", "POST"}
    r = await client.patch("/tenants/acme/users/201", headers=auth(world.reseller_a))
    assert set(r.headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE"}


async def test_undecodable_body_and_odd_paths(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.reseller_a)
    r = await client.post("/tenants", content=b"\xff\xfe{", headers={**key,
                                                                     "Content-Type": "application/json"})
    assert_error(r, 422, field="body")
    # An encoded newline in the path is still the API's 404, in its JSON shape.
    assert_error(await client.get("/tenants/ac%0Ame", headers=key), 404)
    assert_error(await client.get("/tenants/acme/users/2%0A01", headers=key), 422, field="path.extension")
