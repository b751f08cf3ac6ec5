"""/tenants over a real database: create, read, list, replace, delete, and their refusals."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import World, assert_error, auth

USER = {"name": "Ann", "devices": [{"name": "desk", "kind": "desk"}]}


async def test_create_get_and_headers(client: httpx.AsyncClient, world: World) -> None:
    r = await client.post("/tenants", json={"slug": "initech", "name": "Initech BV", "language": "en",
                                            "limits": {"max_users": 5}}, headers=auth(world.reseller_a))
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/api/v1/tenants/initech"
    assert r.headers["ETag"] == '"1"'
    body = r.json()
    assert body["slug"] == "initech" and body["reseller"] == "Reseller A" and body["version"] == 1
    assert body["limits"]["max_users"] == 5 and body["limits"]["max_queues"] == 10  # defaults filled in
    got = await client.get("/tenants/initech", headers=auth(world.reseller_a))
    assert got.status_code == 200 and got.json() == body and got.headers["ETag"] == '"1"'


async def test_list_filters_and_pages(client: httpx.AsyncClient, world: World) -> None:
    for i in range(5):
        r = await client.post("/tenants", json={"slug": f"shop{i}", "name": f"Shop number {i}"},
                              headers=auth(world.reseller_a))
        assert r.status_code == 201, r.text
    r = await client.get("/tenants", params={"limit": 2, "offset": 1}, headers=auth(world.reseller_a))
    page = r.json()
    # acme (from the world) + 5 shops; reseller B's globex is not listed.
    assert (page["total"], page["limit"], page["offset"]) == (6, 2, 1)
    assert [t["slug"] for t in page["items"]] == ["shop0", "shop1"]
    assert 'rel="next"' in r.headers["Link"] and "offset=3" in r.headers["Link"]
    last = await client.get("/tenants", params={"limit": 2, "offset": 4}, headers=auth(world.reseller_a))
    assert [t["slug"] for t in last.json()["items"]] == ["shop3", "shop4"] and "Link" not in last.headers
    found = await client.get("/tenants", params={"q": "NUMBER 3"}, headers=auth(world.reseller_a))
    assert [t["slug"] for t in found.json()["items"]] == ["shop3"]
    assert_error(await client.get("/tenants", params={"limit": 201}, headers=auth(world.reseller_a)), 422,
                 field="query.limit")


async def test_validation_names_the_field(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.reseller_a)
    assert_error(await client.post("/tenants", json={"slug": "Bad-Slug", "name": "x"}, headers=key), 422,
                 field="body.slug", code="validation_error")
    assert_error(await client.post("/tenants", json={"slug": "pbx", "name": "x"}, headers=key), 422,
                 field="body.slug")
    err = assert_error(await client.post("/tenants", json={"slug": "ok", "name": "two\nlines"}, headers=key),
                       422, field="body.name")
    assert "control characters" in err["fields"][0]["message"]
    err = assert_error(await client.post("/tenants", json={"slug": "ok", "name": "x", "colour": "red"},
                                         headers=key), 422, field="body.colour")
    assert err["fields"][0]["message"] == "unknown field"
    assert_error(await client.post("/tenants", json={"slug": "ok", "name": "x", "timezone": "Mars/Base"},
                                   headers=key), 422, field="body.timezone")
    assert_error(await client.put("/tenants/Nope", json={"name": "x"}, headers=key), 422, field="path.slug")
    assert_error(await client.post("/tenants", content=b"{not json", headers={**key, "Content-Type":
                                                                              "application/json"}), 422)


async def test_duplicate_slug_conflicts_even_across_resellers(client: httpx.AsyncClient,
                                                              world: World) -> None:
    assert_error(await client.post("/tenants", json={"slug": "acme", "name": "Again"},
                                   headers=auth(world.reseller_a)), 409, field="body.slug", code="conflict")
    assert_error(await client.post("/tenants", json={"slug": "acme", "name": "Mine"},
                                   headers=auth(world.reseller_b)), 409, field="body.slug")
    assert_error(await client.put("/tenants/acme", json={"name": "Mine"}, headers=auth(world.reseller_b)),
                 409)
    got = await client.get("/tenants/acme", headers=auth(world.reseller_a))
    assert got.json()["name"] == "Acme"


async def test_put_creates_replaces_and_is_idempotent(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.reseller_a)
    body = {"name": "Hooli", "timezone": "Europe/London"}
    r = await client.put("/tenants/hooli", json=body, headers={**key, "If-None-Match": "*"})
    assert r.status_code == 201 and r.headers["ETag"] == '"1"'
    again = await client.put("/tenants/hooli", json=body, headers=key)
    assert again.status_code == 200 and again.headers["ETag"] == '"1"' and again.json()["version"] == 1
    assert_error(await client.put("/tenants/hooli", json=body, headers={**key, "If-None-Match": "*"}), 412,
                 code="precondition_failed")
    changed = await client.put("/tenants/hooli", json={**body, "name": "Hooli XYZ"},
                               headers={**key, "If-Match": '"1"'})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"'
    assert_error(await client.put("/tenants/hooli", json=body, headers={**key, "If-Match": '"1"'}), 412)
    assert_error(await client.delete("/tenants/hooli", headers={**key, "If-Match": '"1"'}), 412)
    assert_error(await client.put("/tenants/nothere", json=body, headers={**key, "If-Match": '"1"'}), 412)
    assert (await client.get("/tenants/hooli", headers=key)).json()["name"] == "Hooli XYZ"


async def test_tenant_admin_may_rename_but_not_raise_limits(client: httpx.AsyncClient, world: World) -> None:
    r = await client.put("/tenants/acme", json={"name": "Acme Corp"}, headers=auth(world.admin))
    assert r.status_code == 200 and r.json()["name"] == "Acme Corp"
    assert_error(await client.put("/tenants/acme", json={"name": "Acme Corp", "limits": {"max_users": 9999}},
                                  headers=auth(world.admin)), 403, field="body.limits")
    assert_error(await client.put("/tenants/acme", json={"name": "Sup"}, headers=auth(world.supervisor)), 403)
    assert_error(await client.post("/tenants", json={"slug": "mine", "name": "x"}, headers=auth(world.admin)),
                 403, code="forbidden")
    assert_error(await client.get("/tenants", headers=auth(world.admin)), 403)
    assert_error(await client.delete("/tenants/acme", headers=auth(world.admin)), 403)
    assert_error(await client.get("/tenants/acme", headers=auth(world.agent)), 403)


async def test_rules_checked_on_tenant_writes(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.reseller_a)
    assert_error(await client.put("/tenants/acme", json={"name": "Acme", "operator": {"type": "extension",
                                                                                      "target": "200"}},
                                  headers=key), 422, field="body.operator.target")
    for ext in ("200", "201"):
        r = await client.put(f"/tenants/acme/users/{ext}", json=USER, headers=key)
        assert r.status_code == 201, r.text
    ok = await client.put("/tenants/acme", json={"name": "Acme", "operator": {"type": "extension",
                                                                              "target": "200"}}, headers=key)
    assert ok.status_code == 200, ok.text
    err = assert_error(await client.put("/tenants/acme", json={"name": "Acme", "limits": {"max_users": 1}},
                                        headers=key), 422, field="body.limits.max_users")
    assert "at most 1 users" in err["message"]


async def test_delete_refuses_while_not_empty_then_force(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.reseller_a)
    assert (await client.put("/tenants/acme/users/201", json=USER, headers=key)).status_code == 201
    err = assert_error(await client.delete("/tenants/acme", headers=key), 409)
    assert "1 users" in err["message"] and "force=true" in err["message"]
    assert (await client.delete("/tenants/acme", params={"force": "true"}, headers=key)).status_code == 204
    assert_error(await client.get("/tenants/acme", headers=key), 404)
    # The tenant's keys went with it.
    assert_error(await client.get("/tenants/acme/users", headers=auth(world.admin)), 401)
    assert (await client.delete("/tenants/globex", headers=auth(world.reseller_b))).status_code == 204


async def test_tenant_audit_and_since_filter(client: httpx.AsyncClient, world: World) -> None:
    key = auth(world.reseller_a)
    for name in ("Acme 2", "Acme 3"):
        assert (await client.put("/tenants/acme", json={"name": name}, headers=key)).status_code == 200
    entries = (await client.get("/tenants/acme/audit", params={"entity": "tenant"},
                                headers=key)).json()["items"]
    assert [(e["action"], e["actor"].split(" (")[0]) for e in entries] == \
        [("update", "a-main"), ("update", "a-main"), ("create", "a-main")]
    assert entries[0]["changes"] == {"name": {"from": "Acme 2", "to": "Acme 3"}}
    since = entries[1]["at"]
    later = (await client.get("/tenants/acme/audit", params={"entity": "tenant", "since": since},
                              headers=key)).json()
    assert [e["id"] for e in later["items"]] == [entries[0]["id"], entries[1]["id"]]
    assert_error(await client.get("/tenants/acme/audit", params={"since": "0.5"}, headers=key), 422,
                 field="query.since")
    assert_error(await client.get("/tenants/acme/audit", params={"action": "read"}, headers=key), 422,
                 field="query.action")
