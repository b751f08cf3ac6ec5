"""``pbx-core db upgrade|current|check`` as a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from pbx_core.provisioning import db

from .cli_runner import pbx_core
from .databases import BACKENDS, throwaway_database


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database(request.param, tmp_path) as url:
        yield url


async def test_upgrade_current_check(url: str, tmp_path: Path) -> None:
    shown = db.safe_url(url)

    before = pbx_core("db", "check", database_url=url, cwd=tmp_path)
    assert before.returncode == 1
    assert "run pbx-core db upgrade" in before.stderr
    assert "Traceback" not in before.stderr

    current = pbx_core("db", "current", database_url=url, cwd=tmp_path)
    assert current.returncode == 0, current.stderr
    assert "no schema" in current.stdout

    first = pbx_core("db", "upgrade", database_url=url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"database {shown}: upgraded to 0005_history"
    assert await db.current_revision(url) == "0005_history"

    again = pbx_core("db", "upgrade", database_url=url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already at 0005_history" in again.stdout

    current = pbx_core("db", "current", database_url=url, cwd=tmp_path)
    assert current.stdout.strip() == f"database {shown}: at 0005_history (head)"
    check = pbx_core("db", "check", database_url=url, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "up to date" in check.stdout


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    url = "postgresql://pbx:hunter2secret@127.0.0.1:1/pbx"
    result = pbx_core("db", "upgrade", database_url=url, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pbx-core: cannot use database postgresql+asyncpg://pbx:***@127.0.0.1:1/pbx")
    assert "hunter2secret" not in result.stderr + result.stdout


def test_check_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    result = pbx_core("db", "check", database_url=f"sqlite:///{path}", cwd=tmp_path)
    assert result.returncode == 1
    assert "run pbx-core db upgrade" in result.stderr
    assert not path.exists()


def test_safe_url_masks_the_password() -> None:
    shown = db.safe_url("postgresql://pbx:s3cr%40t@db.example:5432/pbx")
    assert "s3cr" not in shown
    assert make_url(shown).username == "pbx"
