"""The wallboard in a real headless Chromium, fed with real engine output over a real websocket.

Playwright's ``expect`` polls until the condition holds; its timeout is a hang guard only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.async_api import expect

from pbx_core.domain.queue_state import Delta
from tests.e2e.conftest import BrowserFactory, Recording, WallboardServer, page_url, serve_wallboard

DESKTOP = {"width": 1600, "height": 1000}
PHONE = {"width": 390, "height": 844}

PAUSED_AGENT = "Local/agent2@agents/n"  # paused with reason "lunch" in ringnoanswer.ami


def is_type(kind: str, **data: Any) -> Any:
    return lambda d: d.type == kind and all(d.data.get(k) == v for k, v in data.items())


async def open_board(ctx: Any, url: str) -> tuple[Any, list[str]]:
    """The page, and the script errors it logs (a board that throws is broken, however it looks)."""
    page = ctx.pages[0] if ctx.pages else await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(url)
    return page, errors


async def expect_connected(page: Any) -> None:
    await expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected")


async def page_board(page: Any) -> Any:
    return await page.evaluate("JSON.stringify(window.__wallboard.board)")


async def assert_no_sideways_scroll(page: Any, width: int = PHONE["width"]) -> None:
    """A mobile browser widens its layout viewport to fit content that is too wide (and zooms out),
    so compare with the device width, not with innerWidth."""
    # After fonts, a frame and a timer tick, so the measured layout is the one shown.
    await page.evaluate("""() => document.fonts.ready.then(() => new Promise((done) =>
        requestAnimationFrame(() => setTimeout(done, 1100))))""")
    found = await page.evaluate(
        """(width) => ({
            scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
            culprits: [...document.querySelectorAll("body *")]
                .filter((el) => el.getBoundingClientRect().right > width + 0.5)
                .slice(0, 6).map((el) => `${el.className}: ${el.textContent.slice(0, 24)}`),
        })""",
        width,
    )
    assert found["scroll"] <= width and found["inner"] <= width, f"wider than a {width}px phone: {found}"


async def publish(server: WallboardServer, deltas: list[Delta]) -> None:
    assert deltas, "the recording step produced no deltas"
    await server.publish(deltas)


async def test_live_board_shows_callers_abandons_and_pauses(
    wallboard_server: WallboardServer, browser_context: BrowserFactory, artifacts: Path
) -> None:
    rec = Recording("answered", "abandoned", "ringnoanswer")
    ctx = await browser_context(viewport=DESKTOP)
    page, errors = await open_board(ctx, page_url(wallboard_server))
    await expect_connected(page)
    await expect(page.get_by_test_id("conn-status")).to_contain_text("Live")

    # A caller who joins appears in the waiting list, with the number.
    await publish(wallboard_server, rec.feed_until(is_type("caller.joined", number="0201234567")))
    waiting = page.get_by_test_id("waiting-list")
    piet_waiting = waiting.locator('li[data-number="0201234567"]')
    await expect(piet_waiting).to_be_visible()
    await expect(piet_waiting).to_contain_text("0201234567")
    await expect(piet_waiting).to_contain_text("Piet Klaassen")

    # He hangs up: gone from the waiting list, in the abandoned list with number and wait.
    await publish(wallboard_server, rec.feed_until(is_type("caller.abandoned", number="0201234567")))
    abandoned = page.get_by_test_id("abandoned-list").locator('li[data-number="0201234567"]')
    await expect(abandoned).to_be_visible()
    await expect(abandoned).to_contain_text("0201234567")
    await expect(abandoned).to_contain_text("00:06")  # waited_s from the recording
    await expect(piet_waiting).to_have_count(0)
    await expect(page.get_by_test_id("abandoned-count")).to_have_text("1")

    # Next recording: Agent Two is added paused ("lunch"), then Kees de Vries joins.
    await publish(wallboard_server, rec.feed_until(is_type("caller.joined", number="0101112233")))
    agent = page.get_by_test_id(f"agent-{PAUSED_AGENT}")
    await expect(agent.get_by_test_id("agent-state")).to_have_text("Paused")
    await expect(agent.get_by_test_id("agent-reason")).to_have_text("lunch")
    kees = waiting.locator('li[data-number="0101112233"]')
    await expect(kees).to_contain_text("Kees de Vries")
    await expect(kees.locator(".pos")).to_have_text("1")
    tile = page.get_by_test_id("queue-tile-t1-support")
    await expect(tile.get_by_test_id("waiting-count-value")).to_have_text("1")
    await expect(tile.get_by_test_id("longest-wait-value")).not_to_have_text("\u2013")  # the "no value" dash
    # 1 answered, 1 abandoned after 6 s: SL 50 %, red against the default 80/60 thresholds.
    await expect(tile.get_by_test_id("sl-value")).to_have_text("50%")
    await expect(tile.locator(".gauge")).to_have_attribute("data-level", "bad")
    await expect(tile).to_have_attribute("data-level", "bad")

    # The browser's reducer (board.js) holds exactly the server's board.
    assert json.loads(await page_board(page)) == json.loads(json.dumps(wallboard_server.board))
    await page.screenshot(path=str(artifacts / "wallboard.png"), full_page=True, animations="disabled")

    # The rest of the recording: Agent Two unpauses and answers Kees.
    await publish(wallboard_server, rec.feed_until())
    await expect(kees).to_have_count(0)
    await expect(agent.get_by_test_id("agent-reason")).to_be_hidden()
    await expect(agent.get_by_test_id("agent-state")).to_have_text("Available")
    await expect(tile.get_by_test_id("waiting-count-value")).to_have_text("0")
    assert json.loads(await page_board(page)) == json.loads(json.dumps(wallboard_server.board))
    assert errors == []


async def test_dutch_browser_gets_dutch_labels(
    wallboard_server: WallboardServer, browser_context: BrowserFactory, artifacts: Path
) -> None:
    rec = Recording("abandoned", "ringnoanswer")
    await publish(wallboard_server, rec.feed_until(is_type("caller.joined", number="0101112233")))
    ctx = await browser_context(locale="nl-NL", viewport=DESKTOP)
    page, errors = await open_board(ctx, page_url(wallboard_server))
    await expect_connected(page)

    assert await page.evaluate("document.documentElement.lang") == "nl"
    await expect(page.locator(".panel-waiting h2")).to_contain_text("Wachtende bellers")
    await expect(page.locator(".panel-abandoned h2")).to_contain_text("Opgehangen vandaag")
    await expect(page.locator(".panel-agents h2")).to_contain_text("Medewerkers")
    agent = page.get_by_test_id(f"agent-{PAUSED_AGENT}")
    await expect(agent.get_by_test_id("agent-state")).to_have_text("Pauze")
    await expect(agent.get_by_test_id("agent-reason")).to_have_text("lunch")
    tile = page.get_by_test_id("queue-tile-t1-support")
    await expect(tile).to_contain_text("Langste wachttijd")
    await expect(tile).to_contain_text("Beantwoord")
    await expect(page.get_by_test_id("abandoned-list")).to_contain_text("0201234567")
    await page.screenshot(path=str(artifacts / "wallboard-nl.png"), full_page=True, animations="disabled")
    assert errors == []


async def test_phone_layout_has_no_sideways_scroll(
    wallboard_server: WallboardServer, browser_context: BrowserFactory, artifacts: Path
) -> None:
    rec = Recording("abandoned", "ringnoanswer", "members", "status_busy")
    await publish(wallboard_server, rec.feed_until(is_type("caller.joined", number="0600000000")))
    ctx = await browser_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page, errors = await open_board(ctx, page_url(wallboard_server))
    await expect_connected(page)
    await expect(page.get_by_test_id("waiting-list").locator("li")).to_have_count(3)
    await expect(page.get_by_test_id("queue-tiles").locator("article")).to_have_count(2)
    await assert_no_sideways_scroll(page)
    await page.screenshot(path=str(artifacts / "wallboard-phone.png"), full_page=True, animations="disabled")

    # The rest: a queue.resynced, then three abandons on top of it; both reducers must agree.
    await publish(wallboard_server, rec.feed_until())
    abandoned = page.get_by_test_id("abandoned-list").locator("li")
    await expect(abandoned).to_have_count(4)
    # Newest first, so the most recent hang-up is the first to be called back.
    assert [await li.get_attribute("data-number") for li in await abandoned.all()] == [
        "0600000001", "0600000002", "0600000000", "0201234567",
    ]  # fmt: skip
    await expect(page.get_by_test_id("waiting-list").locator("li")).to_have_count(0)
    assert json.loads(await page_board(page)) == json.loads(json.dumps(wallboard_server.board))
    await assert_no_sideways_scroll(page)
    # Who can answer comes before the list of who hung up, however long that gets.
    agents_top = await page.locator(".panel-agents").evaluate("el => el.getBoundingClientRect().top")
    abandoned_top = await page.locator(".panel-abandoned").evaluate("el => el.getBoundingClientRect().top")
    assert agents_top < abandoned_top
    assert errors == []


async def test_per_queue_thresholds_from_the_snapshot_colour_the_tile(
    browser_context: BrowserFactory,
) -> None:
    # Thresholds are server configuration, so this test starts its own server.
    thresholds = {"t1-support": {"sl_pct": {"amber": 45, "red": 20}, "waiting": {"amber": 1, "red": 5}}}
    async with serve_wallboard(thresholds) as server:
        rec = Recording("answered", "abandoned", "ringnoanswer")
        await publish(server, rec.feed_until(is_type("caller.joined", number="0101112233")))
        ctx = await browser_context(viewport=DESKTOP)
        page, errors = await open_board(ctx, page_url(server))
        await expect_connected(page)
        tile = page.get_by_test_id("queue-tile-t1-support")
        await expect(tile.get_by_test_id("sl-value")).to_have_text("50%")
        await expect(tile.locator(".gauge")).to_have_attribute("data-level", "good")
        await expect(tile.locator(".m-waiting")).to_have_attribute("data-level", "warn")
        assert errors == []


async def test_reconnects_and_catches_up_after_the_server_drops_it(
    wallboard_server: WallboardServer, browser_context: BrowserFactory
) -> None:
    rec = Recording("abandoned")
    ctx = await browser_context(viewport=DESKTOP)
    page, _ = await open_board(ctx, page_url(wallboard_server))
    conn = page.get_by_test_id("conn-status")
    await expect_connected(page)

    await wallboard_server.drop_clients()
    await expect(conn).to_have_attribute("data-state", "reconnecting")
    # Whatever happened meanwhile arrives with the snapshot of the new connection.
    await publish(wallboard_server, rec.feed_until())
    await expect_connected(page)
    piet = page.get_by_test_id("abandoned-list").locator('li[data-number="0201234567"]')
    await expect(piet).to_be_visible()
    assert await page.evaluate("window.__wallboard.stats.connects") >= 2


async def test_bad_token_is_shown_and_not_retried(
    wallboard_server: WallboardServer, browser_context: BrowserFactory
) -> None:
    ctx = await browser_context(viewport=DESKTOP)
    page, _ = await open_board(ctx, page_url(wallboard_server, token="not-a-token"))
    await expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "unauthorised")
    await expect(page.get_by_test_id("conn-banner")).to_be_visible()
    await expect(page.get_by_test_id("conn-banner")).to_contain_text("token")
    await expect(page.get_by_test_id("conn-retry")).to_be_visible()
    # The message alone: no empty tiles, panels or zero counts beneath it.
    for part in ("queue-tiles", "agent-board", "waiting-list", "abandoned-list", "summary"):
        await expect(page.get_by_test_id(part)).to_be_hidden()
    assert await page.evaluate("window.__wallboard.stats.connects") == 1


async def test_tv_mode_rotates_queue_groups(
    wallboard_server: WallboardServer, browser_context: BrowserFactory, artifacts: Path
) -> None:
    rec = Recording("ringnoanswer", "members")
    await publish(wallboard_server, rec.feed_until(is_type("agent.paused")))
    ctx = await browser_context(viewport={"width": 1920, "height": 1080})
    page, errors = await open_board(ctx, page_url(wallboard_server, tv="1", per_page="1", rotate="2"))
    await expect_connected(page)
    assert await page.evaluate("document.documentElement.classList.contains('tv')")
    tiles = page.get_by_test_id("queue-tiles").locator("article")
    await expect(tiles).to_have_count(1)
    pager = page.get_by_test_id("tv-pager")
    await expect(pager).to_be_visible()
    first = await tiles.first.get_attribute("data-testid")
    other = "queue-tile-t1-support" if first == "queue-tile-t1-sales" else "queue-tile-t1-sales"
    await expect(page.get_by_test_id(other)).to_be_visible()  # the next page comes round
    await page.screenshot(path=str(artifacts / "wallboard-tv.png"), animations="disabled")

    # No button on a wall until the mouse moves; then leaving TV mode shows every queue again.
    await expect(page.get_by_test_id("tv-toggle")).to_be_hidden()
    await page.mouse.move(200, 200)
    await page.get_by_test_id("tv-toggle").click()
    await expect(tiles).to_have_count(2)
    assert not await page.evaluate("document.documentElement.classList.contains('tv')")
    assert errors == []
