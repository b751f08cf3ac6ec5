"""What the REST API talks to, handed in by whoever mounts it (serve, demo, tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..config import AmiUrl
from .ratelimit import RateLimiter


@dataclass(frozen=True)
class ApiContext:
    sessions: async_sessionmaker[AsyncSession]
    # Requests per minute per API key (token bucket, per process); 0 = unlimited.
    rate_limit_per_min: int = 600
    # Requests per minute of all of one tenant's keys together; 0 = unlimited. Minting more keys
    # must not multiply what a tenant may send.
    tenant_rate_limit_per_min: int = 1200
    # Signs wallboard tokens; None: a random key kept in the server_secrets table.
    secret_key: str | None = None
    asterisk_config_dir: Path = Path("asterisk-config/pbx-core")
    # Asterisk's sounds directory: an apply speaks the tenant's prompts into it. None: not spoken.
    asterisk_sounds_dir: Path | None = None
    # None: config files are written, Asterisk is not reloaded (the response says so).
    ami_url: AmiUrl | None = None
    # Failed authentications (401) allowed per minute per client address before 429: key guessing
    # is hopeless against 256-bit keys, but each guess still costs a database lookup.
    auth_failures_per_min: int = 30
    # Run after a tenant is deleted or created: the live side (bus keys, an in-process bridge)
    # forgets the slug, so a reused slug never shows the previous tenant (bus.tenants).
    tenant_forgotten: Callable[[str], Awaitable[None]] | None = None
    # Run after a tenant was applied to Asterisk: an in-process bridge resyncs its queues.
    tenant_applied: Callable[[str], Awaitable[None]] | None = None
    # Run with a key's public id after it was revoked: open wallboard sockets of the key (and of
    # tokens it minted) are closed on every web replica (web.revocation).
    key_revoked: Callable[[str], Awaitable[None]] | None = None
    # Request bodies larger than this are refused (413) without being read.
    max_body_bytes: int = 256 * 1024
    # Callback bookings per tenant, shared with the wallboard's "call back" button (the web app
    # passes the same limiter to both); None: unlimited.
    callback_limiter: RateLimiter | None = None
