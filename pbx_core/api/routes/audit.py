"""/tenants/{slug}/audit: who changed what, newest first."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BeforeValidator
from sqlalchemy import select

from ...provisioning.models import AuditEntry
from ...provisioning.schemas import AuditOut
from ..auth import TenantReader
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


@router.get("", response_model=Page[AuditOut], summary="The tenant's audit log, newest first",
            responses=responses(403, 404))
async def list_audit(
    request: Request, response: Response, access: TenantReader, paging: Paging,
    entity: Annotated[str | None, Query(max_length=32, description="e.g. user, queue, api_key")] = None,
    entity_key: Annotated[str | None, Query(max_length=64, description="e.g. an extension")] = None,
    action: Literal["create", "update", "delete", "apply"] | None = None,
    since: Annotated[IsoDatetime | None, Query(description="entries at or after this (ISO 8601)")] = None,
) -> Page[AuditOut]:
    stmt = select(AuditEntry).where(AuditEntry.tenant_id == access.tenant.id)
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
