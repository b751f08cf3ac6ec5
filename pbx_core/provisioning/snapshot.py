"""One tenant's rows -> :class:`~.schemas.TenantConfig`, the renderer's input.

Every collection is sorted by its natural key here, in Python, so the result (and so the
rendered bytes) does not depend on the database's collation or row order.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from .models import BusinessHours, Did, Menu, Queue, QueueMember, Tenant, User
from .schemas import (
    DeviceConfig,
    DidCreate,
    HoursCreate,
    MemberConfig,
    MenuCreate,
    QueueConfig,
    TenantConfig,
    UserConfig,
)


async def load_tenant_config(session: AsyncSession, slug: str) -> TenantConfig:
    """The whole configuration of tenant ``slug``. Raises LookupError if there is no such tenant;
    a stored document that no longer validates raises pydantic's ValidationError."""
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise LookupError(f"no tenant {slug!r}")

    users = (
        await session.scalars(
            select(User).where(User.tenant_id == tenant.id).options(selectinload(User.devices))
        )
    ).all()
    queues = (await session.scalars(select(Queue).where(Queue.tenant_id == tenant.id))).all()
    members = (
        await session.execute(
            select(Queue.name, User.extension, QueueMember.penalty)
            .join(Queue, QueueMember.queue_id == Queue.id)
            .join(User, QueueMember.user_id == User.id)
            .where(Queue.tenant_id == tenant.id)
        )
    ).all()
    menus = (await session.scalars(select(Menu).where(Menu.tenant_id == tenant.id))).all()
    hours = (await session.scalars(select(BusinessHours).where(BusinessHours.tenant_id == tenant.id))).all()
    dids = (await session.scalars(select(Did).where(Did.tenant_id == tenant.id))).all()

    # settings hold the *In fields as model_dump(mode="json") wrote them; the row's name wins.
    return TenantConfig.model_validate(
        {
            "slug": tenant.slug,
            "name": tenant.name,
            "timezone": tenant.timezone,
            "language": tenant.language,
            "operator": tenant.operator,
            "outbound_caller_id": tenant.outbound_caller_id,
            "users": tuple(
                UserConfig(
                    extension=u.extension,
                    name=u.name,
                    mobile=u.mobile,
                    devices=tuple(
                        DeviceConfig.model_validate({"name": d.name, "kind": d.kind, "secret": d.secret})
                        for d in sorted(u.devices, key=lambda d: d.name)
                    ),
                )
                for u in sorted(users, key=lambda u: u.extension)
            ),
            "queues": tuple(
                QueueConfig.model_validate({**q.settings, "name": q.name})
                for q in sorted(queues, key=lambda q: q.name)
            ),
            "members": tuple(
                MemberConfig(queue=queue, extension=extension, penalty=penalty)
                for queue, extension, penalty in sorted(members, key=lambda m: (m[0], m[1]))
            ),
            "menus": tuple(
                MenuCreate.model_validate({**m.settings, "name": m.name})
                for m in sorted(menus, key=lambda m: m.name)
            ),
            "hours": tuple(
                HoursCreate.model_validate({**h.settings, "name": h.name})
                for h in sorted(hours, key=lambda h: h.name)
            ),
            "dids": tuple(
                DidCreate.model_validate(
                    {"number": d.number, "destination": d.destination, "description": d.description}
                )
                for d in sorted(dids, key=lambda d: d.number)
            ),
        }
    )
