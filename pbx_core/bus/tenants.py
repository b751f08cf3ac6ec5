"""When a tenant is deleted, everything that shows it forgets it, so its slug can be reused by
another reseller without a byte of the old tenant's data showing up.

``forget_tenant`` is the bus's part, run by whoever deletes the tenant (the REST API): it moves
the tenant's epoch on, then deletes its snapshot and stream. A bridge publisher in another
process notices the epoch (its next snapshot write finds the key gone and re-reads it) and asks
its engine to forget the tenant before it writes anything more of it; readers ignore a
snapshot from an older epoch meanwhile. In one process (``serve``, ``demo``) the API also tells
the bridge directly through :class:`LiveHooks` (and, after an apply, asks it to resync, so a
queue the apply deleted goes at once even where the AMI user cannot read ``Reload`` events).

Why an epoch and not a key per immutable tenant id: the bridge only knows Asterisk's names,
which carry the slug, never the provisioning database's id, and nothing on the live path should
need the database. The epoch gives the same guarantee (the old tenant's keys can never be read
as the new tenant's) with one small key per tenant.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .keys import TENANTS_KEY, epoch_key, snapshot_key, stream_key

log = logging.getLogger(__name__)

TenantHook = Callable[[str], Awaitable[None] | None]


async def forget_tenant(redis: Any, tenant: str) -> int:
    """Delete ``tenant``'s bus keys; return its new epoch. The epoch moves first: from then on a
    snapshot still in Redis (or written by a publisher that has not noticed yet) is stale to
    every reader. No transaction needed, so this works the same on a Redis Cluster."""
    pipe = redis.pipeline(transaction=False)
    pipe.incr(epoch_key(tenant))
    pipe.delete(snapshot_key(tenant))
    pipe.delete(stream_key(tenant))
    pipe.srem(TENANTS_KEY, tenant)
    epoch, *_ = await pipe.execute()
    return int(epoch)


def bus_forgetter(redis: Any) -> TenantHook:
    async def forget(tenant: str) -> None:
        epoch = await forget_tenant(redis, tenant)
        log.info("bus: tenant %s forgotten (epoch %d): its snapshot and stream are deleted", tenant, epoch)

    return forget


class TenantHooks:
    """Hooks run with a tenant's slug, registered by whoever holds the tenant's live state (the
    bus: ``bus_forgetter``; an in-process bridge). One failing hook does not stop the others: what
    the API did (a deletion, an apply) is already done."""

    def __init__(self) -> None:
        self._hooks: list[TenantHook] = []

    def add(self, hook: TenantHook) -> None:
        self._hooks.append(hook)

    async def __call__(self, tenant: str) -> None:
        for hook in self._hooks:
            try:
                result = hook(tenant)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("tenant hook %r failed for %s", hook, tenant)


@dataclass(frozen=True, slots=True)
class LiveHooks:
    """What the REST API tells the live side. ``forgotten``: a tenant was deleted (or created: a
    new tenant starts empty even if an earlier deletion could not clean up). ``applied``: a
    tenant's configuration was applied to Asterisk (queues may have gone). ``revoked``: an API
    key was revoked (called with its public id)."""

    forgotten: TenantHooks = field(default_factory=TenantHooks)
    applied: TenantHooks = field(default_factory=TenantHooks)
    # Run with an API key's public id after it was revoked: every web replica closes the open
    # wallboard sockets it authorised (pbx_core.web.revocation).
    revoked: TenantHooks = field(default_factory=TenantHooks)
