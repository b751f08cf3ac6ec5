"""/tenants/{slug}/dids: inbound numbers and where they route.

A number routes to one place whichever tenant asks: routing a number another tenant already
routes is a 409 that says only "already routed" (which tenant has it is none of the caller's
business).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ...provisioning.models import Did
from ...provisioning.schemas import NUMBER_PATTERN, DestinationType, DidCreate, DidIn, DidOut
from .. import audit
from ..auth import Access, TenantReader, TenantWriter
from ..candidate import check_candidate, check_removal, replaced
from ..errors import conflict, not_found, responses
from ..etag import check_preconditions, set_etag
from ..pagination import Page, Paging, page_of, paginate
from ..util import created, utc

router = APIRouter(prefix="/tenants/{slug}/dids", tags=["dids"])

NumberPath = Annotated[str, Path(description="The number, E.164 (the + may be sent as %2B)",
                                 examples=["+31201234567"], pattern=NUMBER_PATTERN)]


def did_in(d: Did) -> DidIn:
    return DidIn.model_validate({"destination": d.destination, "description": d.description})


def did_out(d: Did) -> DidOut:
    return DidOut.model_validate({
        "number": d.number, "destination": d.destination, "description": d.description,
        "version": d.version, "created_at": utc(d.created_at), "updated_at": utc(d.updated_at),
    })


def _view(body: DidIn) -> dict[str, Any]:
    return body.model_dump(mode="json")


async def _load(session: AsyncSession, tenant_id: int, number: str) -> Did | None:
    return await session.scalar(select(Did).where(Did.tenant_id == tenant_id, Did.number == number))


async def _not_routed_elsewhere(access: Access, number: str, field: str) -> None:
    other = await access.session.scalar(select(Did.tenant_id).where(Did.number == number))
    if other is not None and other != access.tenant.id:
        raise conflict(f"number {number} is already routed", fields=[(field, "already routed")])


async def _validate(access: Access, number: str, body: DidIn) -> None:
    candidate = DidCreate(number=number, **body.model_dump())
    await check_candidate(access.session, access.tenant, lambda c: replaced(c, "dids", number, candidate),
                          target=("dids", number))


def _assign(d: Did, body: DidIn) -> None:
    d.destination = body.destination.model_dump(mode="json")
    d.description = body.description


async def _create(access: Access, number: str, body: DidIn, field: str) -> Did:
    await _not_routed_elsewhere(access, number, field)
    await _validate(access, number, body)
    did = Did(tenant_id=access.tenant.id, number=number)
    _assign(did, body)
    access.session.add(did)
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="create",
                 entity="did", key=number, after=_view(body))
    await access.session.commit()
    return did


@router.get("", response_model=Page[DidOut], summary="List inbound numbers", responses=responses(403, 404))
async def list_dids(
    request: Request, response: Response, access: TenantReader, paging: Paging,
    destination_type: DestinationType | None = None,
    q: Annotated[str | None, Query(max_length=16, description="substring of the number")] = None,
) -> Page[DidOut]:
    stmt = select(Did).where(Did.tenant_id == access.tenant.id).order_by(Did.number)
    if q:
        stmt = stmt.where(Did.number.like(f"%{q}%"))
    if destination_type is not None:  # the type is inside the JSON document: filtered here
        rows = (await access.session.scalars(stmt)).all()
        items = [did_out(r) for r in rows if (r.destination or {}).get("type") == destination_type]
        return page_of(items, paging, request, response)
    return await paginate(access.session, stmt, paging, did_out, request, response)


@router.post("", response_model=DidOut, status_code=201, summary="Route an inbound number",
             responses=responses(403, 404, 409))
async def create_did(request: Request, response: Response, body: DidCreate, access: TenantWriter) -> DidOut:
    if await _load(access.session, access.tenant.id, body.number) is not None:
        raise conflict(f"number {body.number} is already routed in tenant {access.slug!r}",
                       fields=[("body.number", "already exists")])
    did = await _create(access, body.number, DidIn.model_validate(body.model_dump(exclude={"number"})),
                        "body.number")
    created(request, response, f"/tenants/{access.slug}/dids/{did.number}", did.version)
    return did_out(did)


@router.get("/{number}", response_model=DidOut, summary="Get an inbound number",
            responses=responses(403, 404))
async def get_did(response: Response, number: NumberPath, access: TenantReader) -> DidOut:
    did = await _load(access.session, access.tenant.id, number)
    if did is None:
        raise not_found(f"number {number} in tenant {access.slug!r}")
    set_etag(response, did.version)
    return did_out(did)


@router.put("/{number}", response_model=DidOut, summary="Route an inbound number (create or replace)",
            responses={**responses(403, 404, 409, 412), 201: {"model": DidOut, "description": "Created"}})
async def put_did(request: Request, response: Response, number: NumberPath, body: DidIn,
                  access: TenantWriter) -> DidOut:
    did = await _load(access.session, access.tenant.id, number)
    check_preconditions(request, did.version if did is not None else None, f"number {number}")
    if did is None:
        did = await _create(access, number, body, "path.number")
        created(request, response, f"/tenants/{access.slug}/dids/{number}", did.version)
        return did_out(did)
    current = did_in(did)
    if body != current:
        await _validate(access, number, body)
        _assign(did, body)
        audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="update",
                     entity="did", key=number, before=_view(current), after=_view(body))
        await access.session.commit()
    set_etag(response, did.version)
    return did_out(did)


@router.delete("/{number}", status_code=204, response_class=Response, summary="Stop routing a number",
               responses=responses(403, 404, 409, 412))
async def delete_did(request: Request, number: NumberPath, access: TenantWriter) -> Response:
    did = await _load(access.session, access.tenant.id, number)
    if did is None:
        raise not_found(f"number {number} in tenant {access.slug!r}")
    check_preconditions(request, did.version, f"number {number}")
    await check_removal(access.session, access.tenant, "dids", number, f"number {number}")
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="delete",
                 entity="did", key=number, before=_view(did_in(did)))
    await access.session.delete(did)
    await access.session.commit()
    return Response(status_code=204)
