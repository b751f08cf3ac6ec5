"""Throwaway SQL databases for integration tests: a temp SQLite file, or a uniquely named
PostgreSQL database (created through PBX_TEST_POSTGRES_URL's database and dropped afterwards, so
parallel runs never share one). PostgreSQL is skipped cleanly when that variable is unset."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import make_url, pool, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from pbx_core.config import database_url
from pbx_core.provisioning.models import Reseller, Tenant

POSTGRES_ENV = "PBX_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


@asynccontextmanager
async def throwaway_postgres(server_url: str) -> AsyncIterator[str]:
    """A fresh database on the server of ``server_url``; yields its URL (password included)."""
    admin_url = make_url(database_url(server_url))
    name = f"pbx_test_{uuid4().hex[:16]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@asynccontextmanager
async def throwaway_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of ``backend`` ("sqlite" or "postgresql"); skips if PostgreSQL is not
    configured."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'pbx-test.db'}"
        return
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    async with throwaway_postgres(server) as url:
        yield url


async def new_tenant(session: AsyncSession, slug: str = "acme", **fields: Any) -> Tenant:
    """A reseller and one tenant of it, flushed (ids assigned); ``fields`` override the defaults."""
    reseller = Reseller(name="Reseller")
    session.add(reseller)
    await session.flush()
    values: dict[str, Any] = {"name": "Acme BV", "timezone": "Europe/Amsterdam", "language": "nl",
                              "limits": {}} | fields
    tenant = Tenant(reseller_id=reseller.id, slug=slug, **values)
    session.add(tenant)
    await session.flush()
    return tenant
