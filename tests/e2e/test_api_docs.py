"""The API's documentation pages work offline: /api/v1/docs (Swagger UI) and /api/v1/redoc (ReDoc)
render every operation in a real Chromium that may not reach the internet (it used to be a blank
page: FastAPI's default pages load their JavaScript from a CDN)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette

from pbx_core.api import ApiContext, api_mount
from pbx_core.provisioning.db import open_sessions, upgrade
from pbx_core.web.server import serving
from tests.e2e.conftest import BrowserFactory

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
async def api_base_url(tmp_path: Path) -> AsyncIterator[str]:
    url = f"sqlite:///{tmp_path / 'docs.db'}"
    await upgrade(url)
    async with open_sessions(url) as sessions:
        ctx = ApiContext(sessions=sessions, rate_limit_per_min=0, secret_key=None,
                         asterisk_config_dir=tmp_path / "pbx-core", ami_url=None)
        async with serving(Starlette(routes=[api_mount(ctx)])) as base_url:
            yield base_url


async def open_offline(browser_context: BrowserFactory, base_url: str) -> tuple[Any, list[str]]:
    """A page whose requests to any host but the server are refused (and remembered)."""
    ctx = await browser_context()
    page = await ctx.new_page()
    outside: list[str] = []
    ours = urlsplit(base_url).netloc

    async def only_ours(route: Any) -> None:
        if urlsplit(route.request.url).netloc == ours:
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_ours)
    return page, outside


async def test_swagger_ui_renders_every_operation_without_the_internet(
    api_base_url: str, browser_context: BrowserFactory, artifacts: Path
) -> None:
    page, outside = await open_offline(browser_context, api_base_url)
    await page.goto(f"{api_base_url}/api/v1/docs")
    await page.wait_for_selector(".opblock", timeout=20_000)
    operations = await page.locator(".opblock").count()
    assert operations >= 30  # tenants, users, queues, members, menus, hours, DIDs, keys, ...
    assert await page.locator(".information-container .title").first.inner_text() != ""
    await page.screenshot(path=str(artifacts / "api-docs-swagger.png"))
    assert outside == []


async def test_redoc_renders_the_document_without_the_internet(
    api_base_url: str, browser_context: BrowserFactory, artifacts: Path
) -> None:
    page, outside = await open_offline(browser_context, api_base_url)
    await page.goto(f"{api_base_url}/api/v1/redoc")
    heading = page.locator("h1").first
    await heading.wait_for(timeout=20_000)
    assert "pbx-core provisioning API" in await heading.inner_text()
    assert await page.get_by_text("Mint a wallboard token").count() >= 1
    await page.screenshot(path=str(artifacts / "api-docs-redoc.png"))
    # ReDoc's "powered by" logo is the one remote asset; ReDoc hides it when it fails to load.
    assert [u for u in outside if u != REDOC_LOGO] == []
