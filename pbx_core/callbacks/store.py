"""Callbacks in SQL: the durable side of the scheduler (tables ``callbacks`` and ``callback_attempts``).

Each :class:`~.model.Callback` record is one row (upserted by id); every save appends a history
row. Restart safety is the point: :meth:`CallbackStore.load_open` + :func:`.scheduler.restore`
rebuild exactly the records that were saved, a ``dialling`` one with its ``originate_id``
included. Record times are epoch floats stored as double precision (see
:class:`pbx_core.provisioning.models.CallbackRow`).

Two writers share a row: the worker (the scheduler's saves) and the API (cancel). A final row
(completed, cancelled, ...) is never rewritten by a save, so a cancel is not undone by a worker
that had not seen it yet; :meth:`CallbackStore.save` says so by returning False.

One open callback per (tenant, queue, number) is enforced by a partial unique index as well as
by the pure scheduler: a save that would open a second one raises :class:`DuplicateCallback`.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..provisioning.models import CallbackAttempt, CallbackRow, Queue, Tenant, utcnow
from ..provisioning.snapshot import load_tenant_config
from .core.model import OPEN, Callback, Source, normalise_number
from .core.numbers import callback_number
from .core.scheduler import CallbackRequest, SchedulerState, cancel, request, restore
from .settings import queue_policy  # the worker's policy builder: one definition of the rules

# The record's fields as columns (``tenant`` is the slug; the row holds tenant_id instead).
RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Callback) if f.name != "tenant")
OPEN_STATUSES: tuple[str, ...] = tuple(sorted(s.value for s in OPEN))


class DuplicateCallback(Exception):
    """Another callback is already open for this number in this queue."""

    def __init__(self, callback: Callback, existing_id: str) -> None:
        super().__init__(
            f"callback {callback.id}: callback {existing_id} is already open for {callback.number} "
            f"in queue {callback.tenant}-{callback.queue}"
        )
        self.existing_id = existing_id


class CallbackNotFound(LookupError):
    pass


class CallbackClosed(Exception):
    """The callback already has its final outcome (it cannot be cancelled any more)."""

    def __init__(self, callback: Callback) -> None:
        super().__init__(f"callback {callback.id} is already {callback.status.value}")
        self.callback = callback


def new_callback_id() -> str:
    """A fresh, URL-safe callback id (the shell chooses ids; the pure core never invents them)."""
    return uuid.uuid4().hex


# --- rows <-> records ---------------------------------------------------------------------------


def to_callback(row: CallbackRow, tenant: str) -> Callback:
    """The record of ``row`` (``tenant``: the tenant's slug)."""
    return Callback.from_record({**{f: getattr(row, f) for f in RECORD_FIELDS}, "tenant": tenant})


def _values(cb: Callback) -> dict[str, Any]:
    record = cb.to_record()
    values = {f: record[f] for f in RECORD_FIELDS}
    values["number"] = normalise_number(cb.number)
    return values


def _select_with_slug() -> Select[CallbackRow, str]:
    return select(CallbackRow, Tenant.slug).join(Tenant, CallbackRow.tenant_id == Tenant.id)


async def _tenant_id(session: AsyncSession, slug: str) -> int:
    tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == slug))
    if tenant_id is None:
        raise LookupError(f"no tenant {slug!r}")
    return tenant_id


async def _open_for(session: AsyncSession, tenant_id: int, queue: str, number: str) -> CallbackRow | None:
    return await session.scalar(
        select(CallbackRow).where(
            CallbackRow.tenant_id == tenant_id,
            CallbackRow.queue == queue,
            CallbackRow.number == normalise_number(number),
            CallbackRow.status.in_(OPEN_STATUSES),
        )
    )


def _history_row(cb: Callback, change: str, at: float) -> CallbackAttempt:
    return CallbackAttempt(
        callback_id=cb.id, at=at, change=change, status=cb.status.value, result=cb.last_result,
        originate_id=cb.originate_id, agent=cb.agent,
    )


# --- session-level operations (the caller commits) ----------------------------------------------


async def save_in(
    session: AsyncSession, cb: Callback, change: str, *, at: float | None = None,
    name: str | None = None, note: str | None = None,
) -> bool:
    """Upsert ``cb`` and append its history row in ``session`` (not committed). ``name`` and
    ``note`` (not part of the record) are set when the row is created. Returns False, writing
    nothing, when the stored row already has a final status. Raises
    :class:`DuplicateCallback` (after rolling ``session`` back) when ``cb`` would be a second
    open callback for its number and queue, LookupError for an unknown tenant."""
    tenant_id = await _tenant_id(session, cb.tenant)
    values = {**_values(cb), "tenant_id": tenant_id}
    now = utcnow()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    new_row = insert(CallbackRow).values(**values, name=name, note=note, created_at=now, updated_at=now)
    stmt = new_row.on_conflict_do_update(
        index_elements=[CallbackRow.id],
        set_={**values, "updated_at": now},
        where=CallbackRow.status.in_(OPEN_STATUSES),  # a final row is never rewritten
    ).returning(CallbackRow.id)
    try:
        written = (await session.execute(stmt)).scalar_one_or_none()
    except IntegrityError:
        await session.rollback()
        existing = await _open_for(session, tenant_id, cb.queue, cb.number)
        if existing is None or existing.id == cb.id:
            raise
        raise DuplicateCallback(cb, existing.id) from None
    if written is None:
        return False
    session.add(_history_row(cb, change, time.time() if at is None else at))
    return True


