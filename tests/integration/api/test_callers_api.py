"""DELETE /tenants/{slug}/callers/{number}: a caller's number erased from the call history and
the closed callbacks, audited under a hash; an open callback is refused; other tenants untouched."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from pbx_core.api import ApiContext
from pbx_core.history import store
from pbx_core.history.core import CallRow
from pbx_core.provisioning.models import AuditEntry, CallbackRow, HistoryCall
from tests.integration.api.conftest import World, assert_error, auth

NUMBER = "+31201234567"


async def _history(ctx: ApiContext) -> None:
    rows = [
        CallRow(
            "acme", 0, "acme-support", "u1", NUMBER, "Ann", joined_at=1.0, outcome="answered", waited_s=5
        ),
        CallRow("acme", 0, "acme-support", "u2", "0611111111", "Bob", joined_at=2.0, outcome="abandoned"),
        CallRow("globex", 0, "globex-billing", "u3", NUMBER, "Ann", joined_at=3.0, outcome="answered"),
    ]
    async with ctx.sessions() as session, session.begin():
        await store.write(session, rows, [])


async def test_a_number_is_erased_from_history_and_callbacks_and_audited(
    ctx: ApiContext, client: httpx.AsyncClient, world: World
) -> None:
    await _history(ctx)
    r = await client.put("/tenants/acme/queues/support", json={}, headers=auth(world.admin))
    assert r.status_code == 201, r.text
    booking = {"queue": "support", "number": "+31 20 123 4567", "name": "Ann", "note": "x"}
    booked = await client.post("/tenants/acme/callbacks", headers=auth(world.agent), json=booking)
    assert booked.status_code == 201, booked.text
    # Open: refused, nothing erased.
    r = await client.delete(f"/tenants/acme/callers/{NUMBER}", headers=auth(world.admin))
    assert_error(r, 409)
    async with ctx.sessions() as session:
        assert (
            await session.scalar(select(HistoryCall.number).where(HistoryCall.uniqueid == "u1"))
        ) == NUMBER
    # Supervisors may not erase; admins may, once the callback is closed.
    r = await client.delete(f"/tenants/acme/callbacks/{booked.json()['id']}", headers=auth(world.supervisor))
    assert r.status_code == 204, r.text
    assert_error(await client.delete(f"/tenants/acme/callers/{NUMBER}", headers=auth(world.supervisor)), 403)
    r = await client.delete(f"/tenants/acme/callers/{NUMBER}", headers=auth(world.admin))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["calls"], body["callbacks"]) == (1, 1) and NUMBER not in body["audit_key"]
    async with ctx.sessions() as session:
        calls = {c.uniqueid: (c.number, c.name, c.anonymised, c.outcome)
                 for c in (await session.execute(select(HistoryCall))).scalars()}  # fmt: skip
        callback = (await session.execute(select(CallbackRow))).scalar_one()
        entries = (
            (await session.execute(select(AuditEntry).where(AuditEntry.entity == "caller"))).scalars().all()
        )
    assert calls == {
        "u1": ("", "", True, "answered"),  # erased, the call still counts
        "u2": ("0611111111", "Bob", False, "abandoned"),
        "u3": (NUMBER, "Ann", False, "answered"),  # another tenant's caller is not this tenant's to erase
    }
    assert (callback.number, callback.name, callback.note) == ("", None, None)
    [entry] = entries
    assert (
        entry.entity_key == body["audit_key"]
        and NUMBER not in repr(vars(entry))
        and "1234567" not in repr(vars(entry))
    )
    # The writer rewriting a call it still held (in progress at the erasure) keeps the blanks.
    async with ctx.sessions() as session, session.begin():
        await store.write(session, [CallRow("acme", 0, "acme-support", "u1", NUMBER, "Ann", joined_at=1.0,
                                            outcome="answered", waited_s=5, talk_s=30)], [])  # fmt: skip
    async with ctx.sessions() as session:
        u1 = (await session.execute(select(HistoryCall).where(HistoryCall.uniqueid == "u1"))).scalar_one()
    assert (u1.number, u1.name, u1.anonymised, u1.talk_s) == ("", "", True, 30)
    # Again: nothing left to erase.
    r = await client.delete(f"/tenants/acme/callers/{NUMBER}", headers=auth(world.admin))
    assert r.status_code == 200 and (r.json()["calls"], r.json()["callbacks"]) == (0, 0)
    # Another reseller's tenant admin cannot reach acme; a malformed number is named.
    assert_error(await client.delete(f"/tenants/acme/callers/{NUMBER}", headers=auth(world.admin_b)), 404)
    assert_error(
        await client.delete("/tenants/acme/callers/call-me", headers=auth(world.admin)), 422, field="number"
    )
