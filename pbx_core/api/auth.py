"""Who is calling: the bearer API key -> :class:`Principal`, and what it may reach.

Another reseller's or tenant's object is *not found* (404), never *forbidden*: a key learns
nothing about what lies outside its reach. Inside its own scope a role that is too weak gets
403. Failed authentications are throttled per client address (429 once over the budget).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..provisioning.models import ApiKey, Tenant
from ..provisioning.schemas import KeyRole
from .context import ApiContext
from .errors import ApiError, forbidden, not_found
from .ratelimit import STATE_KEY, RateLimiter

ROLE_RANK: dict[str, int] = {"agent": 0, "supervisor": 1, "tenant-admin": 2, "reseller": 3}
LAST_USED_EVERY_S = 60.0  # last_used_at is a hint, not a log: at most one write a minute per key

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer pbx_<id>_<secret>`")


@dataclass(frozen=True)
class Principal:
    role: KeyRole
    key_id: int
    public_id: str
    key_name: str
    reseller_id: int
    tenant_id: int | None
    queues: tuple[str, ...] | None  # short queue names a supervisor/agent key is limited to

    @property
    def actor(self) -> str:
        return f"{self.key_name} ({self.public_id})"

    def at_least(self, role: KeyRole) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def sees_queue(self, name: str) -> bool:
        return self.queues is None or name in self.queues


@dataclass(frozen=True)
class Access:
    """A request on one tenant: who asks, the tenant row, and the request's session."""

    principal: Principal
    tenant: Tenant
    session: AsyncSession

    @property
    def slug(self) -> str:
        return self.tenant.slug


def api_context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.ctx)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with api_context(request).sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _unauthorized(request: Request, message: str) -> ApiError:
    limiter: RateLimiter = request.app.state.auth_failures
    verdict = limiter.take(_client_address(request))
    if not verdict.allowed:
        return _too_many(verdict.retry_after_s, "too many failed authentications from this address")
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def _too_many(retry_after_s: int, message: str) -> ApiError:
    return ApiError(429, f"{message}; retry in {retry_after_s} s",
                    headers={"Retry-After": str(retry_after_s)})


async def get_principal(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    from ..provisioning.keys import hash_secret, parse_key

    failures: RateLimiter = request.app.state.auth_failures
    blocked = failures.peek(_client_address(request))
    if not blocked.allowed:  # over the failure budget: refuse before spending a lookup
        raise _too_many(blocked.retry_after_s, "too many failed authentications from this address")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized(request, "missing API key: send Authorization: Bearer pbx_<id>_<secret>")
    parsed = parse_key(credentials.credentials.strip())
    if parsed is None:
        raise _unauthorized(request, "malformed API key: expected pbx_<id>_<secret>")
    public_id, secret = parsed
    key = (await session.execute(select(ApiKey).where(ApiKey.public_id == public_id))).scalar_one_or_none()
    # Hash even when the id is unknown, so timing does not tell which ids exist.
    presented = hash_secret(secret)
    if key is None or not hmac.compare_digest(presented, key.secret_hash):
        raise _unauthorized(request, "unknown API key")
    if key.revoked_at is not None:
        raise _unauthorized(request, "this API key was revoked")
    principal = Principal(
        role=cast(KeyRole, key.role), key_id=key.id, public_id=key.public_id, key_name=key.name,
        reseller_id=key.reseller_id, tenant_id=key.tenant_id,
        queues=tuple(key.queues) if key.queues is not None else None,
    )
    ctx = api_context(request)
    if ctx.rate_limit_per_min > 0:
        limiter: RateLimiter = request.app.state.rate_limiter
        verdict = limiter.take(public_id)
        setattr(request.state, STATE_KEY, verdict)
        if not verdict.allowed:
            raise _too_many(verdict.retry_after_s,
                            f"rate limit of {verdict.limit} requests per minute reached")
    await _touch(request, session, key.id, public_id)
    return principal


async def _touch(request: Request, session: AsyncSession, key_id: int, public_id: str) -> None:
    touched: dict[str, float] = request.app.state.key_touched
    now = time.monotonic()
    if now - touched.get(public_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
        return
    touched[public_id] = now
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=datetime.now(UTC)))
    await session.commit()


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(principal: Principal, minimum: KeyRole, action: str) -> None:
    """403 unless the key's role is at least ``minimum`` (call after the 404 checks)."""
    if not principal.at_least(minimum):
        needed = [r for r, rank in ROLE_RANK.items() if rank >= ROLE_RANK[minimum]]
        raise forbidden(f"a {principal.role} key may not {action}; this needs a {' or '.join(needed)} key")


async def tenant_for(session: AsyncSession, principal: Principal, slug: str) -> Tenant:
    """The tenant ``slug`` if the key may see it, else 404 (also when it exists elsewhere)."""
    tenant = (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one_or_none()
    if tenant is None:
        raise not_found(f"tenant {slug!r}")
    if principal.role == "reseller":
        if tenant.reseller_id != principal.reseller_id:
            raise not_found(f"tenant {slug!r}")
    elif tenant.id != principal.tenant_id:
        raise not_found(f"tenant {slug!r}")
    return tenant


SlugPath = Annotated[str, Path(description="Tenant slug", examples=["acme"], max_length=16)]


def tenant_access(minimum: KeyRole, action: str) -> Callable[..., Awaitable[Access]]:
    """A dependency: the ``{slug}`` tenant, visible to the key (404) and role >= minimum (403)."""

    async def dependency(slug: SlugPath, principal: CurrentPrincipal, session: Session) -> Access:
        tenant = await tenant_for(session, principal, slug)
        require(principal, minimum, action)
        return Access(principal, tenant, session)

    return dependency


# The common cases, as annotated parameter types for route functions.
TenantReader = Annotated[Access, Depends(tenant_access("supervisor", "read this tenant's configuration"))]
TenantWriter = Annotated[Access, Depends(tenant_access("tenant-admin", "change this tenant's configuration"))]
AnyTenantMember = Annotated[Access, Depends(tenant_access("agent", "read this"))]