async def cancel_in(
    session: AsyncSession, tenant_id: int, tenant: str, callback_id: str, *, at: float | None = None
) -> Callback:
    """Cancel an open callback in ``session`` (not committed): status cancelled, closed now, as
    the pure scheduler's ``cancel`` does (an attempt in flight keeps its originate_id, so the
    worker can hang it up). CallbackNotFound / CallbackClosed otherwise."""
    row = await session.scalar(
        select(CallbackRow).where(CallbackRow.id == callback_id, CallbackRow.tenant_id == tenant_id)
    )
    if row is None:
        raise CallbackNotFound(f"callback {callback_id!r} in tenant {tenant!r}")
    current = to_callback(row, tenant)
    when = time.time() if at is None else at
    state = restore([current], {})
    commands = cancel(state, callback_id, when)
    if not commands:
        raise CallbackClosed(current)
    cancelled = state.callbacks[callback_id]
    # Conditional: a worker that closed it meanwhile wins, and the cancel is refused.
    result = await session.execute(
        update(CallbackRow)
        .where(CallbackRow.id == callback_id, CallbackRow.status.in_(OPEN_STATUSES))
        .values(**_values(cancelled), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        await session.refresh(row)
        raise CallbackClosed(to_callback(row, tenant))
    session.add(_history_row(cancelled, "cancelled", when))
    return cancelled


async def history_in(session: AsyncSession, callback_id: str) -> list[dict[str, Any]]:
    rows = (
        await session.scalars(
            select(CallbackAttempt)
            .where(CallbackAttempt.callback_id == callback_id)
            .order_by(CallbackAttempt.id)
        )
    ).all()
    return [
        {"at": r.at, "change": r.change, "status": r.status, "result": r.result,
         "originate_id": r.originate_id, "agent": r.agent}
        for r in rows
    ]


def callbacks_query(
    tenant_id: int,
    *,
    status: Sequence[str] | None = None,
    queue: str | None = None,
    source: str | None = None,
    queues: Sequence[str] | None = None,
) -> Select[CallbackRow]:
    """A tenant's callback rows, newest request first; ``queues``: only these (a scoped key)."""
    stmt = select(CallbackRow).where(CallbackRow.tenant_id == tenant_id)
    if status:
        stmt = stmt.where(CallbackRow.status.in_(list(status)))
    if queue is not None:
        stmt = stmt.where(CallbackRow.queue == queue)
    if source is not None:
        stmt = stmt.where(CallbackRow.source == source)
    if queues is not None:
        stmt = stmt.where(CallbackRow.queue.in_(list(queues)))
    return stmt.order_by(CallbackRow.requested_at.desc(), CallbackRow.id.desc())


# --- the store ----------------------------------------------------------------------------------


class CallbackStore:
    """The scheduler's persistence: each call is one short transaction of its own."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def load_open(self, tenant: str | None = None) -> list[Callback]:
        """Every open callback (pending, overdue, dialling), of one tenant (slug) or all, in
        request order: what :func:`.scheduler.restore` needs after a restart."""
        stmt = _select_with_slug().where(CallbackRow.status.in_(OPEN_STATUSES))
        if tenant is not None:
            stmt = stmt.where(Tenant.slug == tenant)
        async with self.sessions() as session:
            rows = (await session.execute(stmt.order_by(CallbackRow.requested_at, CallbackRow.id))).all()
        return [to_callback(row, slug) for row, slug in rows]

    async def get(self, callback_id: str) -> Callback | None:
        async with self.sessions() as session:
            found = (await session.execute(_select_with_slug().where(CallbackRow.id == callback_id))).first()
        return None if found is None else to_callback(found[0], found[1])

    async def updated_since(self, since: datetime, tenant: str | None = None) -> list[Callback]:
        """Callbacks written at or after ``since`` (open or not), oldest change first: how a
        poller sees new requests and cancels made by the API. Compare with some overlap: the
        stamps come from the writers' clocks."""
        stmt = _select_with_slug().where(CallbackRow.updated_at >= since)
        if tenant is not None:
            stmt = stmt.where(Tenant.slug == tenant)
        async with self.sessions() as session:
            rows = (await session.execute(stmt.order_by(CallbackRow.updated_at, CallbackRow.id))).all()
        return [to_callback(row, slug) for row, slug in rows]

    async def save(self, cb: Callback, change: str, *, at: float | None = None) -> bool:
        """Upsert ``cb`` (by id) and append a history row (``change``, the status, the attempt's
        result, originate id and agent; ``at`` defaults to now), atomically. Returns False when
        the stored callback is already final (e.g. cancelled through the API): nothing is
        written. Raises :class:`DuplicateCallback` if another callback is open for the number."""
        async with self.sessions() as session:
            written = await save_in(session, cb, change, at=at)
            await session.commit()
        return written

    async def history(self, callback_id: str) -> list[dict[str, Any]]:
        """The callback's history, oldest first: dicts with at (epoch s), change, status,
        result, originate_id, agent."""
        async with self.sessions() as session:
            return await history_in(session, callback_id)

    async def cancel(self, tenant: str, callback_id: str, *, at: float | None = None) -> Callback:
        """Cancel an open callback of tenant ``tenant``; CallbackNotFound / CallbackClosed."""
        async with self.sessions() as session:
            tenant_id = await _tenant_id(session, tenant)
            cancelled = await cancel_in(session, tenant_id, tenant, callback_id, at=at)
            await session.commit()
        return cancelled


# --- booking from outside the worker (REST, wallboard) ------------------------------------------

OnCreate = Callable[[AsyncSession, Callback], None]


async def request_callback(
    sessions: async_sessionmaker[AsyncSession],
    *,
    tenant: str,
    queue: str,
    number: str,
    source: Source,
    name: str | None = None,
    note: str | None = None,
    requested_at: float | None = None,
    on_create: OnCreate | None = None,
) -> tuple[Callback, bool]:
    """:func:`request_callback_in` in a session of its own (one pooled connection, released
    when the booking is done)."""
    async with sessions() as session:
        return await request_callback_in(
            session, tenant=tenant, queue=queue, number=number, source=source, name=name, note=note,
            requested_at=requested_at, on_create=on_create,
        )


async def request_callback_in(
    session: AsyncSession,
    *,
    tenant: str,
    queue: str,
    number: str,
    source: Source,
    name: str | None = None,
    note: str | None = None,
    requested_at: float | None = None,
    on_create: OnCreate | None = None,
) -> tuple[Callback, bool]:
    """Book a pending callback in ``queue`` (short name) of tenant ``tenant`` (slug), or return
    the one already open for the same number there: ``(callback, created)``. Works in the
    caller's ``session`` and commits it: a request that already holds a session (the REST API's)
    books in that one, never holding a second pooled connection while it waits for the first.

    Place in line, due-by and the first dial time follow the pure scheduler's ``request`` with
    the queue's provisioned policy (its hours: booked while closed, it waits for the opening).
    Safe against a concurrent booking of the same number (the unique index decides; the loser
    rolls back and returns the winner's callback - objects loaded in ``session`` before are
    expired by that rollback). ``on_create(session, callback)`` runs inside the inserting
    transaction (e.g. to add an audit entry atomically).

    Raises LookupError naming the tenant or queue when it does not exist,
    :class:`~.numbers.InvalidNumber` (a ValueError) for a number pbx-core will not dial, and
    ValueError for a queue whose hours never open."""
    normalised = callback_number(number)
    at = time.time() if requested_at is None else requested_at
    for _ in range(3):  # a concurrent booking that closes again at once: look again
        tenant_id = await _tenant_id(session, tenant)
        known = select(Queue.id).where(Queue.tenant_id == tenant_id, Queue.name == queue)
        if await session.scalar(known) is None:
            raise LookupError(f"no queue {queue!r} in tenant {tenant!r}")
        existing = await _open_for(session, tenant_id, queue, normalised)
        if existing is not None:
            return to_callback(existing, tenant), False
        config = await load_tenant_config(session, tenant)
        queue_config = next(q for q in config.queues if q.name == queue)
        state = SchedulerState(policies={(tenant, queue): queue_policy(config, queue_config)})
        req = CallbackRequest(id=new_callback_id(), tenant=tenant, queue=queue, number=normalised,
                              source=source, requested_at=at)
        callback, _ = request(state, req)
        # No window yet: the bridge promises one from the line ahead when it picks the booking up
        # (within its store poll, about a second); until then due_by is the queue's fixed
        # due_within_s.
        callback = callback.evolve(promised_from=None)
        try:
            await save_in(session, callback, "created", at=at, name=name, note=note)
        except DuplicateCallback:
            continue  # lost the race (save_in rolled back): the winner's row is found next pass
        if on_create is not None:
            on_create(session, callback)
        await session.commit()
        return callback, True
    raise RuntimeError(f"could not book a callback for {normalised} in queue {tenant}-{queue}; retry")
