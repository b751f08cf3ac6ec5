"""/tenants/{slug}/users: people with an extension, and their SIP devices.

Device credentials are generated here (never chosen by the client): username = endpoint =
``{slug}-{extension}-{device}``, secret = 32 URL-safe random characters. Only reseller and
tenant-admin keys see secrets; a supervisor gets them masked.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ...provisioning.models import Device, User, utcnow
from ...provisioning.schemas import (
    EXTENSION_PATTERN,
    DeviceConfig,
    DeviceOut,
    TenantConfig,
    UserConfig,
    UserCreate,
    UserIn,
    UserOut,
    UserRole,
)
from .. import audit
from ..auth import Access, Principal, TenantReader, TenantWriter
from ..candidate import check_candidate, check_removal, limits_of, replaced
from ..errors import conflict, not_found, responses
from ..etag import check_preconditions, set_etag
from ..pagination import Page, Paging, paginate
from ..util import created, utc

router = APIRouter(prefix="/tenants/{slug}/users", tags=["users"])

SECRET_BYTES = 24  # 32 URL-safe characters
MASKED = "********"

ExtensionPath = Annotated[str, Path(description="The user's extension", examples=["201"],
                                    pattern=EXTENSION_PATTERN)]
DevicePath = Annotated[str, Path(description="Device name", examples=["desk"], max_length=12)]


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def endpoint_name(slug: str, extension: str, device: str) -> str:
    return f"{slug}-{extension}-{device}"


def _device_out(slug: str, extension: str, d: Device, show_secret: bool) -> DeviceOut:
    name = endpoint_name(slug, extension, d.name)
    return DeviceOut.model_validate({"name": d.name, "kind": d.kind, "endpoint": name, "username": name,
                                     "secret": d.secret if show_secret else MASKED})


def user_out(slug: str, u: User, principal: Principal) -> UserOut:
    show = principal.at_least("tenant-admin")
    return UserOut.model_validate({
        "extension": u.extension, "name": u.name, "email": u.email, "mobile": u.mobile, "role": u.role,
        "devices": [_device_out(slug, u.extension, d, show) for d in sorted(u.devices, key=lambda d: d.name)],
        "version": u.version, "created_at": utc(u.created_at), "updated_at": utc(u.updated_at),
    })


def user_in(u: User) -> UserIn:
    return UserIn.model_validate({
        "name": u.name, "email": u.email, "mobile": u.mobile, "role": u.role,
        "devices": [{"name": d.name, "kind": d.kind} for d in sorted(u.devices, key=lambda d: d.name)],
    })


def _normalised(body: UserIn) -> UserIn:
    """Device order carries no meaning: compare and store them sorted by name."""
    return body.model_copy(update={"devices": sorted(body.devices, key=lambda d: d.name)})


def _audit_view(body: UserIn) -> dict[str, Any]:
    return _normalised(body).model_dump(mode="json")


def _config(extension: str, body: UserIn, secrets_by_name: dict[str, str]) -> UserConfig:
    return UserConfig(extension=extension, name=body.name, mobile=body.mobile, devices=tuple(
        DeviceConfig(name=d.name, kind=d.kind, secret=secrets_by_name.get(d.name, "x" * 32))
        for d in sorted(body.devices, key=lambda d: d.name)))


async def _load(session: AsyncSession, tenant_id: int, extension: str) -> User | None:
    return await session.scalar(
        select(User).where(User.tenant_id == tenant_id, User.extension == extension)
        .options(selectinload(User.devices)))


async def _validate(access: Access, extension: str, body: UserIn, creating: bool) -> None:
    session, tenant = access.session, access.tenant
    if creating:
        limit = limits_of(tenant).max_users
        count = await session.scalar(select(func.count()).where(User.tenant_id == tenant.id))
        if (count or 0) >= limit:
            raise conflict(f"tenant {tenant.slug!r} already has {count} users, its limit (limits.max_users) "
                           f"is {limit}; ask the reseller to raise it or delete a user")
    candidate = _config(extension, body, {})

    def change(config: TenantConfig) -> TenantConfig:
        return replaced(config, "users", extension, candidate)

    await check_candidate(session, tenant, change, target=("users", extension))


def _assign(u: User, body: UserIn) -> None:
    u.name, u.email, u.mobile, u.role = body.name, body.email, body.mobile, body.role
    by_name = {d.name: d for d in u.devices}
    devices = []
    for d in sorted(body.devices, key=lambda d: d.name):
        device = by_name.get(d.name)
        if device is None:
            device = Device(name=d.name, kind=d.kind, secret=new_secret())
        elif device.kind != d.kind:
            # Another kind of device: new credentials. (The row is reused, not replaced: the
            # unique (user, name) index would see the insert before the delete.)
            device.kind, device.secret = d.kind, new_secret()
        # Same name and kind: the phone keeps working with its provisioned secret.
        devices.append(device)
    u.devices = devices


async def _create(access: Access, extension: str, body: UserIn) -> User:
    await _validate(access, extension, body, creating=True)
    user = User(tenant_id=access.tenant.id, extension=extension, devices=[])
    _assign(user, body)
    access.session.add(user)
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="create", entity="user",
                 key=extension, after=_audit_view(body))
    await access.session.commit()
    return user


@router.get("", response_model=Page[UserOut], summary="List users", responses=responses(403, 404))
async def list_users(
    request: Request, response: Response, access: TenantReader, paging: Paging,
    role: UserRole | None = None,
    q: Annotated[str | None, Query(max_length=80, description="substring of name or extension")] = None,
) -> Page[UserOut]:
    stmt = (select(User).where(User.tenant_id == access.tenant.id).options(selectinload(User.devices))
            .order_by(User.extension))
    if role is not None:
        stmt = stmt.where(User.role == role)
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(User.name).like(pattern), User.extension.like(pattern)))
    return await paginate(access.session, stmt, paging, lambda u: user_out(access.slug, u, access.principal),
                          request, response)


@router.post("", response_model=UserOut, status_code=201, summary="Create a user",
             responses=responses(403, 404, 409))
async def create_user(request: Request, response: Response, body: UserCreate,
                      access: TenantWriter) -> UserOut:
    if await _load(access.session, access.tenant.id, body.extension) is not None:
        raise conflict(f"extension {body.extension} already exists in tenant {access.slug!r}",
                       fields=[("body.extension", "already exists")])
    body_in = UserIn.model_validate(body.model_dump(exclude={"extension"}))
    user = await _create(access, body.extension, body_in)
    created(request, response, f"/tenants/{access.slug}/users/{user.extension}", user.version)
    return user_out(access.slug, user, access.principal)


@router.get("/{extension}", response_model=UserOut, summary="Get a user", responses=responses(403, 404))
async def get_user(response: Response, extension: ExtensionPath, access: TenantReader) -> UserOut:
    user = await _load(access.session, access.tenant.id, extension)
    if user is None:
        raise not_found(f"user {extension} in tenant {access.slug!r}")
    set_etag(response, user.version)
    return user_out(access.slug, user, access.principal)


@router.put("/{extension}", response_model=UserOut, summary="Create or replace a user",
            responses={**responses(403, 404, 409, 412), 201: {"model": UserOut, "description": "Created"}})
async def put_user(request: Request, response: Response, extension: ExtensionPath, body: UserIn,
                   access: TenantWriter) -> UserOut:
    user = await _load(access.session, access.tenant.id, extension)
    what = f"user {extension}"
    check_preconditions(request, user.version if user is not None else None, what)
    if user is None:
        user = await _create(access, extension, body)
        created(request, response, f"/tenants/{access.slug}/users/{extension}", user.version)
        return user_out(access.slug, user, access.principal)
    current = user_in(user)
    if _normalised(body) != current:
        await _validate(access, extension, body, creating=False)
        _assign(user, body)
        user.updated_at = utcnow()  # device-only changes must bump the user's version too
        audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="update",
                     entity="user", key=extension, before=_audit_view(current), after=_audit_view(body))
        await access.session.commit()
    set_etag(response, user.version)
    return user_out(access.slug, user, access.principal)


@router.delete("/{extension}", status_code=204, response_class=Response, summary="Delete a user",
               responses=responses(403, 404, 409, 412))
async def delete_user(request: Request, extension: ExtensionPath, access: TenantWriter) -> Response:
    user = await _load(access.session, access.tenant.id, extension)
    if user is None:
        raise not_found(f"user {extension} in tenant {access.slug!r}")
    check_preconditions(request, user.version, f"user {extension}")

    def drop_memberships(config: TenantConfig) -> TenantConfig:  # the database cascades them
        members = tuple(m for m in config.members if m.extension != extension)
        return config.model_copy(update={"members": members})

    await check_removal(access.session, access.tenant, "users", extension, f"user {extension}",
                        cascade=drop_memberships)
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="delete", entity="user",
                 key=extension, before=_audit_view(user_in(user)))
    await access.session.delete(user)
    await access.session.commit()
    return Response(status_code=204)


@router.post("/{extension}/devices/{name}/rotate-secret", response_model=DeviceOut,
             summary="Replace a device's SIP secret", responses=responses(403, 404))
async def rotate_secret(response: Response, extension: ExtensionPath, name: DevicePath,
                        access: TenantWriter) -> DeviceOut:
    user = await _load(access.session, access.tenant.id, extension)
    device = next((d for d in user.devices if d.name == name), None) if user is not None else None
    if user is None or device is None:
        raise not_found(f"device {name!r} of user {extension} in tenant {access.slug!r}")
    device.secret = new_secret()
    user.updated_at = utcnow()  # the rendered config changes: so does the user's ETag
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="update",
                 entity="device", key=f"{extension}/{name}", changes={"secret": "rotated"})
    await access.session.commit()
    set_etag(response, user.version)
    return _device_out(access.slug, extension, device, show_secret=True)

