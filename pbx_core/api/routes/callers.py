"""/tenants/{slug}/callers/{number}: erase a caller's number (a data subject's request).

Caller numbers are personal data. The erasure blanks the number and name in the tenant's call
history (the calls stay, anonymised, so the figures of reports do not change) and in its closed
callbacks (a callback still open is refused with 409: cancel it first, or the worker would dial
a number that is meant to be gone). Audited, under a hash of the number: the audit log must not
keep what was erased.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import Field
from sqlalchemy import func, select, update

from ...callbacks.core.model import OPEN
from ...callbacks.core.numbers import InvalidNumber, callback_number
from ...provisioning.models import CallbackRow, HistoryCall
from ...provisioning.schemas import Model
from .. import audit
from ..auth import Access, tenant_access
from ..errors import conflict, invalid, responses

router = APIRouter(prefix="/tenants/{slug}/callers", tags=["callers"])

Eraser = Annotated[Access, Depends(tenant_access("tenant-admin", "erase a caller's number"))]
NUMBER_HELP = "The caller's number, as the PBX showed it or as a callback was booked"
NumberPath = Annotated[str, Path(max_length=40, examples=["+31201234567"], description=NUMBER_HELP)]


class ErasureOut(Model):
    calls: int = Field(description="Calls in the history whose number and name were blanked")
    callbacks: int = Field(description="Closed callbacks whose number, name and note were blanked")
    audit_key: str = Field(description="The audit log's key for this erasure: a hash, not the number")


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def audit_key(slug: str, number: str) -> str:
    return "sha256:" + hashlib.sha256(f"{slug}:{number}".encode()).hexdigest()[:32]


@router.delete("/{number}", response_model=ErasureOut, summary="Erase a caller's number",
               responses=responses(403, 404, 409, 422))  # fmt: skip
async def erase_caller(number: NumberPath, access: Eraser) -> ErasureOut:
    try:
        dialled = callback_number(number)
    except InvalidNumber as exc:
        raise invalid("number", str(exc)) from None
    forms = sorted({number.strip(), dialled})
    session, slug = access.session, access.slug
    open_callbacks = await session.scalar(
        select(func.count())
        .select_from(CallbackRow)
        .where(
            CallbackRow.tenant_id == access.tenant.id,
            CallbackRow.number.in_(forms),
            CallbackRow.status.in_([s.value for s in OPEN]),
        )
    )
    if open_callbacks:
        raise conflict(f"{open_callbacks} callback(s) for this number are still open; cancel them first")
    calls = await session.execute(
        update(HistoryCall)
        .where(HistoryCall.tenant == slug, HistoryCall.number.in_(forms))
        .values(number="", name="", anonymised=True)
    )
    callbacks = await session.execute(
        update(CallbackRow)
        .where(CallbackRow.tenant_id == access.tenant.id, CallbackRow.number.in_(forms))
        .values(number="", name=None, note=None)
    )
    out = ErasureOut(calls=_count(calls), callbacks=_count(callbacks), audit_key=audit_key(slug, dialled))
    audit.record(session, access.principal, tenant_id=access.tenant.id, action="delete", entity="caller",
                 key=out.audit_key, changes={"calls": out.calls, "callbacks": out.callbacks})  # fmt: skip
    await session.commit()
    return out
