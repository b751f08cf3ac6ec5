"""Alembic migrations against real SQLite and PostgreSQL: they build exactly the models' schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, select
from sqlalchemy.exc import IntegrityError

from pbx_core.provisioning import db
from pbx_core.provisioning.models import Base, Reseller, Tenant

from .databases import BACKENDS, throwaway_database


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database(request.param, tmp_path) as url:
        yield url


async def _sync(url: str, fn: Any) -> Any:
    engine = db.make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _drift(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_upgrade_from_empty_reaches_head(url: str) -> None:
    assert await db.current_revision(url) is None
    await db.upgrade(url)
    assert await db.current_revision(url) == db.head_revision() == "0005_history"
    assert await _sync(url, _tables) == set(Base.metadata.tables) | {"alembic_version"}


async def test_models_and_migrations_do_not_drift(url: str) -> None:
    await db.upgrade(url)
    drift = await _sync(url, _drift)
    assert drift == [], (
        "pbx_core/provisioning/models.py and the migrations differ; add a migration "
        f"(`pbx-core db revision -m ... --id ...` against an upgraded database): {drift}"
    )


async def test_constraint_names_follow_the_naming_convention(url: str) -> None:
    await db.upgrade(url)

    def names(conn: Connection) -> tuple[set[str | None], set[str | None], set[str]]:
        insp = inspect(conn)
        uniques = {u["name"] for u in insp.get_unique_constraints("users")}
        fks = {f["name"] for f in insp.get_foreign_keys("users")}
        indexes = {i["name"] for i in insp.get_indexes("audit_log")}
        return uniques, fks, {n for n in indexes if n}

    uniques, fks, indexes = await _sync(url, names)
    assert uniques == {"uq_users_tenant_id_extension"}
    assert fks == {"fk_users_tenant_id_tenants"}
    assert indexes == {"ix_audit_log_tenant_at"}


async def test_upgrade_twice_keeps_data(url: str) -> None:
    await db.upgrade(url)
    engine = db.make_engine(url)
    sessions = db.session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            session.add(Reseller(name="Acme Telecom"))
        await db.upgrade(url)  # nothing to do: no error, no data lost
        async with sessions() as session:
            assert await session.scalar(select(Reseller.name)) == "Acme Telecom"
    finally:
        await engine.dispose()
    assert await db.current_revision(url) == db.head_revision()


async def test_downgrade_to_base_then_upgrade_again(url: str) -> None:
    await db.upgrade(url)
    await db.downgrade(url, "base")
    assert await db.current_revision(url) is None
    assert await _sync(url, _tables) == {"alembic_version"}
    # The drift check is not vacuous: an empty schema differs from the models.
    assert await _sync(url, _drift) != []
    await db.upgrade(url)
    assert await db.current_revision(url) == db.head_revision()
    assert await _sync(url, _drift) == []


async def test_migrated_schema_enforces_foreign_keys(url: str) -> None:
    await db.upgrade(url)
    engine = db.make_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            # No such reseller: refused by the database, also on SQLite (foreign keys are on).
            orphan = Tenant(reseller_id=424242, slug="ghost", name="Ghost", timezone="UTC", language="en")
            orphan.limits = {}
            session.add(orphan)
            with pytest.raises(IntegrityError):
                await session.commit()
    finally:
        await engine.dispose()
