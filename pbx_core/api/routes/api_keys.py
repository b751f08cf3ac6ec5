"""/tenants/{slug}/api-keys: keys for a tenant's admins, supervisors and agents.

The full key is in the create response only; the database keeps its hash. DELETE revokes (the
row stays, so the audit trail and ``revoked_at`` remain visible) and closes the key's open
wallboard sockets on every web replica (``ApiContext.key_revoked``, :mod:`pbx_core.web.revocation`).
A tenant holds at most ``limits.max_api_keys`` keys that are not revoked (409 beyond), and mints at most
:data:`KEY_CREATIONS_PER_MIN` a minute (429 beyond): every key is another rate-limit bucket and
another credential to leak, so a tenant cannot mint them by the hundred.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import func, select

from ...provisioning.keys import generate_key, hash_secret
from ...provisioning.models import ApiKey, Queue
from ...provisioning.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, KeyRole
from .. import audit
from ..auth import Access, TenantWriter, too_many
from ..candidate import limits_of
from ..errors import ApiError, FieldError, conflict, not_found, responses
from ..pagination import Page, Paging, paginate
from ..util import created, utc, utc_opt

router = APIRouter(prefix="/tenants/{slug}/api-keys", tags=["api keys"])

KeyIdPath = Annotated[str, Path(description="The key's public id", max_length=16)]
PUBLIC_ID = re.compile(r"[0-9a-f]{16}")
KEY_CREATIONS_PER_MIN = 10  # per tenant (token bucket: a burst of 10, then one every 6 s)


def key_out(k: ApiKey, slug: str | None) -> ApiKeyOut:
    return ApiKeyOut(id=k.public_id, name=k.name, role=k.role, tenant=slug,  # type: ignore[arg-type]
                     queues=list(k.queues) if k.queues is not None else None, created_at=utc(k.created_at),
                     last_used_at=utc_opt(k.last_used_at), revoked_at=utc_opt(k.revoked_at))


async def _check_queues(access: Access, body: ApiKeyCreate) -> None:
    if body.queues is None:
        return
    if body.role == "tenant-admin":
        raise ApiError(422, "body.queues: a tenant-admin key always covers all queues",
                       fields=[("body.queues", "only supervisor and agent keys are limited to queues")])
    rows = await access.session.scalars(select(Queue.name).where(Queue.tenant_id == access.tenant.id))
    known = set(rows.all())
    fields = [FieldError(field=f"body.queues.{i}", message=f"there is no queue {q!r} in this tenant")
              for i, q in enumerate(body.queues) if q not in known]
    if fields:
        raise ApiError(422, f"{fields[0].field}: {fields[0].message}", fields=fields)


async def _key(access: Access, key_id: str) -> ApiKey:
    if not PUBLIC_ID.fullmatch(key_id):  # no such key could exist; never sent to the database
        raise not_found(f"API key {key_id!r} of tenant {access.slug!r}")
    key = await access.session.scalar(
        select(ApiKey).where(ApiKey.public_id == key_id, ApiKey.tenant_id == access.tenant.id))
    if key is None:
        raise not_found(f"API key {key_id!r} of tenant {access.slug!r}")
    return key


async def _check_allowance(request: Request, access: Access) -> None:
    """409 at the tenant's key limit, 429 over the creation rate (neither spends anything)."""
    limit = limits_of(access.tenant).max_api_keys
    active = await access.session.scalar(select(func.count()).select_from(ApiKey).where(
        ApiKey.tenant_id == access.tenant.id, ApiKey.revoked_at.is_(None)))
    if (active or 0) >= limit:
        raise conflict(f"tenant {access.slug!r} already has {active} API keys, its limit "
                       f"(limits.max_api_keys) is {limit}; revoke one, or ask the reseller to raise it")
    verdict = request.app.state.key_creations.take(f"tenant:{access.tenant.id}")
    if not verdict.allowed:
        raise too_many(verdict.retry_after_s,
                       f"at most {KEY_CREATIONS_PER_MIN} API keys per minute may be created for a tenant")


@router.post("", response_model=ApiKeyCreated, status_code=201, summary="Create a tenant API key",
             description="At most `limits.max_api_keys` keys that are not revoked per tenant (409 "
             f"beyond it) and {KEY_CREATIONS_PER_MIN} new keys a minute per tenant (429 beyond it). "
             "`queues` (supervisor and agent keys only) must name queues of the tenant.",
             responses=responses(403, 404, 409, 429))
async def create_key(request: Request, response: Response, body: ApiKeyCreate,
                     access: TenantWriter) -> ApiKeyCreated:
    await _check_queues(access, body)
    await _check_allowance(request, access)
    public_id, secret, full = generate_key()
    key = ApiKey(public_id=public_id, secret_hash=hash_secret(secret), name=body.name, role=body.role,
                 reseller_id=access.tenant.reseller_id, tenant_id=access.tenant.id,
                 queues=list(body.queues) if body.queues is not None else None)
    access.session.add(key)
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="create",
                 entity="api_key", key=public_id, after=body.model_dump(mode="json"))
    await access.session.commit()
    created(request, response, f"/tenants/{access.slug}/api-keys/{public_id}")
    return ApiKeyCreated(**key_out(key, access.slug).model_dump(), key=full)


@router.get("", response_model=Page[ApiKeyOut], summary="List the tenant's API keys",
            responses=responses(403, 404))
async def list_keys(request: Request, response: Response, access: TenantWriter, paging: Paging,
                    role: KeyRole | None = None, revoked: bool | None = None) -> Page[ApiKeyOut]:
    stmt = select(ApiKey).where(ApiKey.tenant_id == access.tenant.id).order_by(ApiKey.created_at, ApiKey.id)
    if role is not None:
        stmt = stmt.where(ApiKey.role == role)
    if revoked is not None:
        stmt = stmt.where(ApiKey.revoked_at.is_not(None) if revoked else ApiKey.revoked_at.is_(None))
    return await paginate(access.session, stmt, paging, lambda k: key_out(k, access.slug), request, response)


@router.get("/{key_id}", response_model=ApiKeyOut, summary="Get an API key (without its secret)",
            responses=responses(403, 404))
async def get_key(key_id: KeyIdPath, access: TenantWriter) -> ApiKeyOut:
    return key_out(await _key(access, key_id), access.slug)


@router.delete("/{key_id}", status_code=204, response_class=Response, summary="Revoke an API key",
               description="The key stops working at once. Open wallboard websockets it authorised "
               "(itself, or through wallboard tokens it minted) are closed with code 4401 within "
               "seconds on every web process: at once through Redis, at the latest at the next "
               "PBX_WALLBOARD_RECHECK_S re-check.",
               responses=responses(403, 404))
async def revoke_key(request: Request, key_id: KeyIdPath, access: TenantWriter) -> Response:
    key = await _key(access, key_id)
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="delete",
                     entity="api_key", key=key.public_id, before={"name": key.name, "role": key.role})
        await access.session.commit()
    # Also when it was revoked before: a notice that was lost then (Redis down) goes out now.
    ctx = request.app.state.ctx
    if ctx.key_revoked is not None:
        await ctx.key_revoked(key.public_id)
    return Response(status_code=204)
