"""Who is calling: the bearer API key -> :class:`Principal`, and what it may reach.

Another reseller's or tenant's object is *not found* (404), never *forbidden*: a key learns
nothing about what lies outside its reach. Inside its own scope a role that is too weak gets
403.

Authentication happens in the request guard (:mod:`.guard`), from the headers alone, before any
of the body is read; the ``CurrentPrincipal`` dependency hands its result to the routes.
Failed authentications are counted per client address (429 once over the budget), but only
failures are refused: a valid key is always served, subject to its own and its tenant's rate
limits, whatever else arrives from the same address (a NAT, a proxy).
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

from ..domain.tenants import SLUG_RE
from ..provisioning.models import ApiKey, Tenant
from ..provisioning.schemas import KeyRole
from .context import ApiContext
from .errors import ApiError, forbidden, not_found
from .ratelimit import STATE_KEY, RateLimiter, take_all

ROLE_RANK: dict[str, int] = {"agent": 0, "supervisor": 1, "tenant-admin": 2, "reseller": 3}
LAST_USED_EVERY_S = 60.0  # last_used_at is a hint, not a log: at most one write a minute per key
PRINCIPAL_KEY = "principal"  # in request.state: set by the request guard

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
    """The request's one database session. Nothing else in a request may hold a pooled
    connection while this one is open (the guard's lookup is closed before it opens)."""
    async with api_context(request).sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


def client_address(request: Request) -> str:
    """The address failed logins are counted against: the peer, or the client that a proxy
    listed in PBX_TRUSTED_PROXIES named in X-Forwarded-For (uvicorn rewrites the peer for those
    proxies only; from anyone else the header is ignored)."""
    return request.client.host if request.client else "unknown"


def _unauthorized(request: Request, message: str) -> ApiError:
    """A 401, counted against the client's address; a 429 once that address is over its
    budget. Only a failed authentication ever reaches this."""
    limiter: RateLimiter = request.app.state.auth_failures
    verdict = limiter.take(client_address(request))
    if not verdict.allowed:
        return too_many(verdict.retry_after_s, "too many failed authentications from this address")
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def too_many(retry_after_s: int, message: str) -> ApiError:
    return ApiError(429, f"{message}; retry in {retry_after_s} s",
                    headers={"Retry-After": str(retry_after_s)})


def _bearer_credentials(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


async def authenticate(request: Request) -> Principal:
    """The principal of the request's API key, from its headers alone. Raises ApiError: 401
    (429 when the address is over its failure budget), or 429 when the key or its tenant is
    over its rate limit.

    Uses a short session of its own, closed before the route opens the request's session: a
    request never holds two pooled connections at once."""
    from ..provisioning.keys import hash_secret, parse_key

    credentials = _bearer_credentials(request)
    if credentials is None:
        raise _unauthorized(request, "missing API key: send Authorization: Bearer pbx_<id>_<secret>")
    parsed = parse_key(credentials)
    if parsed is None:
        raise _unauthorized(request, "malformed API key: expected pbx_<id>_<secret>")
    public_id, secret = parsed
    async with api_context(request).sessions() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.public_id == public_id))
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
        _spend_rate_limits(request, principal)
        await _touch(request, session, key.id, public_id)
    return principal


def _spend_rate_limits(request: Request, principal: Principal) -> None:
    """One token from the key's bucket and, for a tenant's key, one from its tenant's bucket
    (all the tenant's keys together: minting more keys does not buy more requests). A request
    refused by either spends from neither."""
    state = request.app.state
    buckets: list[tuple[RateLimiter, str]] = []
    if state.rate_limiter is not None:
        buckets.append((state.rate_limiter, principal.public_id))
    tenant_bucket = None
    if state.tenant_rate_limiter is not None and principal.tenant_id is not None:
        tenant_bucket = (state.tenant_rate_limiter, f"tenant:{principal.tenant_id}")
        buckets.append(tenant_bucket)
    if not buckets:
        return
    verdict, refused = take_all(buckets)
    setattr(request.state, STATE_KEY, verdict)
    if refused is None:
        return
    key_allowed = state.rate_limiter is None or state.rate_limiter.peek(principal.public_id).allowed
    whose = "this tenant's keys together" if tenant_bucket is not None and key_allowed else "this API key"
    raise too_many(refused.retry_after_s,
                   f"rate limit of {refused.limit} requests per minute for {whose} reached")


async def get_principal(
    request: Request,
    # Declared for the OpenAPI document's security scheme; the request guard has checked it.
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    principal = getattr(request.state, PRINCIPAL_KEY, None)
    if isinstance(principal, Principal):
        return principal
    return await authenticate(request)  # an app mounted without the guard is still authenticated


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


async def find_tenant(session: AsyncSession, slug: str) -> Tenant | None:
    """The tenant named ``slug``, wherever it belongs; None also for text that cannot be a slug
    (never sent to the database: PostgreSQL would refuse a NUL with an error)."""
    if not SLUG_RE.fullmatch(slug):
        return None
    return await session.scalar(select(Tenant).where(Tenant.slug == slug))


async def tenant_for(session: AsyncSession, principal: Principal, slug: str) -> Tenant:
    """The tenant ``slug`` if the key may see it, else 404 (also when it exists elsewhere)."""
    tenant = await find_tenant(session, slug)
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
