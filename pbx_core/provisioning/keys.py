"""API keys: ``pbx_{public_id}_{secret}``.

The public id is stored in clear (lookup, lists, audit); of the secret only its SHA-256 is kept.
Secrets are 256 random bits, so a fast hash is right: there is nothing to brute-force that a
slow password hash would protect. Comparison is constant-time all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import ApiKey, Reseller

KEY_PREFIX = "pbx"
PUBLIC_ID_BYTES = 8  # 16 hex characters: ApiKey.public_id is String(16)
# Letters and digits only, so a double-click selects the whole key; 43 of 62 symbols = 256 bits.
SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 43
_KEY = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{{2 * PUBLIC_ID_BYTES}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})")


def generate_key() -> tuple[str, str, str]:
    """A fresh key: (public_id, secret, full key as the client sends it)."""
    public_id = secrets.token_hex(PUBLIC_ID_BYTES)
    secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return public_id, secret, f"{KEY_PREFIX}_{public_id}_{secret}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_secret(secret: str, secret_hash: str) -> bool:
    """Whether ``secret`` matches the stored hash, in constant time."""
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def parse_key(full: str) -> tuple[str, str] | None:
    """(public_id, secret) of a well-formed key, else None (never raises on client input)."""
    match = _KEY.fullmatch(full.strip())
    return (match.group(1), match.group(2)) if match else None


async def get_or_create_reseller(session: AsyncSession, name: str) -> Reseller:
    reseller = await session.scalar(select(Reseller).where(Reseller.name == name))
    if reseller is None:
        reseller = Reseller(name=name)
        session.add(reseller)
        await session.flush()
    return reseller


async def create_reseller_key(session: AsyncSession, reseller_name: str, key_name: str) -> str:
    """Add a reseller key (making the reseller if it is new) and return the full key: the only
    time it exists in clear. The caller commits."""
    reseller = await get_or_create_reseller(session, reseller_name)
    public_id, secret, full = generate_key()
    session.add(
        ApiKey(
            public_id=public_id,
            secret_hash=hash_secret(secret),
            name=key_name,
            role="reseller",
            reseller_id=reseller.id,
        )
    )
    await session.flush()
    return full


async def list_reseller_keys(session: AsyncSession, reseller_name: str) -> list[ApiKey]:
    """Every key of the reseller (its own and its tenants'), oldest first. Raises LookupError
    for an unknown reseller."""
    reseller = await session.scalar(select(Reseller).where(Reseller.name == reseller_name))
    if reseller is None:
        raise LookupError(f"no reseller named {reseller_name!r}")
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.reseller_id == reseller.id).order_by(ApiKey.created_at, ApiKey.id)
    )
    return list(rows)


async def revoke_key(session: AsyncSession, public_id: str) -> tuple[ApiKey, bool]:
    """Revoke the key with this public id; (key, False) if it was revoked already. Raises
    LookupError for an unknown id. The caller commits."""
    key = await session.scalar(select(ApiKey).where(ApiKey.public_id == public_id))
    if key is None:
        raise LookupError(f"no API key with id {public_id!r}")
    if key.revoked_at is not None:
        return key, False
    key.revoked_at = datetime.now(UTC)
    await session.flush()
    return key, True
