"""/tenants/{slug}/menus: IVR menus (context ``{slug}-ivr-{name}``).

Every write is checked against the whole tenant: option targets must exist, menus may not nest
deeper than ``limits.max_menu_depth``, the schedule named in ``hours`` must exist (422 naming the
field, e.g. ``body.options.1.target``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ...provisioning.models import Menu
from ...provisioning.schemas import NAME_PATTERN, MenuCreate, MenuIn, MenuOut
from .. import audit
from ..auth import Access, TenantReader, TenantWriter
from ..candidate import check_candidate, check_removal, limits_of, replaced
from ..errors import conflict, not_found, responses
from ..etag import check_preconditions, set_etag
from ..pagination import Page, Paging, page_of, paginate
from ..util import created, utc

router = APIRouter(prefix="/tenants/{slug}/menus", tags=["menus"])

NamePath = Annotated[str, Path(description="The menu's short name", examples=["main"], pattern=NAME_PATTERN)]


def menu_in(m: Menu) -> MenuIn:
    return MenuIn.model_validate(m.settings)


def menu_out(slug: str, m: Menu) -> MenuOut:
    return MenuOut.model_validate({
        **m.settings, "name": m.name, "context": f"{slug}-ivr-{m.name}", "version": m.version,
        "created_at": utc(m.created_at), "updated_at": utc(m.updated_at),
    })


async def _load(session: AsyncSession, tenant_id: int, name: str) -> Menu | None:
    return await session.scalar(select(Menu).where(Menu.tenant_id == tenant_id, Menu.name == name))


async def _validate(access: Access, name: str, body: MenuIn, creating: bool) -> None:
    session, tenant = access.session, access.tenant
    if creating:
        limit = limits_of(tenant).max_menus
        count = await session.scalar(select(func.count()).where(Menu.tenant_id == tenant.id)) or 0
        if count >= limit:
            raise conflict(f"tenant {tenant.slug!r} already has {count} menus, its limit "
                           f"(limits.max_menus) is {limit}; ask the reseller to raise it or delete a menu")
    candidate = MenuCreate(name=name, **body.model_dump())
    await check_candidate(session, tenant, lambda c: replaced(c, "menus", name, candidate),
                          target=("menus", name))


async def _create(access: Access, name: str, body: MenuIn) -> Menu:
    await _validate(access, name, body, creating=True)
    menu = Menu(tenant_id=access.tenant.id, name=name, settings=body.model_dump(mode="json"))
    access.session.add(menu)
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="create",
                 entity="menu", key=name, after=body.model_dump(mode="json"))
    await access.session.commit()
    return menu


@router.get("", response_model=Page[MenuOut], summary="List IVR menus", responses=responses(403, 404))
async def list_menus(
    request: Request, response: Response, access: TenantReader, paging: Paging,
    hours: Annotated[str | None, Query(pattern=NAME_PATTERN, description="menus using this schedule")] = None,
    q: Annotated[str | None, Query(max_length=32, description="substring of the name")] = None,
) -> Page[MenuOut]:
    stmt = select(Menu).where(Menu.tenant_id == access.tenant.id).order_by(Menu.name)
    if q:
        stmt = stmt.where(Menu.name.like(f"%{q.lower()}%"))
    if hours is not None:  # inside the JSON document: filtered in Python, menus are few
        rows = (await access.session.scalars(stmt)).all()
        items = [menu_out(access.slug, r) for r in rows if r.settings.get("hours") == hours]
        return page_of(items, paging, request, response)
    return await paginate(access.session, stmt, paging, lambda r: menu_out(access.slug, r),
                          request, response)


@router.post("", response_model=MenuOut, status_code=201, summary="Create an IVR menu",
             responses=responses(403, 404, 409))
async def create_menu(request: Request, response: Response, body: MenuCreate,
                      access: TenantWriter) -> MenuOut:
    if await _load(access.session, access.tenant.id, body.name) is not None:
        raise conflict(f"menu {body.name!r} already exists in tenant {access.slug!r}",
                       fields=[("body.name", "already exists")])
    menu = await _create(access, body.name, MenuIn.model_validate(body.model_dump(exclude={"name"})))
    created(request, response, f"/tenants/{access.slug}/menus/{menu.name}", menu.version)
    return menu_out(access.slug, menu)


@router.get("/{name}", response_model=MenuOut, summary="Get an IVR menu", responses=responses(403, 404))
async def get_menu(response: Response, name: NamePath, access: TenantReader) -> MenuOut:
    menu = await _load(access.session, access.tenant.id, name)
    if menu is None:
        raise not_found(f"menu {name!r} in tenant {access.slug!r}")
    set_etag(response, menu.version)
    return menu_out(access.slug, menu)


@router.put("/{name}", response_model=MenuOut, summary="Create or replace an IVR menu",
            responses={**responses(403, 404, 409, 412), 201: {"model": MenuOut, "description": "Created"}})
async def put_menu(request: Request, response: Response, name: NamePath, body: MenuIn,
                   access: TenantWriter) -> MenuOut:
    menu = await _load(access.session, access.tenant.id, name)
    check_preconditions(request, menu.version if menu is not None else None, f"menu {name!r}")
    if menu is None:
        menu = await _create(access, name, body)
        created(request, response, f"/tenants/{access.slug}/menus/{name}", menu.version)
        return menu_out(access.slug, menu)
    current = menu_in(menu)
    if body != current:
        await _validate(access, name, body, creating=False)
        menu.settings = body.model_dump(mode="json")
        audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="update",
                     entity="menu", key=name, before=current.model_dump(mode="json"),
                     after=body.model_dump(mode="json"))
        await access.session.commit()
    set_etag(response, menu.version)
    return menu_out(access.slug, menu)


@router.delete("/{name}", status_code=204, response_class=Response, summary="Delete an IVR menu",
               responses=responses(403, 404, 409, 412))
async def delete_menu(request: Request, name: NamePath, access: TenantWriter) -> Response:
    menu = await _load(access.session, access.tenant.id, name)
    if menu is None:
        raise not_found(f"menu {name!r} in tenant {access.slug!r}")
    check_preconditions(request, menu.version, f"menu {name!r}")
    await check_removal(access.session, access.tenant, "menus", name, f"menu {name!r}")
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="delete",
                 entity="menu", key=name, before=menu_in(menu).model_dump(mode="json"))
    await access.session.delete(menu)
    await access.session.commit()
    return Response(status_code=204)
