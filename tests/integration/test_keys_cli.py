"""``pbx-core keys create|list|revoke`` as a subprocess against a temp SQLite database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from pbx_core.provisioning import db
from pbx_core.provisioning.keys import check_secret, generate_key, hash_secret, parse_key
from pbx_core.provisioning.models import ApiKey, Reseller

from .cli_runner import pbx_core

KEY = re.compile(r"pbx_[0-9a-f]{16}_[A-Za-z0-9]{43}")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}"


async def _key_row(url: str, public_id: str) -> tuple[ApiKey, str]:
    engine = db.make_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            row = (
                await session.execute(
                    select(ApiKey, Reseller.name).join(Reseller).where(ApiKey.public_id == public_id)
                )
            ).one()
            return row[0], row[1]
    finally:
        await engine.dispose()


def test_create_before_upgrade_says_what_to_do(url: str, tmp_path: Path) -> None:
    result = pbx_core("keys", "create", "--reseller", "Acme Telecom", database_url=url, cwd=tmp_path)
    assert result.returncode == 1
    assert "run pbx-core db upgrade first" in result.stderr
    assert "Traceback" not in result.stderr


async def test_create_list_revoke(url: str, tmp_path: Path) -> None:
    assert pbx_core("db", "upgrade", database_url=url, cwd=tmp_path).returncode == 0

    created = pbx_core("keys", "create", "--reseller", "Acme Telecom", "--name", "ops",
                       database_url=url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    keys = set(KEY.findall(created.stdout))
    assert len(keys) == 1, created.stdout
    key = keys.pop()
    assert "shown only this once" in created.stdout
    assert f'curl -H "Authorization: Bearer {key}" http://127.0.0.1:8000/api/v1/tenants' in created.stdout

    parsed = parse_key(key)
    assert parsed is not None
    public_id, secret = parsed
    row, reseller = await _key_row(url, public_id)
    assert row.secret_hash == hash_secret(secret) and check_secret(secret, row.secret_hash)
    assert (row.role, row.name, reseller, row.tenant_id, row.revoked_at) == (
        "reseller", "ops", "Acme Telecom", None, None
    )

    second = pbx_core("keys", "create", "--reseller", "Acme Telecom", database_url=url, cwd=tmp_path)
    other_id, other_secret = parse_key(KEY.findall(second.stdout)[0]) or ("", "")
    assert other_id != public_id

    listed = pbx_core("keys", "list", "--reseller", "Acme Telecom", database_url=url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ROLE", "TENANT", "CREATED", "REVOKED"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {public_id, other_id}
    assert rows[public_id][1:4] == ["ops", "reseller", "-"] and rows[public_id][-1] == "-"
    assert rows[other_id][1] == "cli"
    assert secret not in listed.stdout and other_secret not in listed.stdout

    revoked = pbx_core("keys", "revoke", public_id, database_url=url, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"key {public_id} (ops) revoked"
    row, _ = await _key_row(url, public_id)
    assert row.revoked_at is not None
    still, _ = await _key_row(url, other_id)
    assert still.revoked_at is None

    listed = pbx_core("keys", "list", "--reseller", "Acme Telecom", database_url=url, cwd=tmp_path)
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows[public_id][-1] != "-" and rows[other_id][-1] == "-"

    again = pbx_core("keys", "revoke", public_id, database_url=url, cwd=tmp_path)
    assert again.returncode == 0 and "already revoked" in again.stdout
    unknown = pbx_core("keys", "revoke", "0123456789abcdef", database_url=url, cwd=tmp_path)
    assert unknown.returncode == 1 and "no API key with id '0123456789abcdef'" in unknown.stderr


def test_list_unknown_reseller_and_bad_name(url: str, tmp_path: Path) -> None:
    assert pbx_core("db", "upgrade", database_url=url, cwd=tmp_path).returncode == 0
    unknown = pbx_core("keys", "list", "--reseller", "Nobody", database_url=url, cwd=tmp_path)
    assert unknown.returncode == 1 and "no reseller named 'Nobody'" in unknown.stderr
    bad = pbx_core("keys", "create", "--reseller", "Evil\nCorp", database_url=url, cwd=tmp_path)
    assert bad.returncode != 0 and "--reseller" in bad.stderr and "control characters" in bad.stderr


def test_key_format_and_parsing() -> None:
    public_id, secret, full = generate_key()
    assert full == f"pbx_{public_id}_{secret}"
    assert parse_key(full) == (public_id, secret)
    assert generate_key()[2] != full
    malformed_keys = (
        "", "pbx_", f"pbx_{public_id}", f"xyz_{public_id}_{secret}", f"pbx_{public_id}_{secret}!",
        f"pbx_{'G' * 16}_{secret}", f"pbx_{public_id}_{secret[:-1]}", f"pbx_{public_id}_{secret}\nx",
    )
    for malformed in malformed_keys:
        assert parse_key(malformed) is None, malformed
    assert check_secret(secret, hash_secret(secret))
    assert not check_secret(secret[:-1] + ("a" if secret[-1] != "a" else "b"), hash_secret(secret))
