"""The wallboard's callbacks over real sockets: the worker's ``callbacks.summary`` deltas reach the
board through the real bus, and the "call back" button's websocket message books a pending
callback in a real, migrated database (SQLite; PostgreSQL too when PBX_TEST_POSTGRES_URL is set)
through the same provisioning wiring ``pbx-core web`` uses."""

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
from starlette.applications import Starlette

from pbx_core.bus import BusPublisher, EmbeddedRedis
from pbx_core.config import Settings
from pbx_core.domain.queue_state import Delta
from pbx_core.ingest import Ingest
from pbx_core.provisioning.db import upgrade
from pbx_core.provisioning.keys import create_reseller_key
from pbx_core.provisioning.models import CallbackRow
from pbx_core.web import create_app, serving
from pbx_core.web.provisioning import Provisioning, provisioning
from tests.integration.databases import BACKENDS, throwaway_database
from tests.integration.test_websocket import Wallboard, fixture_deltas, wallboard

TOKENS = "ta=t1;tq=t1:support;tb=t2"
SUMMARY: dict[str, Any] = {
    "pending": 3, "in_progress": 1, "overdue": 2, "completed_today": 10, "on_time_today": 9,
    "on_time_pct": 90.0,
    "next": [{"id": "cb-1", "number": "0201234567", "status": "overdue", "due_by": 1.0e9, "place_at": 9.9e8}],
}  # fmt: skip


@dataclass
class CallbackStack:
    publisher: BusPublisher
    app: Starlette
    http: str
    prov: Provisioning

    def ws_url(self, query: str) -> str:
        return self.http.replace("http://", "ws://") + "/ws/wallboard?" + query

    async def publish(self, deltas: list[Delta]) -> None:
        await self.publisher.publish(deltas)
        await self.publisher.flush()

    async def rows(self) -> list[CallbackRow]:
        async with self.prov.sessions() as session:
            return list((await session.scalars(select(CallbackRow).order_by(CallbackRow.requested_at))).all())


