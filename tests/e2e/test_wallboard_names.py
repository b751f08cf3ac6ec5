"""The board speaks the tenant's names: its name in the header (not the slug), its queues' display
names on tiles and chips, its pause reasons' labels, all from the provisioning database (real,
migrated SQLite) through the snapshot's ``labels``."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect
from sqlalchemy import select

from pbx_core.provisioning.models import PauseReason, Queue, Tenant
from tests.e2e.conftest import BrowserFactory, Recording
from tests.e2e.test_wallboard_browser import DESKTOP, PAUSED_AGENT, expect_connected, is_type, open_board
from tests.integration.test_wallboard_callbacks import callback_stack


async def test_header_tiles_and_pause_reasons_use_the_tenants_names(
    browser_context: BrowserFactory, tmp_path: Path
) -> None:
    async with callback_stack(f"sqlite+aiosqlite:///{tmp_path / 'names.db'}") as stack:
        async with stack.prov.sessions() as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.slug == "t1"))).one()
            tenant.name = "Acme Bakery"
            support = (await session.scalars(select(Queue).where(Queue.name == "support"))).one()
            support.settings = {**support.settings, "display_name": "Klantenservice"}
            session.add(PauseReason(tenant_id=tenant.id, code="lunch", label="Lunchpauze"))
            await session.commit()
        rec = Recording("abandoned", "ringnoanswer")
        await stack.publish(rec.feed_until(is_type("caller.joined", number="0101112233")))

        ctx = await browser_context(viewport=DESKTOP)
        page, errors = await open_board(ctx, f"{stack.http}/?token=ta")
        await expect_connected(page)
        await expect(page.get_by_test_id("tenant-name")).to_have_text("Acme Bakery")
        assert (await page.title()).startswith("Acme Bakery")
        tile = page.get_by_test_id("queue-tile-t1-support")
        await expect(tile.locator(".tile-title")).to_have_text("Klantenservice")
        await expect(tile.locator(".tile-sub")).to_contain_text("support")  # its own name, small
        caller = page.get_by_test_id("waiting-list").locator('li[data-number="0101112233"]')
        await expect(caller.locator(".chip")).to_have_text("Klantenservice")
        agent = page.get_by_test_id(f"agent-{PAUSED_AGENT}")
        await expect(agent.get_by_test_id("agent-reason")).to_have_text("Lunchpauze")
        assert errors == []
