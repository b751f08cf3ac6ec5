"""/tenants: a reseller's customers.

Slugs are one namespace across all resellers, because they name Asterisk objects and Asterisk's
names are global (``acme-support`` is one queue on the PBX, whoever sold it). So creating a
tenant whose slug is in use anywhere - POST, or a PUT that would create - is a 409 "already
taken": the only answer that lets a reseller pick another slug. It says nothing else (not
whose, not what), and it is the same answer whether the slug is the reseller's own or another
reseller's. That a slug exists is all an outsider can learn, and it could learn that by trying
to create it anyway. Every other request on another reseller's tenant is a 404.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ...provisioning.models import BusinessHours, Did, Menu, Queue, Reseller, Tenant, User
from ...provisioning.schemas import Slug, TenantConfig, TenantCreate, TenantIn, TenantOut
from .. import audit
from ..auth import (
    Access,
    CurrentPrincipal,
    Principal,
    Session,
    SlugPath,
    find_tenant,
    require,
    tenant_access,
    tenant_for,
)
from ..candidate import check_candidate
from ..errors import ApiError, ErrorResponse, FieldError, conflict, not_found, responses
from ..etag import check_preconditions, set_etag
from ..pagination import Page, Paging, paginate
from ..util import created, utc
from .apply import forget_live_state, remove_from_asterisk

log = logging.getLogger(__name__)

router = APIRouter(prefix="/tenants", tags=["tenants"])

_slug = TypeAdapter(Slug)


def tenant_in(t: Tenant) -> TenantIn:
    return TenantIn.model_validate({
        "name": t.name, "timezone": t.timezone, "language": t.language, "limits": t.limits,
        "operator": t.operator, "outbound_caller_id": t.outbound_caller_id,
    })


def tenant_out(t: Tenant, reseller: str) -> TenantOut:
    return TenantOut.model_validate({
        **tenant_in(t).model_dump(), "slug": t.slug, "reseller": reseller, "version": t.version,
        "created_at": utc(t.created_at), "updated_at": utc(t.updated_at),
    })


def _assign(t: Tenant, body: TenantIn) -> None:
    t.name = body.name
    t.timezone = body.timezone
    t.language = body.language
    t.limits = body.limits.model_dump(mode="json")
    t.operator = body.operator.model_dump(mode="json") if body.operator is not None else None
    t.outbound_caller_id = body.outbound_caller_id


def _audit_view(body: TenantIn) -> dict[str, Any]:
    return body.model_dump(mode="json")


async def _reseller_name(session: AsyncSession, reseller_id: int) -> str:
    reseller = await session.get(Reseller, reseller_id)
    return reseller.name if reseller is not None else ""


async def _check_config(session: AsyncSession, slug: str, body: TenantIn, existing: Tenant | None) -> None:
    """The tenant's own fields (operator destination, limits vs. what exists) against the rules."""

    def change(config: TenantConfig) -> TenantConfig:
        return config.model_copy(update={
            "name": body.name, "timezone": body.timezone, "language": body.language,
            "operator": body.operator, "outbound_caller_id": body.outbound_caller_id,
        })

    if existing is not None:
        await check_candidate(session, existing, change, limits=body.limits)
        return
    from ...provisioning.rules import check

    fresh = TenantConfig.model_validate({"slug": slug, **body.model_dump(exclude={"limits"})})
    problems = check(fresh, body.limits)
    if problems:
        fields = [FieldError(field=".".join(str(p) for p in ("body", *pr.loc)), message=pr.msg)
                  for pr in problems]
        raise ApiError(422, "invalid tenant - " + "; ".join(f"{f.field}: {f.message}" for f in fields[:3]),
                       fields=fields)


async def _create(session: AsyncSession, principal: Principal, slug: str, body: TenantIn) -> Tenant:
    await _check_config(session, slug, body, None)
    tenant = Tenant(slug=slug, reseller_id=principal.reseller_id)
    _assign(tenant, body)
    session.add(tenant)
    await session.flush()
    audit.record(session, principal, tenant_id=tenant.id, action="create", entity="tenant", key=slug,
                 after=_audit_view(body))
    await session.commit()
    return tenant


def _taken(slug: str) -> ApiError:
    return conflict(f"tenant slug {slug!r} is already taken; choose another",
                    fields=[("body.slug", "already taken")])


SLUG_TAKEN = ("The slug is already taken - by one of this reseller's tenants or another reseller's: "
              "slugs are global, because they name Asterisk objects. The answer is the same either "
              "way and says nothing about the tenant; choose another slug.")
_TAKEN_RESPONSE = {409: {"model": ErrorResponse, "description": SLUG_TAKEN}}


@router.get("", response_model=Page[TenantOut], summary="List the reseller's tenants",
            responses=responses(403))
async def list_tenants(
    request: Request, response: Response, principal: CurrentPrincipal, session: Session, paging: Paging,
    q: Annotated[str | None, Query(max_length=80, description="substring of slug or name")] = None,
) -> Page[TenantOut]:
    require(principal, "reseller", "list tenants")
    stmt = select(Tenant).where(Tenant.reseller_id == principal.reseller_id).order_by(Tenant.slug)
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(or_(Tenant.slug.like(pattern), func.lower(Tenant.name).like(pattern)))
    reseller = await _reseller_name(session, principal.reseller_id)
    return await paginate(session, stmt, paging, lambda t: tenant_out(t, reseller), request, response)


