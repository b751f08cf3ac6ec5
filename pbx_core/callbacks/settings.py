"""Callback policies from the provisioning database: each queue's callback settings and hours."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..provisioning.models import Tenant
from ..provisioning.schemas import QueueConfig, TenantConfig
from ..provisioning.snapshot import load_tenant_config
from .hours import from_schema
from .policy import QueuePolicy, from_queue
from .scheduler import QueueKey

log = logging.getLogger(__name__)


# Pacing of fill callbacks (callers who hung up), as measured by `pbx-core bench callbacks`
# (10 agents, 110% load for 3 h then 85%, AHT 240 s, 5 seeds; mean over the seeds):
#   reserve 1: 78.9% fewer callers lost, live SL 9.1 points lower
#   reserve 2: 75.7% fewer lost, SL 6.9 points lower
#   reserve 3: 65.3% fewer lost, SL 4.6 points lower   <- both targets (>= 50%, <= 5 points)
#   reserve 4: 43.1% fewer lost, SL 2.4 points lower
# so about a third of the staffed agents stays free for live callers, capped at 3 (a larger
# reserve only leaves fill work undone). The SL gate and the idle way in are the bench's too: fill
# while the rolling SL >= target - 15 points, or an agent has idled 60 s.
FILL_RESERVE_SHARE = 1 / 3
FILL_RESERVE_MAX = 3
FILL_SL_MARGIN_PCT = -15.0
FILL_IDLE_S = 60.0


def fill_reserve_agents(staffed: int) -> int:
    """Agents kept free for live callers when dialling fill callbacks: a third, 1 to 3. A queue
    of one agent keeps none: with a reserve of 1 its fill work would never go out (the other
    gates, rolling SL and idle time, still hold it back while live callers need the agent)."""
    if staffed <= 1:
        return 0
    return max(1, min(FILL_RESERVE_MAX, round(staffed * FILL_RESERVE_SHARE)))


@dataclass(frozen=True, slots=True)
class QueueInfo:
    policy: QueuePolicy
    timezone: str  # the tenant's: what "today" means for its callback counts
    # The queue's SL threshold T: the rolling SL that paces fill work counts answers within T.
    # (QueuePolicy has no field for it; the worker's pacing reads it from here.)
    service_level_s: float = 30.0
    members: int = 0  # provisioned members: the fill reserve until the live staffing is known


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
