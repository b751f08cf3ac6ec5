"""/tenants/{slug}/wallboard-tokens: short-lived, signed tokens for a wallboard screen.

A wall screen should not hold an API key: it gets a token that only opens the wallboard, for
some queues, until it expires (or until the key that minted it is revoked).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ...provisioning.models import Queue
from ...provisioning.schemas import Name
from .. import audit
from ..auth import Access, tenant_access
from ..errors import ApiError, FieldError, responses
from ..wallboard import TokenClaims, TokenSigner

router = APIRouter(prefix="/tenants/{slug}/wallboard-tokens", tags=["wallboard"])

MintAccess = Annotated[Access, Depends(tenant_access("supervisor", "mint wallboard tokens"))]


class WallboardTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queues: list[Name] | None = Field(default=None, max_length=100,
                                      description="short queue names; null: all the key may see")
    ttl_s: int = Field(default=43_200, ge=60, le=86_400, description="lifetime in seconds")


class WallboardToken(BaseModel):
    token: str
    expires_at: datetime
    tenant: str
    queues: list[str] | None = Field(description="short queue names covered; null: all")


async def _queues(access: Access, requested: list[str] | None) -> list[str] | None:
    principal = access.principal
    if requested is None:
        return list(principal.queues) if principal.queues is not None else None
    rows = await access.session.scalars(select(Queue.name).where(Queue.tenant_id == access.tenant.id))
    known = set(rows.all())
    fields = [FieldError(field=f"body.queues.{i}", message=f"there is no queue {q!r} in this tenant")
              for i, q in enumerate(requested) if q not in known]
    if fields:
        raise ApiError(422, f"{fields[0].field}: {fields[0].message}", fields=fields)
    outside = sorted(q for q in set(requested) if not principal.sees_queue(q))
    if outside:
        raise ApiError(403, f"this key does not cover queue(s) {', '.join(outside)}")
    return sorted(set(requested))


async def _signing_key(request: Request) -> None:
    """Load (the first time: make) the signing secret before the request's session opens: with
    PBX_SECRET_KEY unset it is read from the database, and a request must never wait for a
    second pooled connection while it holds one."""
    signer: TokenSigner = request.app.state.signer
    await signer.key()


@router.post("", response_model=WallboardToken, status_code=201, summary="Mint a wallboard token",
             responses=responses(403, 404))
async def mint(
    request: Request,
    _key_ready: Annotated[None, Depends(_signing_key)],  # first: before the session opens
    access: MintAccess,
    body: Annotated[WallboardTokenCreate | None, Body()] = None,
) -> WallboardToken:
    body = body or WallboardTokenCreate()  # no body: every queue the key may see, for 12 hours
    queues = await _queues(access, body.queues)
    expires = int(time.time()) + body.ttl_s
    signer: TokenSigner = request.app.state.signer
    full = None if queues is None else tuple(f"{access.slug}-{q}" for q in queues)
    token = await signer.mint(TokenClaims(access.slug, full, access.principal.public_id, expires))
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="create",
                 entity="wallboard_token", key=datetime.fromtimestamp(expires, UTC).isoformat(),
                 after={"queues": queues, "ttl_s": body.ttl_s})
    await access.session.commit()
    return WallboardToken(token=token, expires_at=datetime.fromtimestamp(expires, UTC), tenant=access.slug,
                          queues=queues)


