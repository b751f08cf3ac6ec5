"""/tenants/{slug}/pause-reasons: why an agent may pause (``lunch``, ``training``...).

Agents read them (their phone or app offers the list); tenant admins maintain them. They do not
reach Asterisk's configuration: a pause carries the code as its reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ...provisioning.models import PauseReason
from ...provisioning.schemas import NAME_PATTERN, PauseReasonCreate, PauseReasonIn, PauseReasonOut
from .. import audit
from ..auth import Access, TenantWriter, tenant_access
from ..errors import conflict, not_found, responses
from ..etag import check_preconditions, set_etag
from ..pagination import Page, Paging, paginate
from ..util import created, utc

router = APIRouter(prefix="/tenants/{slug}/pause-reasons", tags=["pause reasons"])

CodePath = Annotated[str, Path(description="The reason's code", examples=["lunch"], pattern=NAME_PATTERN)]
Reader = Annotated[Access, Depends(tenant_access("agent", "read pause reasons"))]


def reason_in(r: PauseReason) -> PauseReasonIn:
    return PauseReasonIn(label=r.label, paid=r.paid)


def reason_out(r: PauseReason) -> PauseReasonOut:
    return PauseReasonOut.model_validate({
        "code": r.code, "label": r.label, "paid": r.paid, "version": r.version,
        "created_at": utc(r.created_at), "updated_at": utc(r.updated_at),
    })


def _view(body: PauseReasonIn) -> dict[str, Any]:
    return body.model_dump(mode="json")


async def _load(session: AsyncSession, tenant_id: int, code: str) -> PauseReason | None:
    return await session.scalar(
        select(PauseReason).where(PauseReason.tenant_id == tenant_id, PauseReason.code == code))


async def _create(access: Access, code: str, body: PauseReasonIn) -> PauseReason:
    row = PauseReason(tenant_id=access.tenant.id, code=code, label=body.label, paid=body.paid)
    access.session.add(row)
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="create",
                 entity="pause_reason", key=code, after=_view(body))
    await access.session.commit()
    return row


@router.get("", response_model=Page[PauseReasonOut], summary="List pause reasons",
            responses=responses(403, 404))
async def list_reasons(
    request: Request, response: Response, access: Reader, paging: Paging,
    paid: Annotated[bool | None, Query(description="only paid (true) or unpaid (false) reasons")] = None,
) -> Page[PauseReasonOut]:
    stmt = select(PauseReason).where(PauseReason.tenant_id == access.tenant.id).order_by(PauseReason.code)
    if paid is not None:
        stmt = stmt.where(PauseReason.paid == paid)
    return await paginate(access.session, stmt, paging, reason_out, request, response)


@router.post("", response_model=PauseReasonOut, status_code=201, summary="Create a pause reason",
             responses=responses(403, 404, 409))
async def create_reason(request: Request, response: Response, body: PauseReasonCreate,
                        access: TenantWriter) -> PauseReasonOut:
    if await _load(access.session, access.tenant.id, body.code) is not None:
        raise conflict(f"pause reason {body.code!r} already exists in tenant {access.slug!r}",
                       fields=[("body.code", "already exists")])
    row = await _create(access, body.code, PauseReasonIn(label=body.label, paid=body.paid))
    created(request, response, f"/tenants/{access.slug}/pause-reasons/{row.code}", row.version)
    return reason_out(row)


@router.get("/{code}", response_model=PauseReasonOut, summary="Get a pause reason",
            responses=responses(403, 404))
async def get_reason(response: Response, code: CodePath, access: Reader) -> PauseReasonOut:
    row = await _load(access.session, access.tenant.id, code)
    if row is None:
        raise not_found(f"pause reason {code!r} in tenant {access.slug!r}")
    set_etag(response, row.version)
    return reason_out(row)


@router.put("/{code}", response_model=PauseReasonOut, summary="Create or replace a pause reason",
            responses={**responses(403, 404, 409, 412),
                       201: {"model": PauseReasonOut, "description": "Created"}})
async def put_reason(request: Request, response: Response, code: CodePath, body: PauseReasonIn,
                     access: TenantWriter) -> PauseReasonOut:
    row = await _load(access.session, access.tenant.id, code)
    check_preconditions(request, row.version if row is not None else None, f"pause reason {code!r}")
    if row is None:
        row = await _create(access, code, body)
        created(request, response, f"/tenants/{access.slug}/pause-reasons/{code}", row.version)
        return reason_out(row)
    current = reason_in(row)
    if body != current:
        row.label, row.paid = body.label, body.paid
        audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="update",
                     entity="pause_reason", key=code, before=_view(current), after=_view(body))
        await access.session.commit()
    set_etag(response, row.version)
    return reason_out(row)


@router.delete("/{code}", status_code=204, response_class=Response, summary="Delete a pause reason",
               responses=responses(403, 404, 412))
async def delete_reason(request: Request, code: CodePath, access: TenantWriter) -> Response:
    row = await _load(access.session, access.tenant.id, code)
    if row is None:
        raise not_found(f"pause reason {code!r} in tenant {access.slug!r}")
    check_preconditions(request, row.version, f"pause reason {code!r}")
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="delete",
                 entity="pause_reason", key=code, before=_view(reason_in(row)))
    await access.session.delete(row)
    await access.session.commit()
    return Response(status_code=204)
