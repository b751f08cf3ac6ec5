"""REST API fixtures: the real app over a real, migrated database.

Every test runs against SQLite (a temp file) and, when PBX_TEST_POSTGRES_URL is set, PostgreSQL
too (a database made for this run, dropped after it). The schema is migrated once per backend
(``pbx_core.provisioning.db.upgrade``); every test starts from empty tables.

The app is mounted at /api/v1 exactly as the web app mounts it; ``client`` talks to it in
process (httpx ASGITransport), so paths in tests are relative: ``client.get("/tenants")``.
``served(ctx)`` runs it under uvicorn on a free port instead, for tests of what only a real
connection shows (request bodies, concurrency, client addresses).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from pbx_core.api import ApiContext, api_mount
from pbx_core.provisioning.db import make_engine, session_factory, upgrade
from pbx_core.provisioning.keys import create_reseller_key
from pbx_core.provisioning.models import Base

PG_URL = os.environ.get("PBX_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]
API_ROOT = "/api/v1"


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion in a thread of its own (session fixtures are sync)."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0] if result else None


def _pg_url(database: str) -> str:
    parts = urlsplit(PG_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database for this test session (one per backend)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api-db') / 'pbx.db'}"
        run_sync(upgrade(url))
        yield url
        return
    name = f"pbx_api_{uuid.uuid4().hex[:12]}"
    run_sync(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = _pg_url(name)
        run_sync(upgrade(url))
        yield url
    finally:
        run_sync(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    async with engine.begin() as conn:  # start empty, whatever the previous test left
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(delete(table))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def ctx(engine: AsyncEngine, tmp_path: Path) -> ApiContext:
    # Limits off: tests of the limits set their own (api_client(ctx, rate_limit_per_min=...)).
    return ApiContext(sessions=session_factory(engine), rate_limit_per_min=0, tenant_rate_limit_per_min=0,
                      secret_key=None, asterisk_config_dir=tmp_path / "pbx-core", ami_url=None,
                      auth_failures_per_min=100_000)


def mounted(ctx: ApiContext) -> Starlette:
    return Starlette(routes=[api_mount(ctx, API_ROOT)])


@contextlib.asynccontextmanager
async def api_client(ctx: ApiContext, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built from ``ctx`` with ``changes`` (e.g. rate_limit_per_min=3)."""
    app = mounted(replace(ctx, **changes))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://test{API_ROOT}") as client:
        yield client


@contextlib.asynccontextmanager
async def served(
    ctx: ApiContext, *, trusted_proxies: tuple[str, ...] = (), **changes: Any
) -> AsyncIterator[str]:
    """The API of ``ctx`` (with ``changes``) served by uvicorn on a free port, over real TCP: for
    what an in-process transport would hide (bodies, connections, client addresses). Yields the
    API's base URL."""
    from pbx_core.web.server import serving

    async with serving(mounted(replace(ctx, **changes)), trusted_proxies=trusted_proxies) as base:
        yield f"{base}{API_ROOT}"


@pytest.fixture
async def client(ctx: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ctx) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_error(response: httpx.Response, status: int, *, field: str | None = None,
                 code: str | None = None) -> dict[str, Any]:
    """The response is the API's error shape with ``status`` (and names ``field``, if given)."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    if field is not None:
        assert field in [f["field"] for f in error["fields"]], error
    return error


async def reseller_key(ctx: ApiContext, reseller: str, key_name: str = "main") -> str:
    async with ctx.sessions() as session:
        key = await create_reseller_key(session, reseller, key_name)
        await session.commit()
    return key


async def tenant_key(client: httpx.AsyncClient, by: str, slug: str, role: str, *,
                     name: str | None = None, queues: list[str] | None = None) -> str:
    body: dict[str, Any] = {"name": name or f"{slug} {role}", "role": role}
    if queues is not None:
        body["queues"] = queues
    r = await client.post(f"/tenants/{slug}/api-keys", json=body, headers=auth(by))
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


@dataclass(frozen=True)
class World:
    """Two resellers; A owns tenant ``acme`` (with admin, supervisor, agent keys), B owns
    ``globex`` (with an admin key)."""

    reseller_a: str
    reseller_b: str
    admin: str
    supervisor: str
    agent: str
    admin_b: str


@pytest.fixture
async def world(ctx: ApiContext, client: httpx.AsyncClient) -> World:
    return await make_world(ctx, client)


async def make_world(ctx: ApiContext, client: httpx.AsyncClient) -> World:
    reseller_a = await reseller_key(ctx, "Reseller A", "a-main")
    reseller_b = await reseller_key(ctx, "Reseller B", "b-main")
    for slug, key in (("acme", reseller_a), ("globex", reseller_b)):
        r = await client.post("/tenants", json={"slug": slug, "name": slug.title()}, headers=auth(key))
        assert r.status_code == 201, r.text
    return World(
        reseller_a=reseller_a,
        reseller_b=reseller_b,
        admin=await tenant_key(client, reseller_a, "acme", "tenant-admin"),
        supervisor=await tenant_key(client, reseller_a, "acme", "supervisor"),
        agent=await tenant_key(client, reseller_a, "acme", "agent"),
        admin_b=await tenant_key(client, reseller_b, "globex", "tenant-admin"),
    )
