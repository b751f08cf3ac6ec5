"""Timers on the PBX's clock: the whole live path (simulated Asterisk over real TCP → bridge →
real Redis bus → web app → headless Chromium) with the PBX's clock hours away from ours.

A board that measured waits against the server's or the browser's clock would show every wait
as 00:00 here (the caller "joined" five hours from now), and a header clock five hours off the
abandon times beside it.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import expect

from pbx_core.config import Settings
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import SimMember, SimulatedAsterisk
from pbx_core.stack import running_stack
from pbx_core.web.auth import Scope, StaticTokens
from tests.conftest import wait_until
from tests.e2e.conftest import TENANT, TOKEN, BrowserFactory
from tests.e2e.test_wallboard_browser import DESKTOP, expect_connected, open_board

SKEW_S = -5 * 3600  # the PBX's clock is five hours behind the real one
ZONE = ZoneInfo("Europe/Amsterdam")  # the browser fixture's timezone


def seconds(text: str) -> int:
    """"mm:ss" or "h:mm:ss" → seconds."""
    parts = [int(p) for p in text.strip().split(":")]
    total = 0
    for p in parts:
        total = total * 60 + p
    return total


async def text_of(locator: Any) -> str:
    return str(await locator.text_content()).strip()


async def test_waits_tick_on_the_pbx_clock_when_it_is_hours_off(browser_context: BrowserFactory) -> None:
    queue = f"{TENANT}-support"
    async with SimulatedAsterisk(clock=SimClock(time.time() + SKEW_S, speed=1.0)) as sim:
        sim.queue(queue)
        sim.add_member(queue, SimMember("Local/201@t1-agents/n", "Anna Jansen"), emit=False)
        tokens = StaticTokens({TOKEN: Scope(TENANT)})
        async with running_stack(Settings.from_env({}), sim.url, tokens, host="127.0.0.1", port=0) as stack:
            await wait_until(lambda: queue in stack.bridge.state.queues, "the bridge's first resync")
            sim.join(queue, "0612345678", "Jan de Vries", waited_s=3)
            await wait_until(lambda: stack.bridge.state.queues[queue].callers, "the caller in the engine")

            ctx = await browser_context(viewport=DESKTOP)
            page, errors = await open_board(ctx, f"{stack.base_url}/?token={TOKEN}")
            await expect_connected(page)
            row = page.get_by_test_id("waiting-list").locator('li[data-number="0612345678"]')
            await expect(row).to_be_visible()
            wait = row.locator(".wait")
            # Joined 3 s before the PBX's "now": never the clamped 00:00 of a clock hours ahead.
            await expect(wait).not_to_have_text(re.compile(r"^\s*00:0[0-2]\s*$"))
            first = seconds(await text_of(wait))
            assert 3 <= first < 60, first
            # And it ticks: the next second comes on the page's own (PBX) clock.
            await expect(wait).not_to_have_text(await text_of(wait))
            later = seconds(await text_of(wait))
            assert later > first
            longest = page.get_by_test_id("queue-tile-t1-support").get_by_test_id("longest-wait-value")
            assert seconds(await text_of(longest)) >= later

            # The header clock is the PBX's too, five hours off this machine's.
            shown = await text_of(page.get_by_test_id("clock"))
            pbx = datetime.fromtimestamp(sim.clock.now(), ZONE)
            h, m, s = (int(x) for x in shown.split(":"))
            diff = abs((h * 3600 + m * 60 + s) - (pbx.hour * 3600 + pbx.minute * 60 + pbx.second))
            assert min(diff, 86400 - diff) <= 3, f"header clock {shown}, PBX clock {pbx:%H:%M:%S}"
            assert errors == []