@router.post("", response_model=TenantOut, status_code=201, summary="Create a tenant",
             description="Creates a tenant with a new slug. " + SLUG_TAKEN,
             responses={**responses(403), **_TAKEN_RESPONSE})
async def create_tenant(request: Request, response: Response, body: TenantCreate,
                        principal: CurrentPrincipal, session: Session) -> TenantOut:
    require(principal, "reseller", "create tenants")
    if await session.scalar(select(Tenant.id).where(Tenant.slug == body.slug)) is not None:
        raise _taken(body.slug)
    body_in = TenantIn.model_validate(body.model_dump(exclude={"slug"}))
    tenant = await _create(session, principal, body.slug, body_in)
    await forget_live_state(request, tenant.slug)  # a reused slug starts empty
    created(request, response, f"/tenants/{tenant.slug}", tenant.version)
    return tenant_out(tenant, await _reseller_name(session, tenant.reseller_id))


ReadTenant = Annotated[Access, Depends(tenant_access("supervisor", "read the tenant"))]
DeleteTenant = Annotated[Access, Depends(tenant_access("reseller", "delete the tenant"))]


@router.get("/{slug}", response_model=TenantOut, summary="Get a tenant", responses=responses(403, 404))
async def get_tenant(response: Response, access: ReadTenant) -> TenantOut:
    set_etag(response, access.tenant.version)
    return tenant_out(access.tenant, await _reseller_name(access.session, access.tenant.reseller_id))


@router.put("/{slug}", response_model=TenantOut, summary="Create or replace a tenant",
            description="Replaces the reseller's tenant, or creates it (201) if the slug is free. Another "
            "reseller's tenant is not replaced: as a create, its slug is taken (409, the same answer as "
            "POST /tenants gives). A tenant-admin key may change its own tenant (not its limits); any "
            "other tenant is 404 to it.",
            responses={**responses(403, 404, 412), **_TAKEN_RESPONSE,
                       201: {"model": TenantOut, "description": "Created"}})
async def put_tenant(request: Request, response: Response, slug: SlugPath, body: TenantIn,
                     principal: CurrentPrincipal, session: Session) -> TenantOut:
    existing = await find_tenant(session, slug)
    if existing is None:
        if not principal.at_least("reseller"):
            raise not_found(f"tenant {slug!r}")
        try:
            _slug.validate_python(slug)
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ApiError(422, f"path.slug: {msg}", fields=[("path.slug", msg)]) from None
        check_preconditions(request, None, f"tenant {slug!r}")
        tenant = await _create(session, principal, slug, body)
        await forget_live_state(request, slug)  # a reused slug starts empty
        created(request, response, f"/tenants/{slug}", tenant.version)
        return tenant_out(tenant, await _reseller_name(session, tenant.reseller_id))
    if principal.role == "reseller" and existing.reseller_id != principal.reseller_id:
        raise _taken(slug)  # global namespace: a create that cannot happen
    tenant = await tenant_for(session, principal, slug)
    require(principal, "tenant-admin", "change the tenant")
    check_preconditions(request, tenant.version, f"tenant {slug!r}")
    current = tenant_in(tenant)
    if body.limits != current.limits and not principal.at_least("reseller"):
        raise ApiError(403, "only the reseller may change a tenant's limits",
                       fields=[("body.limits", "only the reseller may change this")])
    if body != current:
        await _check_config(session, slug, body, tenant)
        _assign(tenant, body)
        audit.record(session, principal, tenant_id=tenant.id, action="update", entity="tenant", key=slug,
                     before=_audit_view(current), after=_audit_view(body))
        await session.commit()
    set_etag(response, tenant.version)
    return tenant_out(tenant, await _reseller_name(session, tenant.reseller_id))


_CONTENTS: tuple[tuple[str, Any], ...] = (
    ("users", User), ("queues", Queue), ("menus", Menu), ("business hours", BusinessHours), ("DIDs", Did),
)


@router.delete("/{slug}", status_code=204, response_class=Response, summary="Delete a tenant",
               responses=responses(403, 404, 409, 412))
async def delete_tenant(
    request: Request, access: DeleteTenant,
    force: Annotated[bool, Query(description="also delete everything the tenant still has")] = False,
) -> Response:
    session, tenant = access.session, access.tenant
    check_preconditions(request, tenant.version, f"tenant {tenant.slug!r}")
    remaining = []
    for label, model in _CONTENTS:
        count = await session.scalar(select(func.count()).where(model.tenant_id == tenant.id))
        if count:
            remaining.append(f"{count} {label}")
    if remaining and not force:
        raise conflict(f"tenant {tenant.slug!r} still has {', '.join(remaining)}; delete them first, "
                       "or delete with ?force=true to remove everything")
    audit.record(session, access.principal, tenant_id=None, action="delete", entity="tenant", key=tenant.slug,
                 before={**_audit_view(tenant_in(tenant)), "removed": remaining})
    await session.delete(tenant)
    await session.commit()
    # Its endpoints, queues and dialplan leave Asterisk too (not only the database).
    removed = await remove_from_asterisk(request, tenant.slug)
    if removed is not None and not removed.ok:
        log.warning("tenant %r deleted, but its Asterisk configuration was not removed: %s",
                    tenant.slug, removed.error)
    # ... and from the live state: the bridge, the Redis snapshot and stream, every wallboard.
    await forget_live_state(request, tenant.slug)
    return Response(status_code=204)

