"""Screenshots of the busy board as a supervisor sees it, written to ``test-artifacts/``: the normal
view at 1920x1080, the phone view and the Dutch view (the TV views come from test_wallboard_tv).
Each is taken only once the board shows what it should, so a screenshot is never of a broken or
half-loaded page."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from tests.e2e.board_world import AGENTS, CALLERS, QUEUES, TENANT_NAME, WAITING, busy_board, scoped_url
from tests.e2e.conftest import BrowserFactory
from tests.e2e.test_wallboard_browser import (
    PHONE,
    assert_no_sideways_scroll,
    expect_connected,
    open_board,
)
from tests.e2e.test_wallboard_tv import settle

FULL_HD = {"width": 1920, "height": 1080}


async def test_screenshots_of_the_normal_phone_and_dutch_views(
    browser_context: BrowserFactory, artifacts: Path, tmp_path: Path
) -> None:
    async with busy_board(tmp_path) as (_sim, stack):
        views = [
            ("wallboard-busy.png", {"viewport": FULL_HD}, "Waiting callers"),
            ("wallboard-busy-phone.png", {"viewport": PHONE, "is_mobile": True, "has_touch": True,
                                          "device_scale_factor": 2}, "Waiting callers"),
            ("wallboard-busy-nl.png", {"viewport": FULL_HD, "locale": "nl-NL"}, "Wachtende bellers"),
        ]  # fmt: skip
        for name, options, waiting_title in views:
            ctx = await browser_context(**options)
            page, errors = await open_board(ctx, scoped_url(stack))
            await expect_connected(page)
            await expect(page.get_by_test_id("queue-tiles").locator("article")).to_have_count(len(QUEUES))
            await expect(page.get_by_test_id("waiting-list").locator("li")).to_have_count(WAITING)
            abandoned = page.get_by_test_id("abandoned-list").locator("li")
            await expect(abandoned).to_have_count(len(CALLERS) - WAITING)
            await expect(page.get_by_test_id("agent-board").locator("li")).to_have_count(len(AGENTS))
            await expect(page.locator(".panel-waiting h2")).to_contain_text(waiting_title)
            await expect(page.get_by_test_id("tenant-name")).to_have_text(TENANT_NAME)
            await expect(page.get_by_test_id("agent-board")).to_contain_text("Team meeting")  # code "meeting"
            await settle(page)
            if options["viewport"] == PHONE:
                await assert_no_sideways_scroll(page)
            # Whole agent names, in English and in Dutch ("Gesprekken" once cut them short).
            cut = await page.evaluate("""() => [...document.querySelectorAll(".agent-name")]
                .filter((el) => el.scrollWidth > el.clientWidth + 0.5).map((el) => el.textContent)""")
            assert cut == [], f"{name}: agent names cut: {cut}"
            # Nor anything else of an agent's card (state, calls, timer) sticking out of it.
            out = await page.evaluate("""() => [...document.querySelectorAll(".agent *")].filter((el) => {
                const r = el.getBoundingClientRect(), c = el.closest(".agent").getBoundingClientRect();
                return r.width > 0 && (r.right > c.right + 0.5 || r.bottom > c.bottom + 0.5);
            }).map((el) => `${el.className}: ${el.textContent}`)""")
            assert out == [], f"{name}: outside their agent's card: {out}"
            await page.screenshot(path=str(artifacts / name), full_page=True, animations="disabled")
            assert errors == []
