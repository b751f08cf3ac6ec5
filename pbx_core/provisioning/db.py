"""Engine and sessions for the provisioning database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, make_url, pool, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ..config import database_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant: serialises concurrent `pbx-core db upgrade` runs (e.g. two replicas starting).
_PG_MIGRATION_LOCK = 0x70627863  # "pbxc"
_PG_CONNECT_TIMEOUT_S = 10


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for ``url`` (plain ``postgresql://``/``sqlite:///`` URLs are accepted).

    SQLite gets foreign keys switched on (off by default there, and our cascades and
    restrictions rely on them) and WAL, so the web app reads while a write is in flight."""
    url = database_url(url)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextlib.asynccontextmanager
async def open_sessions(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on ``url`` for the block's duration; the engine (its pool) is disposed after."""
    engine = make_engine(url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def safe_url(url: str) -> str:
    """The URL as it may be printed or logged: the password masked."""
    return make_url(database_url(url)).render_as_string(hide_password=True)


def alembic_config() -> Config:
    """Alembic's configuration built in code: the scripts ship inside the package, so no
    alembic.ini is needed where pbx-core is installed."""
    cfg = Config()
    # set_main_option interpolates %(...)s, hence the escaping.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(rev)s")  # versions/0001_initial.py
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001_initial
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _migration_engine(url: str) -> AsyncEngine:
    url = database_url(url)
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql+asyncpg://"):
        connect_args["timeout"] = _PG_CONNECT_TIMEOUT_S  # asyncpg waits 60 s by default
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _no_fk_cascades(dbapi_connection: Any, _record: Any) -> None:
            # Batch migrations drop and recreate tables; with foreign keys ON that DROP would
            # cascade-delete the child rows. Integrity is checked after the migration instead.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


def _run_alembic(connection: Connection, action: str, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    getattr(command, action)(cfg, revision)
    if connection.dialect.name == "sqlite":
        broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
        if broken:
            raise RuntimeError(f"migration left {len(broken)} rows with dangling foreign keys: {broken[:5]}")


async def _migrate(url: str, action: str, revision: str) -> None:
    engine = _migration_engine(url)
    try:
        # One transaction: on PostgreSQL a failed migration leaves nothing half-done.
        async with engine.begin() as conn:
            await conn.run_sync(_run_alembic, action, revision)
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema of the database at ``url`` to ``revision`` (alembic upgrade). Running it
    on an up-to-date database does nothing."""
    await _migrate(url, "upgrade", revision)


async def downgrade(url: str, revision: str = "base") -> None:
    """Undo migrations down to ``revision`` (``base``: drop every table we made)."""
    await _migrate(url, "downgrade", revision)


def _missing_sqlite_file(url: str) -> bool:
    parsed = make_url(database_url(url))
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return False
    return not Path(name).exists()


async def current_revision(url: str) -> str | None:
    """The revision the database is at; None for a database without our schema."""
    if _missing_sqlite_file(url):  # connecting would leave an empty file behind a typo
        return None
    engine = _migration_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()


async def autogenerate_revision(url: str, message: str, rev_id: str) -> str:
    """Development: write a migration script for the difference between the models and the
    database at ``url`` (which should be at head). Returns the script's path."""
    engine = _migration_engine(url)
    paths: list[str] = []

    def generate(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        scripts = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
        for script in scripts if isinstance(scripts, list) else [scripts]:
            if script is not None:
                paths.append(script.path)

    try:
        async with engine.connect() as conn:
            await conn.run_sync(generate)
    finally:
        await engine.dispose()
    return ", ".join(paths)
