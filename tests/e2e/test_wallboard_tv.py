"""TV mode fits one screen: at 1920x1080 and 1280x720, with 1, 2, 4 and 8 queues of a busy
tenant, the page is no taller or wider than the screen, no two boxes of the board overlap, no
number or timer is cut, nothing can be clicked, and long lists end in "+N more"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import expect

from tests.e2e.board_world import QUEUES, busy_board, scoped_url
from tests.e2e.conftest import BrowserFactory
from tests.e2e.test_wallboard_browser import expect_connected, open_board

SCREENS = [{"width": 1920, "height": 1080}, {"width": 1280, "height": 720}]
QUEUE_COUNTS = [1, 2, 4, 8]

# The boxes that must not overlap one another (a box may contain another: a row its name).
BOXES = ", ".join([
    ".topbar .brand", ".topbar .sum", ".topbar .pager", ".topbar .conn", ".topbar .clock",
    ".tile", ".tile-title", ".tile-sub", ".tile .metric-value", ".tile .metric-label", ".tile .gauge",
    ".tile .gauge-target", ".tile .pill", ".tile .stat", ".tile-callbacks .cb",
    ".panel", ".panel h2", ".more", ".agent", ".agent-name", ".agent-calls", ".badge", ".agent-timer",
    ".agent-reason", ".caller", ".pos", ".caller-name", ".caller-number", ".chip", ".wait",
    ".waited", ".when",
])  # fmt: skip

# The in-page measurement: page size, overlaps, cut text, controls, list counts.
MEASURE = (Path(__file__).parent / "measure_board.js").read_text()


async def settle(page: Any) -> None:
    """After fonts, two frames and a timer tick: the layout a viewer sees."""
    await page.evaluate("""() => document.fonts.ready.then(() => new Promise((done) =>
        requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 1100)))))""")


async def test_tv_mode_fits_one_screen_with_1_2_4_and_8_queues(
    browser_context: BrowserFactory, artifacts: Path, tmp_path: Path
) -> None:
    async with busy_board(tmp_path) as (_sim, stack):
        failures: list[str] = []
        capped = 0
        for screen in SCREENS:
            ctx = await browser_context(viewport=screen)
            for n in QUEUE_COUNTS:
                queues = ",".join(QUEUES[:n])
                page, errors = await open_board(ctx, scoped_url(stack, tv="1", queues=queues, rotate="600"))
                await expect_connected(page)
                tiles = page.get_by_test_id("queue-tiles").locator("article")
                await expect(tiles.first).to_be_visible()
                await settle(page)
                found = await page.evaluate(MEASURE, BOXES)
                where = f"{screen['width']}x{screen['height']}, {n} queue(s)"
                failures += [f"{where}: {p}" for p in found["problems"]]
                failures += [f"{where}: script error {e}" for e in errors]
                for list_name, c in found["lists"].items():
                    # Every row is either shown or counted in "+N more"; none is just lost.
                    if c["shown"] + c["more"] != c["total"] or c["rows"] != c["total"]:
                        failures.append(
                            f"{where}: {list_name} shows {c['shown']} + {c['more']} more of {c['total']}"
                        )
                    if c["total"] and not c["shown"]:
                        failures.append(f"{where}: {list_name} shows none of its {c['total']} rows")
                capped += found["lists"]["abandoned-list"]["more"] > 0
                if n == len(QUEUES):
                    await page.screenshot(
                        path=str(artifacts / f"wallboard-tv-{screen['width']}x{screen['height']}.png"),
                        animations="disabled",
                    )
                errors.clear()
        assert not failures, "\n".join(failures)
        # The busy case really was capped somewhere, or this proves nothing about capping.
        assert capped, "no abandoned list needed '+N more'"
