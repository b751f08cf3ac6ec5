"""Wallboard access from provisioning: API keys and short-lived signed tokens.

:class:`ApiKeyVerifier` implements :class:`pbx_core.web.auth.TokenVerifier` for the wallboard
websocket. It accepts

- a supervisor or tenant-admin API key (``pbx_<id>_<secret>``): its tenant, its queues;
- a token minted by ``POST /tenants/{slug}/wallboard-tokens``: ``wbt1.<payload>.<signature>``,
  HMAC-SHA256 over a compact JSON payload (tenant, queues, minting key, expiry). Stateless, but
  it dies with the key that minted it (revoked key or deleted tenant: refused).

The signing key is PBX_SECRET_KEY, or else a random value kept in ``server_secrets`` so every
web replica on the same database verifies the same tokens.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..provisioning.keys import check_secret, parse_key
from ..provisioning.models import ApiKey, ServerSecret, Tenant
from ..web.auth import Grant, Scope

TOKEN_PREFIX = "wbt1"
SECRET_NAME = "wallboard-token"
WALLBOARD_ROLES = frozenset({"supervisor", "tenant-admin"})
MAX_TOKEN_LENGTH = 4096


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    tenant: str
    queues: tuple[str, ...] | None  # full Asterisk names; None: all of the tenant's queues
    key: str  # public id of the API key that minted it
    expires: int  # unix seconds


class TokenSigner:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], secret_key: str | None) -> None:
        self._sessions = sessions
        # Derived, not used as is: the same PBX_SECRET_KEY may one day sign other things.
        self._key = (hmac.new(secret_key.encode(), b"pbx-core wallboard token", hashlib.sha256).digest()
                     if secret_key else None)
        self._lock = asyncio.Lock()

    async def key(self) -> bytes:
        if self._key is None:
            async with self._lock:
                if self._key is None:
                    self._key = (await self._stored_secret()).encode()
        return self._key

    async def _stored_secret(self) -> str:
        """The database's signing secret, made on first use. Two processes may race to make it:
        the loser's insert fails on the primary key and it reads the winner's."""
        async with self._sessions() as session:
            row = await session.get(ServerSecret, SECRET_NAME)
            if row is not None:
                return row.value
            session.add(ServerSecret(name=SECRET_NAME, value=secrets.token_urlsafe(48)))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
            row = await session.get(ServerSecret, SECRET_NAME, populate_existing=True)
            assert row is not None
            return row.value

    async def mint(self, claims: TokenClaims) -> str:
        payload = {"t": claims.tenant, "q": list(claims.queues) if claims.queues is not None else None,
                   "k": claims.key, "e": claims.expires}
        body = f"{TOKEN_PREFIX}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
        signature = hmac.new(await self.key(), body.encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(signature)}"

    async def claims(self, token: str, now: float | None = None) -> TokenClaims | None:
        """The claims of a well-signed, unexpired token, else None."""
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        prefix, _, rest = token.partition(".")
        payload_text, _, signature_text = rest.partition(".")
        if prefix != TOKEN_PREFIX or not payload_text or not signature_text:
            return None
        expected = hmac.new(await self.key(), f"{prefix}.{payload_text}".encode(), hashlib.sha256).digest()
        try:
            signature = _unb64(signature_text)
            payload = json.loads(_unb64(payload_text))
        except (ValueError, binascii.Error):
            return None
        if not hmac.compare_digest(expected, signature) or not isinstance(payload, dict):
            return None
        try:
            queues = payload["q"]
            claims = TokenClaims(str(payload["t"]), None if queues is None else tuple(str(q) for q in queues),
                                 str(payload["k"]), int(payload["e"]))
        except (KeyError, TypeError, ValueError):
            return None
        return claims if claims.expires > (time.time() if now is None else now) else None


def key_scope(slug: str, queues: Sequence[str] | None, key: str | None = None) -> Scope:
    """A key's short queue names -> the wallboard scope (full ``{slug}-{queue}`` names)."""
    return Scope(slug, frozenset(f"{slug}-{q}" for q in queues) if queues is not None else None, key=key)


def reaches(key: ApiKey | None, tenant: Tenant | None) -> bool:
    """The key exists, is not revoked, and still reaches the tenant (a reseller key: any tenant
    of its reseller; any other key: its own tenant)."""
    if key is None or tenant is None or key.revoked_at is not None:
        return False
    if key.role == "reseller":
        return key.reseller_id == tenant.reseller_id
    return key.tenant_id == tenant.id


GRANT_CHUNK = 500  # ids per IN (...) list: well inside every backend's parameter limit


class ApiKeyVerifier:
    """:class:`pbx_core.web.auth.TokenVerifier` over the provisioning database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], secret_key: str | None = None,
                 signer: TokenSigner | None = None) -> None:
        self._sessions = sessions
        self.signer = signer or TokenSigner(sessions, secret_key)

    async def verify(self, token: str) -> Scope | None:
        token = token.strip()
        parsed = parse_key(token)
        if parsed is not None:
            return await self._key_scope(*parsed)
        if token.startswith(TOKEN_PREFIX + "."):
            claims = await self.signer.claims(token)
            if claims is not None and await self._minter_valid(claims):
                return Scope(claims.tenant, frozenset(claims.queues) if claims.queues is not None else None,
                             key=claims.key, expires=float(claims.expires))
        return None

    async def valid_grants(self, grants: Collection[Grant]) -> set[Grant]:
        """:meth:`pbx_core.web.auth.GrantChecker.valid_grants`: two queries per chunk, whatever the
        number of sockets (the hub asks once per re-check for every distinct grant it holds)."""
        pairs = list(set(grants))
        valid: set[Grant] = set()
        for i in range(0, len(pairs), GRANT_CHUNK):
            chunk = pairs[i:i + GRANT_CHUNK]
            async with self._sessions() as session:
                keys = {k.public_id: k for k in await session.scalars(
                    select(ApiKey).where(ApiKey.public_id.in_({k for k, _ in chunk})))}
                tenants = {t.slug: t for t in await session.scalars(
                    select(Tenant).where(Tenant.slug.in_({t for _, t in chunk})))}
            valid.update(g for g in chunk if reaches(keys.get(g[0]), tenants.get(g[1])))
        return valid

    async def _key_scope(self, public_id: str, secret: str) -> Scope | None:
        async with self._sessions() as session:
            row = (await session.execute(
                select(ApiKey, Tenant.slug).join(Tenant, ApiKey.tenant_id == Tenant.id)
                .where(ApiKey.public_id == public_id)
            )).one_or_none()
        if row is None:
            return None
        key, slug = row
        if not check_secret(secret, key.secret_hash) or key.revoked_at is not None:
            return None
        if key.role not in WALLBOARD_ROLES:
            return None
        return key_scope(slug, key.queues, key.public_id)

    async def _minter_valid(self, claims: TokenClaims) -> bool:
        """The minting key still exists, is not revoked, and still reaches the tenant."""
        async with self._sessions() as session:
            key = await session.scalar(select(ApiKey).where(ApiKey.public_id == claims.key))
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == claims.tenant))
        return reaches(key, tenant)