@contextlib.asynccontextmanager
async def callback_stack(url: str, *, with_requester: bool = True) -> AsyncIterator[CallbackStack]:
    """Redis bus + the web app with the provisioning database; tenant t1 with queues support and
    sales, created through the REST API as a reseller would."""
    await upgrade(url)
    settings = Settings.from_env({"PBX_DATABASE_URL": url, "PBX_WALLBOARD_TOKENS": TOKENS})
    async with EmbeddedRedis() as redis, provisioning(settings, database_url=url) as prov:
        publisher = BusPublisher(redis.url)
        await publisher.start()
        app = create_app(
            verifier=prov.verifier, redis_url=redis.url, extra_routes=prov.routes,
            callback_requester=prov.callback_requester if with_requester else None,
            labels=prov.labels,
        )  # fmt: skip
        try:
            async with serving(app) as http:
                async with prov.sessions() as session:
                    key = await create_reseller_key(session, "Reseller", "main")
                    await session.commit()
                headers = {"Authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(base_url=f"{http}/api/v1", headers=headers) as api:
                    r = await api.post("/tenants", json={"slug": "t1", "name": "T1"})
                    assert r.status_code == 201, r.text
                    for name in ("support", "sales"):
                        r = await api.post("/tenants/t1/queues", json={"name": name, "strategy": "ringall"})
                        assert r.status_code == 201, r.text
                yield CallbackStack(publisher, app, http, prov)
        finally:
            await publisher.close()


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database(request.param, tmp_path) as url:
        yield url


async def ask(wb: Wallboard, queue: str, number: str, ref: str) -> dict[str, Any]:
    await wb.ws.send(json.dumps({"type": "callback", "queue": queue, "number": number, "ref": ref}))
    return await wb.until(lambda m: m["type"] == "callback.ack" and m.get("ref") == ref)


async def test_call_back_books_one_pending_callback_and_a_second_click_gets_the_dedupe_answer(
    database: str,
) -> None:
    ingest = Ingest()
    async with callback_stack(database) as s:
        await s.publish(fixture_deltas(ingest, "abandoned"))
        async with wallboard(s, "token=ta") as wb:
            snap = await wb.until(lambda m: m["type"] == "snapshot")
            assert snap["features"] == {"callbacks": True}
            piet = snap["board"]["queues"]["t1-support"]["abandoned_callers"][0]
            assert piet["number"] == "0201234567"

            first = await ask(wb, "t1-support", piet["number"], "r1")
            assert first["ok"] is True and first["id"], first
            assert first["queue"] == "t1-support" and first["number"] == "0201234567"
            rows = await s.rows()
            assert [(r.id, r.queue, r.number, r.status, r.source) for r in rows] == [
                (first["id"], "support", "0201234567", "pending", "wallboard")
            ]

            # Same number, same queue: not booked twice; the answer names the open callback.
            again = await ask(wb, "t1-support", "0201234567", "r2")
            assert again["ok"] is False and again["id"] == first["id"]
            assert "already" in again["message"] and "0201234567" in again["message"]
            # The same number in another queue is another callback.
            sales = await ask(wb, "t1-sales", "0201234567", "r3")
            assert sales["ok"] is True and sales["id"] != first["id"]
            assert sorted((r.queue, r.status) for r in await s.rows()) == [
                ("sales", "pending"), ("support", "pending")
            ]  # fmt: skip

            # Acks sit outside the delta sequence: deltas after them still follow on without a gap
            # (Wallboard.step fails on one).
            await s.publish(fixture_deltas(ingest, "ringnoanswer"))
            want = json.loads(json.dumps(s.publisher.boards()["t1"]))
            await wb.until(lambda m: m["type"] == "delta" and wb.board == want)


async def test_callback_requests_outside_the_token_or_without_a_number_are_refused(database: str) -> None:
    async with callback_stack(database) as s, wallboard(s, "token=tq") as wb:
        await wb.until(lambda m: m["type"] == "snapshot")
        refusals = {
            "sales": await ask(wb, "t1-sales", "0201234567", "a"),  # the token covers support only
            "other tenant": await ask(wb, "t2-support", "0201234567", "b"),
            "anonymous": await ask(wb, "t1-support", "anonymous", "c"),
            "no queue": await ask(wb, "", "0201234567", "d"),
        }
        for why, ack in refusals.items():
            assert ack["ok"] is False and ack["id"] is None and ack["message"], why
        assert "t1-sales" in refusals["sales"]["message"] and "number" in refusals["anonymous"]["message"]
        assert await s.rows() == []
        # The refusals cost the socket nothing: a good request still books.
        assert (await ask(wb, "t1-support", "+31 20 123 4567", "e"))["ok"] is True
        assert [r.number for r in await s.rows()] == ["+31201234567"]


async def test_without_a_requester_the_snapshot_hides_the_button_and_requests_are_refused(
    database: str,
) -> None:
    async with callback_stack(database, with_requester=False) as s, wallboard(s, "token=ta") as wb:
        snap = await wb.until(lambda m: m["type"] == "snapshot")
        assert snap["features"] == {"callbacks": False}
        ack = await ask(wb, "t1-support", "0201234567", "x")
        assert ack["ok"] is False and "not available" in ack["message"]
        assert await s.rows() == []


async def test_callbacks_summary_deltas_reach_the_board_and_survive_into_new_snapshots(database: str) -> None:
    ingest = Ingest()
    async with callback_stack(database) as s:
        await s.publish(fixture_deltas(ingest, "answered"))
        async with wallboard(s, "token=ta") as wb, wallboard(s, "token=tb") as other:
            await wb.until(lambda m: m["type"] == "snapshot")
            await other.until(lambda m: m["type"] == "snapshot")
            await s.publish([Delta("callbacks.summary", "t1", "t1-support", 1_700_000_000.0, SUMMARY)])
            msg = await wb.until(lambda m: m["type"] == "delta")
            assert msg["delta"]["type"] == "callbacks.summary" and msg["delta"]["data"] == SUMMARY
            assert wb.board is not None and wb.board["queues"]["t1-support"]["callbacks"] == SUMMARY
            # An engine resync of the queue keeps the worker's summary.
            await s.publish(fixture_deltas(ingest, "status_busy"))
        async with wallboard(s, "token=ta") as late:
            snap = await late.until(lambda m: m["type"] == "snapshot")
            assert snap["board"]["queues"]["t1-support"]["callbacks"] == SUMMARY
        assert other.deltas == []  # tenant t2 never sees t1's callbacks


async def test_the_snapshot_carries_the_tenants_names_and_a_rename_reaches_open_boards(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``labels`` come from the provisioning database (real SQL): the tenant's name, the queues'
    display names, the pause reasons' labels. A change reaches boards already open as a fresh
    snapshot at the next refresh."""
    from pbx_core.provisioning.models import PauseReason, Queue, Tenant
    from pbx_core.web import hub

    monkeypatch.setattr(hub, "LABELS_REFRESH_S", 0.2)
    async with callback_stack(database) as s:
        async with s.prov.sessions() as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.slug == "t1"))).one()
            support = (await session.scalars(select(Queue).where(Queue.name == "support"))).one()
            support.settings = {**support.settings, "display_name": "Klantenservice"}
            session.add(PauseReason(tenant_id=tenant.id, code="lunch", label="Lunchpauze"))
            await session.commit()
        await s.publish(fixture_deltas(Ingest(), "answered"))
        async with wallboard(s, "token=ta") as wb:
            snap = await wb.until(lambda m: m["type"] == "snapshot")
            assert snap["labels"] == {
                "tenant": "T1", "queues": {"t1-support": "Klantenservice"},
                "pause_reasons": {"lunch": "Lunchpauze"},
            }  # fmt: skip
            async with s.prov.sessions() as session:
                tenant = (await session.scalars(select(Tenant).where(Tenant.slug == "t1"))).one()
                tenant.name = "Acme Bakery"
                await session.commit()
            renamed = await wb.until(lambda m: m["type"] == "snapshot" and m["labels"].get("tenant") != "T1")
            assert renamed["labels"]["tenant"] == "Acme Bakery"
            assert renamed["labels"]["queues"] == {"t1-support": "Klantenservice"}
