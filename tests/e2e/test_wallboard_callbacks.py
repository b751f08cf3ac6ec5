"""The wallboard's callbacks in a real headless Chromium: the worker's ``callbacks.summary`` on each
queue tile, and the abandoned list's "call back" button booking a real pending callback in a real
(migrated SQLite) database through the same wiring ``pbx-core web`` uses.

Playwright's ``expect`` polls until the condition holds; its timeout is a hang guard only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import expect
from sqlalchemy import select

from pbx_core.bus import BusPublisher, EmbeddedRedis
from pbx_core.config import Settings
from pbx_core.domain.queue_state import Delta
from pbx_core.provisioning.db import upgrade
from pbx_core.provisioning.keys import create_reseller_key
from pbx_core.provisioning.models import CallbackRow
from pbx_core.web import create_app, serving
from pbx_core.web.provisioning import Provisioning, provisioning
from tests.e2e.conftest import TENANT, TOKEN, WALLBOARD_DIR, BrowserFactory, RealApp, Recording, page_url
from tests.e2e.test_wallboard_browser import (
    DESKTOP,
    PHONE,
    assert_no_sideways_scroll,
    expect_connected,
    is_type,
    open_board,
    page_board,
)

PIET = "0201234567"  # abandons t1-support after 6 s in abandoned.ami
RED = "rgb(255, 77, 94)"  # --bad in style.css


def summary(queue: str, **counts: Any) -> Delta:
    """A ``callbacks.summary`` as the callbacks worker publishes it (issue 5 contract, Bus)."""
    data = {
        "pending": 3, "in_progress": 1, "at_risk": 1, "overdue": 2, "completed_today": 10, "on_time_today": 9,
        "on_time_pct": 90.0,
        "next": [{"id": "cb-x", "number": "0612345678", "status": "overdue", "due_by": 2e9, "place_at": 1e9}],
        **counts,
    }  # fmt: skip
    return Delta("callbacks.summary", TENANT, queue, 1_700_000_000.0, data)


class CallbackApp(RealApp):
    """The real web app + bus, with the provisioning database behind the "call back" button."""

    prov: Provisioning
    gate: asyncio.Event  # cleared: bookings wait (the page shows "booking…"); set: they go through

    async def rows(self) -> list[CallbackRow]:
        async with self.prov.sessions() as session:
            return list((await session.scalars(select(CallbackRow).order_by(CallbackRow.requested_at))).all())


@asynccontextmanager
async def serve_callback_app(tmp_path: Path) -> AsyncIterator[CallbackApp]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'callbacks.db'}"
    await upgrade(url)
    settings = Settings.from_env({"PBX_DATABASE_URL": url, "PBX_WALLBOARD_TOKENS": f"{TOKEN}={TENANT}"})
    async with EmbeddedRedis() as redis, provisioning(settings, database_url=url) as prov:
        real = prov.callback_requester
        assert real is not None
        gate = asyncio.Event()
        gate.set()

        async def gated(tenant: str, queue: str, number: str) -> tuple[bool, str, str | None]:
            await gate.wait()  # lets a test look at the page while the booking is in flight
            return await real(tenant, queue, number)

        publisher = BusPublisher(redis.url)
        await publisher.start()
        app = create_app(
            verifier=prov.verifier, redis_url=redis.url, wallboard_dir=WALLBOARD_DIR,
            extra_routes=prov.routes, callback_requester=gated,
        )  # fmt: skip
        server = CallbackApp(publisher, TENANT, TOKEN)
        server.prov, server.gate = prov, gate
        try:
            async with serving(app) as http:
                server.base_url = http
                async with prov.sessions() as session:
                    key = await create_reseller_key(session, "Reseller", "main")
                    await session.commit()
                async with httpx.AsyncClient(
                    base_url=f"{http}/api/v1", headers={"Authorization": f"Bearer {key}"}
                ) as api:
                    r = await api.post("/tenants", json={"slug": TENANT, "name": "T1"})
                    assert r.status_code == 201, r.text
                    for name in ("support", "sales"):
                        r = await api.post(
                            f"/tenants/{TENANT}/queues", json={"name": name, "strategy": "ringall"}
                        )
                        assert r.status_code == 201, r.text
                yield server
        finally:
            await publisher.close()


async def test_callbacks_line_and_call_back_button_book_a_real_callback(
    browser_context: BrowserFactory, artifacts: Path, tmp_path: Path
) -> None:
    async with serve_callback_app(tmp_path) as server:
        rec = Recording("abandoned")
        await server.publish(rec.feed_until(is_type("caller.abandoned", number=PIET)))
        ctx = await browser_context(viewport=DESKTOP)
        page, errors = await open_board(ctx, page_url(server))
        await expect_connected(page)
        tile = page.get_by_test_id("queue-tile-t1-support")
        line = tile.get_by_test_id("callbacks-line")
        await expect(line).to_be_hidden()  # no summary from the worker yet

        # The worker's summary arrives: pending / in progress / overdue (red) / on time today.
        await server.publish([summary("t1-support")])
        await expect(line).to_be_visible()
        await expect(line.get_by_test_id("callbacks-pending")).to_have_text("3")
        await expect(line.get_by_test_id("callbacks-in-progress")).to_have_text("1")
        await expect(line.get_by_test_id("callbacks-overdue")).to_have_text("2")
        await expect(line.get_by_test_id("callbacks-overdue")).to_have_css("color", RED)
        # Near the end of its promised window, not late yet: at risk (amber), before it is late.
        await expect(line.get_by_test_id("callbacks-at-risk")).to_have_text("1")
        await expect(line.get_by_test_id("callbacks-at-risk")).not_to_have_css("color", RED)
        await expect(line).to_contain_text("at risk")
        await expect(line.get_by_test_id("callbacks-on-time")).to_have_text("9/10 (90%)")
        await expect(line).to_contain_text("overdue")
        await expect(line).to_contain_text("on time today")

        # Piet hung up: his row has a "call back" button. A click books; the row shows it.
        row = page.get_by_test_id("abandoned-list").locator(f'li[data-number="{PIET}"]')
        button = row.get_by_test_id("callback-button")
        status = row.get_by_test_id("callback-status")
        await expect(button).to_be_visible()
        await expect(button).to_have_text("Call back")
        server.gate.clear()
        await button.click()
        await expect(button).to_be_disabled()  # in flight: the server holds the booking
        await expect(button).to_have_text("Booking…")
        assert await server.rows() == []
        server.gate.set()
        await expect(status).to_have_text("Callback booked")
        await expect(button).to_be_enabled()
        rows = await server.rows()
        assert [(r.queue, r.number, r.status, r.source) for r in rows] == [
            ("support", PIET, "pending", "wallboard")
        ]
        await page.screenshot(
            path=str(artifacts / "wallboard-callbacks.png"), full_page=True, animations="disabled"
        )

        # A second click for the same number: the server's dedupe answer, and still one callback.
        await button.click()
        await expect(status).to_contain_text("already has an open callback")
        await expect(status).to_have_attribute("data-ok", "0")
        assert [r.id for r in await server.rows()] == [rows[0].id]

        # A newer summary replaces the counts; nothing overdue is no longer red.
        await server.publish([summary("t1-support", pending=4, overdue=0, completed_today=0, on_time_today=0,
                                      on_time_pct=None)])  # fmt: skip
        await expect(line.get_by_test_id("callbacks-pending")).to_have_text("4")
        await expect(line.get_by_test_id("callbacks-on-time")).to_have_text("\u2013")
        await expect(line.get_by_test_id("callbacks-overdue")).not_to_have_css("color", RED)
        assert json.loads(await page_board(page)) == json.loads(json.dumps(server.board))
        assert errors == []


async def test_callbacks_in_dutch_on_a_phone_and_on_a_tv(
    browser_context: BrowserFactory, artifacts: Path, tmp_path: Path
) -> None:
    async with serve_callback_app(tmp_path) as server:
        rec = Recording("abandoned", "ringnoanswer", "members", "status_busy")
        await server.publish(rec.feed_until())
        await server.publish([summary("t1-support"), summary("t1-sales", pending=12, overdue=0)])

        ctx = await browser_context(locale="nl-NL", viewport=PHONE, is_mobile=True, has_touch=True,
                                    device_scale_factor=2)  # fmt: skip
        page, errors = await open_board(ctx, page_url(server))
        await expect_connected(page)
        line = page.get_by_test_id("queue-tile-t1-support").get_by_test_id("callbacks-line")
        await expect(line).to_contain_text("Terugbelverzoeken")
        # Its own words: "wachtend" is the tiles' word for callers in the queue.
        await expect(line).to_contain_text("gepland")
        await expect(line).not_to_contain_text("wachtend")
        await expect(line).to_contain_text("te laat")
        await expect(line).to_contain_text("op tijd vandaag")
        await expect(line.get_by_test_id("callbacks-on-time")).to_have_text("9/10 (90%)")
        abandoned = page.get_by_test_id("abandoned-list").locator("li")
        await expect(abandoned).to_have_count(4)
        # The three newest hung up after 4 s, under the queue's 5 s: short abandons, no button.
        for row in (await abandoned.all())[:3]:
            await expect(row.get_by_test_id("abandon-status")).to_have_text("Kort opgehangen")
            await expect(row.get_by_test_id("callback-button")).to_be_hidden()
        first = page.get_by_test_id("abandoned-list").locator(f'li[data-number="{PIET}"]')  # waited 6 s
        await expect(first.get_by_test_id("abandon-status")).to_be_hidden()
        await expect(first.get_by_test_id("callback-button")).to_have_text("Terugbellen")
        await first.get_by_test_id("callback-button").tap()
        await expect(first.get_by_test_id("callback-status")).to_have_text("Terugbelverzoek ingepland")
        number = await first.get_attribute("data-number")
        assert [(r.number, r.status) for r in await server.rows()] == [(number, "pending")]
        # The callbacks line and the booking's answer wrap inside the phone's width.
        await assert_no_sideways_scroll(page)
        await page.screenshot(
            path=str(artifacts / "wallboard-callbacks-phone.png"), full_page=True, animations="disabled"
        )
        assert errors == []

        tv = await browser_context(viewport={"width": 1920, "height": 1080})
        page, errors = await open_board(tv, page_url(server, tv="1", per_page="2"))
        await expect_connected(page)
        assert await page.evaluate("document.documentElement.classList.contains('tv')")
        for queue in ("t1-sales", "t1-support"):
            await expect(
                page.get_by_test_id(f"queue-tile-{queue}").get_by_test_id("callbacks-line")
            ).to_be_visible()
        sales = page.get_by_test_id("queue-tile-t1-sales")
        await expect(sales.get_by_test_id("callbacks-pending")).to_have_text("12")
        # The line stays one row on a TV tile, below the stats, inside the tile.
        box = await sales.get_by_test_id("callbacks-line").bounding_box()
        tile_box = await sales.bounding_box()
        assert box is not None and tile_box is not None
        assert box["x"] + box["width"] <= tile_box["x"] + tile_box["width"]
        assert box["y"] + box["height"] <= tile_box["y"] + tile_box["height"]
        await page.screenshot(path=str(artifacts / "wallboard-callbacks-tv.png"), animations="disabled")
        assert errors == []


async def test_without_callbacks_on_the_server_there_is_no_call_back_button(
    wallboard_server: Any, browser_context: BrowserFactory
) -> None:
    # The shared e2e server is built without a callback requester.
    rec = Recording("abandoned")
    await wallboard_server.publish(rec.feed_until())
    ctx = await browser_context(viewport=DESKTOP)
    page, errors = await open_board(ctx, page_url(wallboard_server))
    await expect_connected(page)
    row = page.get_by_test_id("abandoned-list").locator(f'li[data-number="{PIET}"]')
    await expect(row).to_be_visible()
    await expect(row.get_by_test_id("callback-button")).to_be_hidden()
    assert await page.evaluate("window.__wallboard.features.callbacks") in (False, None)
    assert errors == []


async def test_the_abandoned_list_shows_what_became_of_each_callers_callback(
    browser_context: BrowserFactory, tmp_path: Path
) -> None:
    """The callbacks' summary says, per number, what became of today's callback: the row says it
    too (booked, calling back, called back, not reached) and offers a button only when booking
    another makes sense, instead of a click finding out there is one already."""
    async with serve_callback_app(tmp_path) as server:
        await server.publish(Recording("abandoned").feed_until())
        ctx = await browser_context(viewport=DESKTOP)
        page, errors = await open_board(ctx, page_url(server))
        await expect_connected(page)
        row = page.get_by_test_id("abandoned-list").locator(f'li[data-number="{PIET}"]')
        status, button = row.get_by_test_id("abandon-status"), row.get_by_test_id("callback-button")
        await expect(button).to_be_visible()
        await expect(status).to_be_hidden()
        for state, text, can_book in [
            ("pending", "Callback booked", False), ("dialling", "Calling back now", False),
            ("completed", "Called back", False), ("no_answer", "Callback: not reached", True),
        ]:  # fmt: skip
            await server.publish([summary("t1-support", numbers={PIET: state})])
            await expect(status).to_have_text(text)
            await (expect(button).to_be_visible() if can_book else expect(button).to_be_hidden())
        assert errors == []
