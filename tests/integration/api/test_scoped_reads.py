"""What a key may read is all it reads - also through the audit log and booking replies: a key
limited to some queues never sees another queue's callers (number, name, note) in /audit, and an
agent key that books a number already booked gets no one else's name or note back."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import World, auth, tenant_key

SUPPORT_NUMBER = "+31201111111"
SALES_NUMBER = "+31202222222"


async def _setup(client: httpx.AsyncClient, world: World) -> dict[str, str]:
    h = auth(world.admin)
    for queue in ("support", "sales"):
        assert (await client.put(f"/tenants/acme/queues/{queue}", json={}, headers=h)).status_code == 201
    support = await client.post("/tenants/acme/callbacks", headers=h, json={
        "queue": "support", "number": SUPPORT_NUMBER, "name": "Piet Support", "note": "about invoice 17"})
    sales = await client.post("/tenants/acme/callbacks", headers=h, json={
        "queue": "sales", "number": SALES_NUMBER, "name": "Saar Sales", "note": "wants a quote"})
    assert support.status_code == sales.status_code == 201
    sales_only = await tenant_key(client, world.admin, "acme", "supervisor", name="sales desk",
                                  queues=["sales"])
    return {"support": support.json()["id"], "sales": sales.json()["id"], "sales_only": sales_only}


async def _audit(client: httpx.AsyncClient, key: str, **params: str) -> dict[str, object]:
    r = await client.get("/tenants/acme/audit", params={"limit": 200, **params}, headers=auth(key))
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_a_queue_scoped_key_reads_only_its_queues_in_the_audit_log(
    client: httpx.AsyncClient, world: World
) -> None:
    ids = await _setup(client, world)
    scoped = await _audit(client, ids["sales_only"])
    text = str(scoped)
    assert ids["sales"] in text and "Saar Sales" in text
    for secret in (ids["support"], "Piet Support", "about invoice 17", SUPPORT_NUMBER):
        assert secret not in text, secret
    entries = scoped["items"]
    assert isinstance(entries, list)
    seen = {(e["entity"], e["entity_key"]) for e in entries}
    assert ("queue", "sales") in seen and ("queue", "support") not in seen
    assert ("tenant", "acme") in seen  # tenant-wide configuration stays readable
    assert not {e for e, _ in seen} & {"api_key", "wallboard_token"}  # key management: admins only
    assert scoped["total"] == len(entries)
    # Filters narrow within what the key may see, never widen it.
    by_key = await _audit(client, ids["sales_only"], entity="callback", entity_key=ids["support"])
    assert by_key["items"] == [] and by_key["total"] == 0

    unscoped = str(await _audit(client, world.supervisor))
    assert "Piet Support" in unscoped and "Saar Sales" in unscoped and "'api_key'" not in unscoped
    admin = await _audit(client, world.admin)
    assert any(e["entity"] == "api_key" for e in admin["items"])  # type: ignore[attr-defined]


async def test_booking_a_number_again_tells_an_agent_nothing_it_may_not_read(
    client: httpx.AsyncClient, world: World
) -> None:
    ids = await _setup(client, world)
    assert (await client.get("/tenants/acme/callbacks", headers=auth(world.agent))).status_code == 403
    r = await client.post("/tenants/acme/callbacks", headers=auth(world.agent),
                          json={"queue": "support", "number": SUPPORT_NUMBER})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] is False and body["id"] == ids["support"]
    assert body["name"] is None and body["note"] is None and body["agent"] is None
    assert "Piet" not in r.text and "invoice" not in r.text
    # A supervisor may read the callback anyway: its reply shows it.
    r = await client.post("/tenants/acme/callbacks", headers=auth(world.supervisor),
                          json={"queue": "support", "number": SUPPORT_NUMBER})
    assert r.json()["name"] == "Piet Support"
    # A key limited to another queue cannot book (or probe) this queue at all.
    r = await client.post("/tenants/acme/callbacks", headers=auth(ids["sales_only"]),
                          json={"queue": "support", "number": SUPPORT_NUMBER})
    assert r.status_code == 422 and "Piet" not in r.text
