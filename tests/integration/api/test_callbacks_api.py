"""/tenants/{slug}/callbacks: request (with dedupe), list, inspect with history, cancel; roles,
queue-scoped keys, tenant isolation and validation naming the field."""

from __future__ import annotations

from typing import Any

import httpx

from pbx_core.api import ApiContext
from pbx_core.callbacks.core.model import Status
from pbx_core.callbacks.store import CallbackStore
from tests.integration.api.conftest import World, assert_error, auth, tenant_key

AGENT_IF = "Local/201@acme-agents/n"


async def _queues(client: httpx.AsyncClient, world: World) -> None:
    for name in ("support", "sales"):
        r = await client.put(f"/tenants/acme/queues/{name}", json={}, headers=auth(world.admin))
        assert r.status_code == 201, r.text
    r = await client.put("/tenants/globex/queues/billing", json={}, headers=auth(world.admin_b))
    assert r.status_code == 201, r.text


async def _book(client: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    return await client.post("/tenants/acme/callbacks", json={"queue": "support", **body}, headers=auth(key))


async def test_request_dedupe_and_read_back(client: httpx.AsyncClient, world: World) -> None:
    await _queues(client, world)
    r = await _book(client, world.agent, number="+31 20 123 4567", name="Ann", note="invoice 12")
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["created"] is True and first["status"] == "pending" and first["source"] == "rest"
    assert first["number"] == "+31201234567" and first["name"] == "Ann" and first["note"] == "invoice 12"
    assert r.headers["Location"].endswith(f"/tenants/acme/callbacks/{first['id']}")
    # The same number, formatted differently: the open one, 200, and the body says so.
    r = await _book(client, world.supervisor, number="+31-20-1234567")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == first["id"] and r.json()["created"] is False
    assert "already open" in r.json()["message"]
    # Another queue: a second callback.
    r = await _book(client, world.agent, number="+31201234567", queue="sales")
    assert r.status_code == 201 and r.json()["id"] != first["id"]

    listed = (await client.get("/tenants/acme/callbacks", headers=auth(world.supervisor))).json()
    assert listed["total"] == 2
    only = await client.get(
        "/tenants/acme/callbacks",
        params={"queue": "support", "status": ["pending", "overdue"]},
        headers=auth(world.supervisor),
    )
    assert [c["id"] for c in only.json()["items"]] == [first["id"]]
    none = await client.get(
        "/tenants/acme/callbacks", params={"source": "wallboard"}, headers=auth(world.admin)
    )
    assert none.json()["total"] == 0

    detail = await client.get(f"/tenants/acme/callbacks/{first['id']}", headers=auth(world.supervisor))
    assert detail.status_code == 200
    assert [(h["change"], h["status"]) for h in detail.json()["history"]] == [("created", "pending")]
    assert detail.json()["place_at"] == first["requested_at"]
    # Only the creating request was audited (the duplicate wrote nothing).
    log = (await client.get("/tenants/acme/audit", headers=auth(world.admin))).json()["items"]
    entries = [e for e in log if e["entity"] == "callback"]
    assert len(entries) == 2 and {e["action"] for e in entries} == {"create"}


async def test_validation_names_the_field(client: httpx.AsyncClient, world: World) -> None:
    await _queues(client, world)
    for number in ("call me", "12", "+31 20 123 4567 890 12", "020\n1234567"):
        r = await _book(client, world.agent, number=number)
        assert_error(r, 422, field="body.number", code="validation_error")
    assert_error(
        await _book(client, world.agent, number="0201234567", queue="billing"), 422, field="body.queue"
    )
    assert_error(
        await _book(client, world.agent, number="0201234567", queue="Bad Name"), 422, field="body.queue"
    )
    assert_error(await _book(client, world.agent, queue="support"), 422, field="body.number")
    assert_error(
        await _book(client, world.agent, number="0201234567", colour="red"), 422, field="body.colour"
    )
    assert_error(await _book(client, world.agent, number="0201234567", name="a\nb"), 422, field="body.name")
    # "billing" is a queue of globex, not of acme.
    assert_error(
        await _book(client, world.admin, number="0201234567", queue="billing"), 422, field="body.queue"
    )
    assert (await client.get("/tenants/acme/callbacks", headers=auth(world.admin))).json()["total"] == 0


async def test_roles_and_queue_scoped_keys(client: httpx.AsyncClient, world: World) -> None:
    await _queues(client, world)
    support = (await _book(client, world.agent, number="0201111111")).json()
    sales = (await _book(client, world.agent, number="0202222222", queue="sales")).json()
    # Agents book but do not read or cancel.
    assert_error(
        await client.get("/tenants/acme/callbacks", headers=auth(world.agent)), 403, code="forbidden"
    )
    assert_error(await client.get(f"/tenants/acme/callbacks/{support['id']}", headers=auth(world.agent)), 403)
    assert_error(
        await client.delete(f"/tenants/acme/callbacks/{support['id']}", headers=auth(world.agent)), 403
    )

    scoped = await tenant_key(client, world.admin, "acme", "supervisor", queues=["sales"])
    listed = (await client.get("/tenants/acme/callbacks", headers=auth(scoped))).json()
    assert [c["id"] for c in listed["items"]] == [sales["id"]]
    assert_error(await client.get(f"/tenants/acme/callbacks/{support['id']}", headers=auth(scoped)), 404)
    assert_error(await client.delete(f"/tenants/acme/callbacks/{support['id']}", headers=auth(scoped)), 404)
    assert (
        await client.delete(f"/tenants/acme/callbacks/{sales['id']}", headers=auth(scoped))
    ).status_code == 204
    scoped_agent = await tenant_key(client, world.admin, "acme", "agent", queues=["sales"])
    assert_error(await _book(client, scoped_agent, number="0203333333"), 422, field="body.queue")


async def test_cancel(client: httpx.AsyncClient, world: World, ctx: ApiContext) -> None:
    await _queues(client, world)
    booked = (await _book(client, world.agent, number="0201234567")).json()
    store = CallbackStore(ctx.sessions)
    # The worker is dialling it when the supervisor cancels.
    [cb] = await store.load_open("acme")
    dialling = cb.evolve(
        status=Status.DIALLING, originate_id=f"{cb.id}:1", agent=AGENT_IF, attempts_dialled=1
    )
    assert await store.save(dialling, "dialling")

    url = f"/tenants/acme/callbacks/{booked['id']}"
    assert (await client.delete(url, headers=auth(world.supervisor))).status_code == 204
    detail = (await client.get(url, headers=auth(world.supervisor))).json()
    assert detail["status"] == "cancelled" and detail["closed_at"] is not None
    assert detail["originate_id"] == f"{cb.id}:1"  # the worker hangs up the attempt carrying it
    assert [h["change"] for h in detail["history"]] == ["created", "dialling", "cancelled"]
    assert await store.load_open("acme") == []
    # Already final: 409; unknown: 404.
    assert_error(await client.delete(url, headers=auth(world.admin)), 409, code="conflict")
    assert_error(await client.delete("/tenants/acme/callbacks/nope", headers=auth(world.admin)), 404)
    # The worker's stale save does not undo the cancel.
    assert await store.save(dialling.evolve(status=Status.COMPLETED, closed_at=1.0), "completed") is False
    assert (await client.get(url, headers=auth(world.admin))).json()["status"] == "cancelled"
    # Closed, so the number can book again.
    again = await _book(client, world.agent, number="0201234567")
    assert again.status_code == 201 and again.json()["id"] != booked["id"]
    log = (await client.get("/tenants/acme/audit", headers=auth(world.admin))).json()["items"]
    cancels = [e for e in log if e["entity"] == "callback" and e["action"] == "update"]
    assert [(e["entity_key"], e["changes"]) for e in cancels] == [
        (booked["id"], {"status": {"from": "dialling", "to": "cancelled"}})
    ]


async def test_tenant_isolation(client: httpx.AsyncClient, world: World) -> None:
    await _queues(client, world)
    booked = (await _book(client, world.agent, number="0201234567")).json()
    url = f"/tenants/acme/callbacks/{booked['id']}"
    for key in (world.admin_b, world.reseller_b):
        assert_error(await client.get(url, headers=auth(key)), 404, code="not_found")
        assert_error(await client.delete(url, headers=auth(key)), 404)
        assert_error(await client.get("/tenants/acme/callbacks", headers=auth(key)), 404)
        assert_error(await _book(client, key, number="0209999999"), 404)
    # globex's own list does not show acme's callback, nor can its id be read through globex.
    assert (await client.get("/tenants/globex/callbacks", headers=auth(world.admin_b))).json()["total"] == 0
    assert_error(
        await client.get(f"/tenants/globex/callbacks/{booked['id']}", headers=auth(world.admin_b)), 404
    )
    # The reseller of acme reads it.
    assert (await client.get(url, headers=auth(world.reseller_a))).status_code == 200
