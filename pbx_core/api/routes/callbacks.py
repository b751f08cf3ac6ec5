"""/tenants/{slug}/callbacks: callbacks booked for a tenant's queues, with their history.

A customer's web form posts through the customer's backend with an agent (or stronger) key;
supervisors list, inspect and cancel. One callback stays open per number and queue: booking the
same number again answers 200 with the open one (it keeps its place in line). The callbacks
worker dials them; cancelling here only records the cancel, the worker hangs up an attempt in
flight when it sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ...callbacks.core.model import Callback, Source, Status
from ...callbacks.core.numbers import callback_number
from ...callbacks.store import (
    CallbackClosed,
    CallbackNotFound,
    callbacks_query,
    cancel_in,
    history_in,
    request_callback_in,
)
from ...provisioning.models import CallbackRow
from ...provisioning.schemas import NAME_PATTERN, LongText, Model, Name, Text
from .. import audit
from ..auth import Access, TenantReader, api_context, tenant_access, too_many
from ..errors import conflict, invalid, not_found, responses
from ..pagination import Page, Paging, paginate
from ..util import created, utc

router = APIRouter(prefix="/tenants/{slug}/callbacks", tags=["callbacks"])

Requester = Annotated[Access, Depends(tenant_access("agent", "request callbacks"))]
Canceller = Annotated[Access, Depends(tenant_access("supervisor", "cancel callbacks"))]

CALLBACK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
IdPath = Annotated[str, Path(description="The callback's id", examples=["3f2a9c0e5b7d4e1fa6c8b9d0e1f2a3b4"],
                             pattern=CALLBACK_ID_PATTERN)]
StatusName = Literal["pending", "overdue", "dialling", "completed", "no_answer", "busy", "failed",
                     "cancelled", "expired", "unconfirmed"]
ResultName = Literal["answered", "no_answer", "busy", "failed", "agent_unavailable", "unknown"]


class CallbackCreate(Model):
    queue: Name = Field(description="The queue's short name; the callback keeps a place in its line")
    number: str = Field(max_length=32, examples=["+31201234567"],
                        description="The number to call back: 3 to 15 digits, optionally starting with +; "
                        "spaces, dashes, dots and brackets between them are ignored (the same rule as the "
                        "wallboard's \"call back\" button and the phone menu)")
    name: Text | None = Field(default=None, description="Who to ask for (shown to the agent)")
    note: LongText | None = None

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return callback_number(value)


class CallbackOut(Model):
    id: str
    queue: str
    number: str
    name: str | None
    note: str | None
    source: Source
    status: StatusName
    tier: int = Field(description="0: keeps its place in line; 1: served when no one in line waits")
    attempts: int = Field(description="attempts that reached the customer's line")
    attempts_dialled: int
    last_result: ResultName | None
    agent: str | None = Field(description="the agent interface of the attempt in flight")
    originate_id: str | None
    requested_at: datetime
    place_at: datetime = Field(description="its virtual place in line: after callers who joined earlier")
    promised_from: datetime | None = Field(
        description="the promised window is promised_from .. due_by, computed from the line ahead "
        "when the callback was booked (null for a few moments after a REST or wallboard booking, "
        "until the bridge has promised it)")
    due_by: datetime = Field(description="the end of the promised window: late (overdue) after this")
    not_before: datetime = Field(description="not dialled before this (retry back-off, opening time)")
    dialled_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CallbackRequestOut(CallbackOut):
    created: bool = Field(description="false: a callback for this number was already open in this queue")
    message: str


class CallbackEvent(Model):
    at: datetime
    change: str
    status: StatusName
    result: ResultName | None
    originate_id: str | None
    agent: str | None


class CallbackDetail(CallbackOut):
    history: list[CallbackEvent]


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _time_opt(epoch: float | None) -> datetime | None:
    return None if epoch is None else _time(epoch)


def callback_out(row: CallbackRow) -> CallbackOut:
    return CallbackOut.model_validate(_out_fields(row))


def _out_fields(row: CallbackRow) -> dict[str, Any]:
    return {
        "id": row.id, "queue": row.queue, "number": row.number, "name": row.name, "note": row.note,
        "source": row.source, "status": row.status, "tier": row.tier, "attempts": row.attempts,
        "attempts_dialled": row.attempts_dialled, "last_result": row.last_result, "agent": row.agent,
        "originate_id": row.originate_id, "requested_at": _time(row.requested_at),
        "place_at": _time(row.place_at), "due_by": _time(row.due_by), "not_before": _time(row.not_before),
        "promised_from": _time_opt(row.promised_from),
        "dialled_at": _time_opt(row.dialled_at), "closed_at": _time_opt(row.closed_at),
        "created_at": utc(row.created_at), "updated_at": utc(row.updated_at),
    }


async def _visible(access: Access, callback_id: str) -> CallbackRow:
    """The callback, or 404 - also when the key is limited to other queues."""
    row = await access.session.scalar(
        select(CallbackRow).where(CallbackRow.id == callback_id, CallbackRow.tenant_id == access.tenant.id))
    if row is None or not access.principal.sees_queue(row.queue):
        raise not_found(f"callback {callback_id!r} in tenant {access.slug!r}")
    return row


async def _row(session: AsyncSession, callback_id: str) -> CallbackRow:
    row = await session.get(CallbackRow, callback_id, populate_existing=True)
    if row is None:  # pragma: no cover - just written, and only a tenant delete removes rows
        raise not_found(f"callback {callback_id!r}")
    return row


@router.get("", response_model=Page[CallbackOut], summary="List callbacks", responses=responses(403, 404))
async def list_callbacks(
    request: Request, response: Response, access: TenantReader, paging: Paging,
    status: Annotated[list[StatusName] | None, Query(description="any of these (repeatable)")] = None,
    queue: Annotated[str | None, Query(pattern=NAME_PATTERN, description="a queue's short name")] = None,
    source: Source | None = None,
) -> Page[CallbackOut]:
    stmt = callbacks_query(access.tenant.id, status=status, queue=queue, source=source,
                           queues=access.principal.queues)
    return await paginate(access.session, stmt, paging, callback_out, request, response)


@router.post("", response_model=CallbackRequestOut, status_code=201, summary="Request a callback",
             description="Books a callback in the queue, or - when one is already open for this number in "
             "this queue - answers 200 with that one (it keeps its place; nothing is booked twice). "
             "Bookings are limited per tenant, together with the wallboard's \"call back\" button "
             "(`PBX_CALLBACK_RATE_LIMIT`, 429 beyond it). A key that may not read callbacks (an agent "
             "key) gets the open one's details back only as far as it sent them itself: its own "
             "number, and no name, note or agent of someone else's booking.",
             responses={**responses(403, 404, 429),
                        200: {"model": CallbackRequestOut,
                              "description": "A callback for this number is already open in this queue"}})
async def create_callback(request: Request, response: Response, body: CallbackCreate,
                          access: Requester) -> CallbackRequestOut:
    # Plain values: a lost booking race rolls the session back, expiring the loaded tenant row.
    principal, tenant_id, slug = access.principal, access.tenant.id, access.slug
    if not principal.sees_queue(body.queue):  # a key limited to other queues: as if it did not exist
        raise invalid("body.queue", f"no queue {body.queue!r} in tenant {slug!r}")
    limiter = api_context(request).callback_limiter
    if limiter is not None:
        verdict = limiter.take(slug)
        if not verdict.allowed:
            raise too_many(verdict.retry_after_s, f"at most {verdict.limit} callbacks a minute may be "
                           f"booked for tenant {slug!r} (REST and wallboard together)")

    def audited(session: AsyncSession, cb: Callback) -> None:
        audit.record(session, principal, tenant_id=tenant_id, action="create", entity="callback", key=cb.id,
                     after={"queue": cb.queue, "number": cb.number, "name": body.name, "note": body.note,
                            "source": cb.source})

    try:
        # In the request's own session: a booking never waits for a second pooled connection.
        cb, is_new = await request_callback_in(
            access.session, tenant=slug, queue=body.queue, number=body.number,
            source="rest", name=body.name, note=body.note, on_create=audited)
    except LookupError:
        raise invalid("body.queue", f"no queue {body.queue!r} in tenant {slug!r}") from None
    except ValueError as exc:  # e.g. the queue's business hours never open
        raise invalid("body.queue", str(exc)) from None
    row = await _row(access.session, cb.id)
    fields = _out_fields(row)
    if is_new:
        created(request, response, f"/tenants/{slug}/callbacks/{cb.id}")
        message = f"callback requested: {cb.number} will be called back from queue {cb.queue!r}"
    else:
        response.status_code = 200
        message = (f"a callback for {cb.number} is already open in queue {cb.queue!r} (id {cb.id}, "
                   f"{cb.status.value}); it keeps its place, no second one was made")
        if not principal.at_least("supervisor"):
            # Someone else's booking: only what this key sent itself, nothing it may not read.
            fields |= {"name": None, "note": None, "agent": None, "originate_id": None}
    return CallbackRequestOut.model_validate({**fields, "created": is_new, "message": message})


@router.get("/{id}", response_model=CallbackDetail, summary="Get a callback with its history",
            responses=responses(403, 404))
async def get_callback(id: IdPath, access: TenantReader) -> CallbackDetail:
    row = await _visible(access, id)
    events = await history_in(access.session, id)
    history = [CallbackEvent.model_validate({**h, "at": _time(h["at"])}) for h in events]
    return CallbackDetail.model_validate({**_out_fields(row), "history": history})


@router.delete("/{id}", status_code=204, response_class=Response, summary="Cancel a callback",
               responses=responses(403, 404, 409))
async def cancel_callback(id: IdPath, access: Canceller) -> Response:
    row = await _visible(access, id)
    before = row.status
    try:
        await cancel_in(access.session, access.tenant.id, access.slug, id)
    except CallbackNotFound:  # pragma: no cover - _visible found it in this session
        raise not_found(f"callback {id!r} in tenant {access.slug!r}") from None
    except CallbackClosed as exc:
        raise conflict(f"callback {id} is already {exc.callback.status.value}; only an open callback "
                       "(pending, overdue or dialling) can be cancelled") from None
    audit.record(access.session, access.principal, tenant_id=access.tenant.id, action="update",
                 entity="callback", key=id, changes={"status": {"from": before, "to": Status.CANCELLED}})
    await access.session.commit()
    return Response(status_code=204)
