"""/tenants/{slug}/audit: who changed what, newest first - as far as the key may see it.

An entry shows the values it changed, so a key reads only entries about what it could read
otherwise: a key limited to some queues sees the entries of those queues, their members and
their callbacks (never another queue's caller, number or note), plus the tenant-wide
configuration any supervisor reads (tenant, users, menus, hours, DIDs, pause reasons); entries
about API keys and wallboard tokens are for tenant admins (who manage them) and resellers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BeforeValidator
from sqlalchemy import ColumnElement, and_, false, or_, select

from ...provisioning.models import AuditEntry, CallbackRow
from ...provisioning.schemas import AuditOut
from ..auth import Principal, TenantReader
from ..errors import responses
from ..pagination import Page, Paging, paginate
from ..util import utc

router = APIRouter(prefix="/tenants/{slug}/audit", tags=["audit"])


def _iso_only(value: object) -> object:
    # pydantic would also take a bare number as a unix time; the documented format is ISO 8601.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        raise ValueError("expected an ISO 8601 date-time like 2025-01-31T08:00:00Z")
    return value


_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]

# Entries any reader of the tenant's configuration may see, whatever queues its key is limited to.
TENANT_WIDE = ("tenant", "user", "device", "menu", "hours", "did", "pause_reason")
KEY_ENTITIES = ("api_key", "wallboard_token")  # tenant admins manage these


def visible_to(principal: Principal, tenant_id: int) -> ColumnElement[bool] | None:
    """The entries ``principal`` may read (None: all of the tenant's)."""
    if principal.queues is None:
        if principal.at_least("tenant-admin"):
            return None
        return AuditEntry.entity.not_in(KEY_ENTITIES)
    queues = list(principal.queues)
    own_callbacks = select(CallbackRow.id).where(CallbackRow.tenant_id == tenant_id,
                                                 CallbackRow.queue.in_(queues))
    return or_(
        AuditEntry.entity.in_(TENANT_WIDE),
        and_(AuditEntry.entity == "queue", AuditEntry.entity_key.in_(queues)),
        and_(AuditEntry.entity == "queue_member",
             or_(false(), *(AuditEntry.entity_key.startswith(f"{q}/", autoescape=True) for q in queues))),
        and_(AuditEntry.entity == "callback", AuditEntry.entity_key.in_(own_callbacks)),
    )


@router.get("", response_model=Page[AuditOut], summary="The tenant's audit log, newest first",
            description="Only the entries the key may see: a key limited to some queues sees those "
            "queues' entries (the queue, its members, its callbacks) and the tenant-wide configuration; "
            "entries about API keys and wallboard tokens need a tenant-admin or reseller key.",
            responses=responses(403, 404))
async def list_audit(
    request: Request, response: Response, access: TenantReader, paging: Paging,
    entity: Annotated[str | None, Query(max_length=32, description="e.g. user, queue, api_key")] = None,
    entity_key: Annotated[str | None, Query(max_length=64, description="e.g. an extension")] = None,
    action: Literal["create", "update", "delete", "apply"] | None = None,
    since: Annotated[IsoDatetime | None, Query(description="entries at or after this (ISO 8601)")] = None,
) -> Page[AuditOut]:
    stmt = select(AuditEntry).where(AuditEntry.tenant_id == access.tenant.id)
    scope = visible_to(access.principal, access.tenant.id)
    if scope is not None:
        stmt = stmt.where(scope)
    if entity is not None:
        stmt = stmt.where(AuditEntry.entity == entity)
    if entity_key is not None:
        stmt = stmt.where(AuditEntry.entity_key == entity_key)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if since is not None:
        # SQLite compares the stored UTC text: normalise the bound value to UTC as well.
        stmt = stmt.where(AuditEntry.at >= utc(since).astimezone(UTC))
    stmt = stmt.order_by(AuditEntry.id.desc())

    def out(e: AuditEntry) -> AuditOut:
        return AuditOut(id=e.id, at=utc(e.at), actor=e.actor, tenant=access.slug, action=e.action,  # type: ignore[arg-type]
                        entity=e.entity, entity_key=e.entity_key, changes=e.changes)

    return await paginate(access.session, stmt, paging, out, request, response)
