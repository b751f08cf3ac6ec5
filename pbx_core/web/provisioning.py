"""The provisioning side of a web process: database, REST API mount, API-key wallboard tokens and
the wallboard's "call back" button (which books into the callbacks table).

``serve``, ``web`` and ``demo`` all open it the same way, so the API a reseller integrates with
is the same object everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import BaseRoute

from ..bus.tenants import LiveHooks
from ..config import AmiUrl, Settings
from .app import CallbackRequester
from .auth import FirstMatch, StaticTokens, TokenVerifier
from .hub import LabelsFor

if TYPE_CHECKING:  # the API package (FastAPI) is imported only when a web process opens it
    from ..api.ratelimit import RateLimiter

API_PREFIX = "/api/v1"


@dataclass(frozen=True, slots=True)
class Provisioning:
    routes: list[BaseRoute]
    # API keys and minted wallboard tokens first, then PBX_WALLBOARD_TOKENS.
    verifier: TokenVerifier
    sessions: async_sessionmaker[AsyncSession]
    # For create_app(callback_requester=...): books the wallboard's "call back" requests.
    callback_requester: CallbackRequester | None = None
    # What the API tells the live side (tenant deleted, applied): the bus and a bridge add theirs.
    live: LiveHooks | None = None
    # For create_app(labels=...): the tenants' display names on the wallboard.
    labels: LabelsFor | None = None


def wallboard_labels(sessions: async_sessionmaker[AsyncSession]) -> LabelsFor:
    """A tenant's names as people know them: its name, its queues' display names (by full
    Asterisk name) and its pause reasons' labels (by code, the reason Asterisk reports)."""

    async def labels(tenant: str) -> dict[str, Any]:
        from sqlalchemy import select

        from ..provisioning.models import PauseReason, Queue, Tenant

        async with sessions() as session:
            row = (await session.execute(select(Tenant.id, Tenant.name).where(Tenant.slug == tenant))).first()
            if row is None:
                return {}
            queues = (
                await session.execute(select(Queue.name, Queue.settings).where(Queue.tenant_id == row.id))
            ).all()
            reasons = (await session.execute(
                select(PauseReason.code, PauseReason.label).where(PauseReason.tenant_id == row.id)
            )).all()  # fmt: skip
        names = {f"{tenant}-{q.name}": (q.settings or {}).get("display_name") for q in queues}
        return {
            "tenant": row.name,
            "queues": {queue: name for queue, name in names.items() if name},
            "pause_reasons": {r.code: r.label for r in reasons},
        }

    return labels


def callback_requester(
    sessions: async_sessionmaker[AsyncSession], limiter: RateLimiter | None = None
) -> CallbackRequester:
    """The wallboard's "call back" button over the callbacks store. A number that already has an
    open callback in the queue is not booked twice: the answer says so, with the open one's id.
    ``limiter``: bookings per tenant, the same one the REST API spends from."""

    async def request(tenant: str, queue: str, number: str) -> tuple[bool, str, str | None]:
        from ..callbacks.store import request_callback

        short = queue.removeprefix(f"{tenant}-")
        if limiter is not None:
            verdict = limiter.take(tenant)
            if not verdict.allowed:
                return False, (f"Callback not booked: at most {verdict.limit} callbacks a minute may be "
                               f"booked for this tenant; try again in {verdict.retry_after_s} s."), None
        try:
            cb, created = await request_callback(
                sessions, tenant=tenant, queue=short, number=number, source="wallboard"
            )
        except (ValueError, LookupError) as exc:  # InvalidNumber included: the REST API's rule
            return False, f"Callback not booked: {exc}", None
        if created:
            return True, f"Callback booked for {cb.number} (queue {short}).", cb.id
        return False, f"{cb.number} already has an open callback in queue {short} ({cb.status}).", cb.id

    return request


@contextlib.asynccontextmanager
async def provisioning(
    settings: Settings,
    *,
    database_url: str | None = None,
    ami_url: AmiUrl | None = None,
    config_dir: Path | None = None,
) -> AsyncIterator[Provisioning]:
    """Open the provisioning database (checked to be at the current schema) and build the REST
    API mounted at /api/v1. ``ami_url`` lets apply and queue-membership changes reach Asterisk."""
    from ..api import ApiContext, ApiKeyVerifier, api_mount
    from ..api.ratelimit import RateLimiter
    from ..provisioning.cli import ensure_schema
    from ..provisioning.db import open_sessions

    url = database_url or settings.database_url
    await ensure_schema(url)
    # One limiter for every way a client books a callback: the REST API and the wallboard button.
    bookings = RateLimiter(settings.callback_rate_limit) if settings.callback_rate_limit > 0 else None
    async with open_sessions(url) as sessions:
        live = LiveHooks()
        ctx = ApiContext(
            sessions=sessions,
            rate_limit_per_min=settings.api_rate_limit,
            tenant_rate_limit_per_min=settings.api_tenant_rate_limit,
            secret_key=settings.secret_key,
            asterisk_config_dir=config_dir or Path(settings.asterisk_config_dir),
            asterisk_sounds_dir=Path(settings.asterisk_sounds_dir) if settings.asterisk_sounds_dir else None,
            ami_url=ami_url,
            tenant_forgotten=live.forgotten,
            tenant_applied=live.applied,
            key_revoked=live.revoked,
            max_body_bytes=settings.api_max_body_bytes,
            callback_limiter=bookings,
        )
        keys = ApiKeyVerifier(sessions, settings.secret_key)
        verifier = FirstMatch(keys, StaticTokens.parse(settings.wallboard_tokens))
        requester = callback_requester(sessions, bookings)
        yield Provisioning([api_mount(ctx, API_PREFIX)], verifier, sessions, requester, live,
                           wallboard_labels(sessions))  # fmt: skip
