"""Every way a callback is booked follows one number rule and one rate limit:

- the REST API (``POST /tenants/{t}/callbacks``), the wallboard's "call back" button (a websocket
  message) - both through the same provisioning wiring ``pbx-core web`` uses, over real sockets,
  on SQLite and PostgreSQL - and
- the dialplan's booking (UserEvent PbxCallbackRequest) read by the real callback worker over
  real AMI/TCP from the simulator.

The REST API and the wallboard spend from one per-tenant booking limit
(PBX_CALLBACK_RATE_LIMIT); callers booking from the phone are not limited."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pbx_core.bus import EmbeddedRedis
from pbx_core.callbacks.core.numbers import callback_number
from pbx_core.config import Settings
from pbx_core.provisioning.db import upgrade
from pbx_core.provisioning.keys import create_reseller_key
from pbx_core.provisioning.models import CallbackRow
from pbx_core.web import create_app, serving
from pbx_core.web.provisioning import Provisioning, provisioning
from tests.conftest import wait_until
from tests.integration.databases import BACKENDS, throwaway_database
from tests.integration.test_callbacks_worker import NUMBER, QUEUE, queue_settings, rig
from tests.integration.test_websocket import Wallboard, wallboard

REFUSED = {
    "one digit": "1",
    "a letter": "x1",
    "64 digits": "1" * 64,
    "40 digits": "1" * 40,
    "16 digits": "+3161234567890123",
    "Arabic-Indic digits": "٠٦١٢٣٤٥٦٧٨",
    "superscript digits": "⁰⁶¹²³⁴⁵⁶⁷⁸",
    "an extension": "+31612345678;ext=1",
    "a dialplan application": "0612345678,Dial(SIP/x)",
    "a newline": "0612345678\n1",
}
ACCEPTED = {  # as sent -> as stored and dialled
    "+31 6 1234 5678": "+31612345678",
    "(020) 123-45.67": "0201234567",
    "112": "112",
}


@dataclass
class Stack:
    prov: Provisioning
    http: str
    api: httpx.AsyncClient  # as the tenant's agent key, e.g. a web form's backend

    def ws_url(self, query: str) -> str:
        return self.http.replace("http://", "ws://") + "/ws/wallboard?" + query

    async def rows(self) -> list[CallbackRow]:
        async with self.prov.sessions() as session:
            return list((await session.scalars(select(CallbackRow).order_by(CallbackRow.number))).all())


@contextlib.asynccontextmanager
async def stack(url: str, **env: str) -> AsyncIterator[Stack]:
    """The web app with the provisioning database (``pbx-core web``'s wiring); tenant t1 with
    queue support; a wallboard token ``tv`` for it; an agent API key."""
    await upgrade(url)
    settings = Settings.from_env({"PBX_DATABASE_URL": url, "PBX_WALLBOARD_TOKENS": "tv=t1", **env})
    async with EmbeddedRedis() as redis, provisioning(settings, database_url=url) as prov:
        app = create_app(verifier=prov.verifier, redis_url=redis.url, extra_routes=prov.routes,
                         callback_requester=prov.callback_requester)
        async with serving(app) as http:
            async with prov.sessions() as session:
                reseller = await create_reseller_key(session, "Reseller", "main")
                await session.commit()
            async with httpx.AsyncClient(base_url=f"{http}/api/v1",
                                         headers={"Authorization": f"Bearer {reseller}"}) as admin:
                assert (await admin.put("/tenants/t1", json={"name": "T1"})).status_code == 201
                assert (await admin.put("/tenants/t1/queues/support", json={})).status_code == 201
                r = await admin.post("/tenants/t1/api-keys", json={"name": "web form", "role": "agent"})
                agent = r.json()["key"]
            async with httpx.AsyncClient(base_url=f"{http}/api/v1",
                                         headers={"Authorization": f"Bearer {agent}"}) as api:
                yield Stack(prov, http, api)


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database(request.param, tmp_path) as url:
        yield url


async def ask(wb: Wallboard, number: str, ref: str) -> dict[str, Any]:
    await wb.ws.send(json.dumps({"type": "callback", "queue": "t1-support", "number": number, "ref": ref}))
    return await wb.until(lambda m: m["type"] == "callback.ack" and m.get("ref") == ref)


async def test_rest_and_the_wallboard_refuse_and_accept_the_same_numbers(database: str) -> None:
    async with stack(database) as s, wallboard(s, "token=tv") as wb:
        await wb.until(lambda m: m["type"] == "snapshot")
        for what, number in REFUSED.items():
            r = await s.api.post("/tenants/t1/callbacks", json={"queue": "support", "number": number})
            assert r.status_code == 422, (what, r.text)
            assert r.json()["error"]["fields"][0]["field"] == "body.number", what
            ack = await ask(wb, number, what)
            assert ack["ok"] is False, (what, ack)
            assert any(m in ack["message"] for m in ("must be a phone number", "needs the caller's phone"))
        assert await s.rows() == []  # and PostgreSQL never saw a 40-digit number

        for i, (sent, stored) in enumerate(ACCEPTED.items()):
            if i % 2:
                r = await s.api.post("/tenants/t1/callbacks", json={"queue": "support", "number": sent})
                assert r.status_code == 201 and r.json()["number"] == stored, r.text
            else:
                ack = await ask(wb, sent, sent)
                assert ack["ok"] is True, ack
        assert sorted(r.number for r in await s.rows()) == sorted(ACCEPTED.values())
        # The same number however it is written: one callback, whichever way it comes in.
        ack = await ask(wb, "+31-6-12345678", "again")
        assert ack["ok"] is False and "already has an open callback" in ack["message"]


async def test_rest_and_the_wallboard_share_one_booking_limit(tmp_path: Path) -> None:
    async with (
        throwaway_database("sqlite", tmp_path) as url,
        stack(url, PBX_CALLBACK_RATE_LIMIT="4/min") as s,
    ):
        async with wallboard(s, "token=tv") as wb:
            await wb.until(lambda m: m["type"] == "snapshot")
            acks = [await ask(wb, f"020123456{i}", f"r{i}") for i in range(3)]
            assert [a["ok"] for a in acks] == [True, True, True]
            r = await s.api.post("/tenants/t1/callbacks", json={"queue": "support", "number": "0201234569"})
            assert r.status_code == 201
            r = await s.api.post("/tenants/t1/callbacks", json={"queue": "support", "number": "0201234560"})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
            assert "4 callbacks a minute" in r.json()["error"]["message"]
            flood = [await ask(wb, f"030123456{i}", f"f{i}") for i in range(20)]
            assert not any(a["ok"] for a in flood)
            assert "at most 4 callbacks a minute" in flood[0]["message"]
        assert len(await s.rows()) == 4


async def test_the_dialplan_booking_follows_the_same_rule(tmp_path: Path) -> None:
    async with rig(tmp_path, queue_settings(callback_offer=True)) as r:
        worker = await r.start_worker()
        # (an AMI header cannot carry a newline: that one is not sent)
        for number in (*(n for n in REFUSED.values() if "\n" not in n), NUMBER):
            caller = r.sim.join(QUEUE, "0201111111", waited_s=30)
            await wait_until(lambda: bool(worker.bridge.state.queues[QUEUE].callers), "the caller waits")
            refused_before = worker.service.counters.requests_refused
            r.sim.callback_request(QUEUE, caller, number)
            if number == NUMBER:
                await wait_until(lambda: len(worker.state.callbacks) == 1, "the valid booking is taken")
            else:
                await wait_until(lambda b=refused_before: worker.service.counters.requests_refused > b,  # type: ignore[misc]
                                 f"the booking of {number!r} is refused")
        (cb,) = worker.state.callbacks.values()
        assert cb.number == NUMBER
        assert (await r.stored(cb.id, lambda c: True)).number == NUMBER  # saved by the worker


def test_the_rule_itself() -> None:
    for number in REFUSED.values():
        with pytest.raises(ValueError, match="must be a phone number"):
            callback_number(number)
    for sent, stored in ACCEPTED.items():
        assert callback_number(sent) == stored
