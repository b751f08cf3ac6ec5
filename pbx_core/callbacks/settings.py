"""Callback policies from the provisioning database (the shell): each queue's callback settings
and hours, as the core's :class:`~.core.policy.QueueInfo`."""

from __future__ import annotations

import dataclasses
import logging

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..provisioning.models import Tenant
from ..provisioning.schemas import QueueConfig, TenantConfig
from ..provisioning.snapshot import load_tenant_config
from .core.hours import from_schema
from .core.policy import (
    FILL_IDLE_S,
    FILL_SL_MARGIN_PCT,
    QueueInfo,
    QueuePolicy,
    fill_reserve_agents,
    from_queue,
)
from .core.scheduler import QueueKey

log = logging.getLogger(__name__)


def queue_policy(config: TenantConfig, queue: QueueConfig) -> QueuePolicy:
    """The scheduler's policy for one provisioned queue: offer, hours, deadlines, retries, short
    abandons from its settings; the fill reserve from its provisioned members."""
    hours = None
    if queue.hours is not None:
        spec = next((h for h in config.hours if h.name == queue.hours), None)
        if spec is None:
            # The API refuses this; a hand-edited row must not open the queue around the clock.
            raise ValueError(
                f"queue {config.slug}-{queue.name}: hours schedule {queue.hours!r} does not exist"
            )
        hours = from_schema(spec, config.timezone)
    base = from_queue(queue, hours, abandoned_callbacks=queue.callback_on_abandon)
    return dataclasses.replace(
        base,
        due_within_s=float(queue.callback_due_within_s),
        max_attempts=queue.callback_max_attempts,
        retry_base_s=float(queue.callback_retry_s),
        short_abandon_s=float(queue.short_abandon_s),
        fill_reserve_agents=fill_reserve_agents(_member_count(config, queue)),
        fill_sl_margin_pct=FILL_SL_MARGIN_PCT,
        fill_idle_s=FILL_IDLE_S,
    )


def queue_info(config: TenantConfig, queue: QueueConfig) -> QueueInfo:
    return QueueInfo(
        queue_policy(config, queue),
        config.timezone,
        service_level_s=float(queue.service_level_s),
        members=_member_count(config, queue),
    )


def _member_count(config: TenantConfig, queue: QueueConfig) -> int:
    return sum(1 for m in config.members if m.queue == queue.name)


async def load_queue_infos(sessions: async_sessionmaker[AsyncSession]) -> dict[QueueKey, QueueInfo]:
    """Every tenant's queues. A tenant whose stored configuration no longer validates is skipped
    (and logged): one broken tenant must not stop callbacks for the others."""
    out: dict[QueueKey, QueueInfo] = {}
    async with sessions() as session:
        slugs = (await session.scalars(select(Tenant.slug).order_by(Tenant.slug))).all()
        for slug in slugs:
            try:
                config = await load_tenant_config(session, slug)
                for queue in config.queues:
                    out[(slug, queue.name)] = queue_info(config, queue)
            except (LookupError, ValidationError, ValueError) as exc:
                log.error("callbacks: skipping tenant %s: its configuration is invalid: %s", slug, exc)
    return out
