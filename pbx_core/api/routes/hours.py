"""/tenants/{slug}/hours: business-hours schedules (context ``{slug}-hours-{name}``).

A schedule routes to its open or closed destination by the tenant's timezone; menus name one in
``hours`` to close their person-bound options. Both destinations must exist in the tenant, and a
schedule others use cannot be deleted (409 naming them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ...provisioning.models import BusinessHours
from ...provisioning.schemas import NAME_PATTERN, HoursCreate, HoursIn, HoursOut
from .. import audit
from ..auth import Access, TenantReader, TenantWriter
from ..candidate import check_candidate, check_removal, replaced
from ..errors import conflict, not_found, responses
from ..etag import check_preconditions, set_etag
from ..pagination import Page, Paging, paginate
from ..util import created, utc

router = APIRouter(prefix="/tenants/{slug}/hours", tags=["hours"])

NamePath = Annotated[str, Path(description="The schedule's short name", examples=["office"],
                               pattern=NAME_PATTERN)]


def hours_in(h: BusinessHours) -> HoursIn:
    return HoursIn.model_validate(h.settings)


def hours_out(h: BusinessHours) -> HoursOut:
    return HoursOut.model_validate({
        **h.settings, "name": h.name, "version": h.version,
        "created_at": utc(h.created_at), "updated_at": utc(h.updated_at),
    })


async def _load(session: AsyncSession, tenant_id: int, name: str) -> BusinessHours | None:
    return await session.scalar(
        select(BusinessHours).where(BusinessHours.tenant_id == tenant_id, BusinessHours.name == name))


async def _validate(access: Access, name: str, body: HoursIn) -> None:
    candidate = HoursCreate(name=name, **body.model_dump())
    await check_candidate(access.session, access.tenant, lambda c: replaced(c, "hours", name, candidate),
                          target=("hours", name))


async def _create(access: Access, name: str, body: HoursIn) -> BusinessHours:
    await _validate(access, name, body)
    row = BusinessHours(tenant_id=access.tenant.id, name=name, settings=body.model_dump(mode="json"))
    access.session.add(row)
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="create",
                 entity="hours", key=name, after=body.model_dump(mode="json"))
    await access.session.commit()
    return row


@router.get("", response_model=Page[HoursOut], summary="List business-hours schedules",
            responses=responses(403, 404))
async def list_hours(
    request: Request, response: Response, access: TenantReader, paging: Paging,
    q: Annotated[str | None, Query(max_length=32, description="substring of the name")] = None,
) -> Page[HoursOut]:
    stmt = (select(BusinessHours).where(BusinessHours.tenant_id == access.tenant.id)
            .order_by(BusinessHours.name))
    if q:
        stmt = stmt.where(BusinessHours.name.like(f"%{q.lower()}%"))
    return await paginate(access.session, stmt, paging, hours_out, request, response)


@router.post("", response_model=HoursOut, status_code=201, summary="Create a business-hours schedule",
             responses=responses(403, 404, 409))
async def create_hours(request: Request, response: Response, body: HoursCreate,
                       access: TenantWriter) -> HoursOut:
    if await _load(access.session, access.tenant.id, body.name) is not None:
        raise conflict(f"schedule {body.name!r} already exists in tenant {access.slug!r}",
                       fields=[("body.name", "already exists")])
    row = await _create(access, body.name, HoursIn.model_validate(body.model_dump(exclude={"name"})))
    created(request, response, f"/tenants/{access.slug}/hours/{row.name}", row.version)
    return hours_out(row)


@router.get("/{name}", response_model=HoursOut, summary="Get a business-hours schedule",
            responses=responses(403, 404))
async def get_hours(response: Response, name: NamePath, access: TenantReader) -> HoursOut:
    row = await _load(access.session, access.tenant.id, name)
    if row is None:
        raise not_found(f"schedule {name!r} in tenant {access.slug!r}")
    set_etag(response, row.version)
    return hours_out(row)


@router.put("/{name}", response_model=HoursOut, summary="Create or replace a business-hours schedule",
            responses={**responses(403, 404, 409, 412), 201: {"model": HoursOut, "description": "Created"}})
async def put_hours(request: Request, response: Response, name: NamePath, body: HoursIn,
                    access: TenantWriter) -> HoursOut:
    row = await _load(access.session, access.tenant.id, name)
    check_preconditions(request, row.version if row is not None else None, f"schedule {name!r}")
    if row is None:
        row = await _create(access, name, body)
        created(request, response, f"/tenants/{access.slug}/hours/{name}", row.version)
        return hours_out(row)
    current = hours_in(row)
    if body != current:
        await _validate(access, name, body)
        row.settings = body.model_dump(mode="json")
        audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="update",
                     entity="hours", key=name, before=current.model_dump(mode="json"),
                     after=body.model_dump(mode="json"))
        await access.session.commit()
    set_etag(response, row.version)
    return hours_out(row)


@router.delete("/{name}", status_code=204, response_class=Response,
               summary="Delete a business-hours schedule",
               responses=responses(403, 404, 409, 412))
async def delete_hours(request: Request, name: NamePath, access: TenantWriter) -> Response:
    row = await _load(access.session, access.tenant.id, name)
    if row is None:
        raise not_found(f"schedule {name!r} in tenant {access.slug!r}")
    check_preconditions(request, row.version, f"schedule {name!r}")
    await check_removal(access.session, access.tenant, "hours", name, f"schedule {name!r}")
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="delete",
                 entity="hours", key=name, before=hours_in(row).model_dump(mode="json"))
    await access.session.delete(row)
    await access.session.commit()
    return Response(status_code=204)
