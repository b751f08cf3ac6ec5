"""CallbackStore and request_callback against real SQLite and PostgreSQL: records survive a restart
exactly (a dialling one included), history, one open callback per number and queue (also under a
race), and bookings that follow the queue's provisioned policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pbx_core.callbacks.core.model import Callback, Status
from pbx_core.callbacks.core.policy import QueuePolicy
from pbx_core.callbacks.core.scheduler import QueueLoad, decide, on_result, restore
from pbx_core.callbacks.store import (
    CallbackClosed,
    CallbackNotFound,
    CallbackStore,
    DuplicateCallback,
    request_callback,
    save_in,
)
from pbx_core.provisioning import db
from pbx_core.provisioning.models import BusinessHours, CallbackAttempt, CallbackRow, Queue, Reseller, Tenant
from pbx_core.provisioning.schemas import Destination, HoursIn, OpeningSpan, QueueIn

from .databases import BACKENDS, throwaway_database

SUNDAY_NOON = datetime(2024, 1, 7, 12, 0, tzinfo=UTC).timestamp()
MONDAY_NINE = datetime(2024, 1, 8, 9, 0, tzinfo=UTC).timestamp()
T0 = 1_704_700_000.123456789  # not a round number: floats must come back bit for bit
AGENT = "Local/201@acme-agents/n"


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database(request.param, tmp_path) as url:
        await db.upgrade(url)
        yield url


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        reseller = Reseller(name="Reseller A")
        session.add(reseller)
        await session.flush()
        for slug in ("acme", "globex"):
            tenant = Tenant(
                reseller_id=reseller.id,
                slug=slug,
                name=slug.title(),
                timezone="UTC",
                language="en",
                limits={},
            )
            session.add(tenant)
            await session.flush()
            hours = HoursIn(
                weekly=[OpeningSpan(days=["mon", "tue", "wed", "thu", "fri"], open="09:00", close="17:00")],
                open_destination=Destination(type="queue", target="support"),
            )
            session.add(
                BusinessHours(tenant_id=tenant.id, name="office", settings=hours.model_dump(mode="json"))
            )
            for name, settings in (
                ("support", QueueIn(callback_due_within_s=1800)),
                ("sales", QueueIn()),
                ("office_q", QueueIn(hours="office", callback_due_within_s=7200)),
            ):
                session.add(Queue(tenant_id=tenant.id, name=name, settings=settings.model_dump(mode="json")))


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.make_engine(url)
    await _seed(db.session_factory(engine))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return db.session_factory(engine)


@pytest.fixture
def store(sessions: async_sessionmaker[AsyncSession]) -> CallbackStore:
    return CallbackStore(sessions)


def _cb(id: str, number: str = "+31201234567", queue: str = "support", **changes: object) -> Callback:
    base = Callback(
        id=id,
        tenant="acme",
        queue=queue,
        number=number,
        source="rest",
        requested_at=T0,
        place_at=T0 - 42.5,
        due_by=T0 + 3600.25,
        not_before=T0,
    )
    return base.evolve(**changes)


async def _rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(CallbackRow)) or 0


# --- migration ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_adds_and_removes_only_the_callback_tables(backend: str, tmp_path: Path) -> None:
    async with throwaway_database(backend, tmp_path) as url:
        await db.upgrade(url, "0001_initial")
        engine = db.make_engine(url)
        try:
            async with db.session_factory(engine)() as session, session.begin():
                session.add(Reseller(name="Kept"))
            await db.upgrade(url)
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
                assert {"callbacks", "callback_attempts"} <= tables
                indexes = await conn.run_sync(
                    lambda c: {i["name"]: i for i in inspect(c).get_indexes("callbacks")}
                )
            assert indexes["uq_callbacks_open_number"]["unique"]
            await db.downgrade(url, "0001_initial")
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert not {"callbacks", "callback_attempts"} & tables and "tenants" in tables
            async with db.session_factory(engine)() as session:
                assert await session.scalar(select(Reseller.name)) == "Kept"
        finally:
            await engine.dispose()


# --- restart safety -----------------------------------------------------------------------------


async def test_open_callbacks_come_back_exactly_after_a_restart(url: str, store: CallbackStore) -> None:
    pending = _cb("cb-pending", number="0201111111")
    overdue = _cb(
        "cb-overdue",
        number="0202222222",
        status=Status.OVERDUE,
        attempts=1,
        attempts_dialled=1,
        last_result="no_answer",
        not_before=T0 + 300.5,
    )
    dialling = _cb(
        "cb-dialling",
        number="0203333333",
        queue="sales",
        status=Status.DIALLING,
        attempts_dialled=2,
        originate_id="cb-dialling:2",
        agent=AGENT,
        dialled_at=T0 + 1.000001,
    )
    done = _cb(
        "cb-done", number="0204444444", status=Status.COMPLETED, closed_at=T0 + 99.9, last_result="answered"
    )
    other_tenant = _cb("cb-globex", number="0201111111").evolve(tenant="globex")
    for cb in (pending, overdue, dialling, done, other_tenant):
        assert await store.save(cb, "created")

    # "Restart": a new engine and a new store over the same database.
    engine = db.make_engine(url)
    try:
        fresh = CallbackStore(db.session_factory(engine))
        loaded = await fresh.load_open("acme")
        everything = await fresh.load_open()
    finally:
        await engine.dispose()
    assert sorted(loaded, key=lambda c: c.id) == sorted([pending, overdue, dialling], key=lambda c: c.id)
    assert {c.id for c in everything} == {"cb-pending", "cb-overdue", "cb-dialling", "cb-globex"}

    state = restore(loaded, {("acme", "sales"): QueuePolicy(), ("acme", "support"): QueuePolicy()})
    assert state.callbacks["cb-dialling"] == dialling
    assert state.in_flight() == [dialling]
    # The dialling one is not dialled again, and its agent stays reserved.
    commands = decide(state, T0 + 2, {("acme", "sales"): QueueLoad(free_agents=[AGENT])})
    assert commands == []
    # Its result still resolves it after the restart.
    [saved] = on_result(state, "cb-dialling", "cb-dialling:2", "answered", T0 + 60)
    assert await store.save(saved.callback, saved.change)
    assert {c.id for c in await store.load_open("acme")} == {"cb-pending", "cb-overdue"}
    assert await store.get("cb-dialling") == saved.callback


async def test_history_records_every_change(store: CallbackStore) -> None:
    cb = _cb("cb-1")
    steps = [
        (cb, "created"),
        (
            cb.evolve(
                status=Status.DIALLING,
                attempts_dialled=1,
                originate_id="cb-1:1",
                agent=AGENT,
                dialled_at=T0 + 10,
            ),
            "dialling",
        ),
        (
            cb.evolve(
                status=Status.PENDING, attempts=1, attempts_dialled=1, last_result="busy", not_before=T0 + 310
            ),
            "retry",
        ),
        (
            cb.evolve(
                status=Status.DIALLING,
                attempts=1,
                attempts_dialled=2,
                originate_id="cb-1:2",
                agent=AGENT,
                last_result="busy",
                dialled_at=T0 + 320,
            ),
            "dialling",
        ),
        (
            cb.evolve(
                status=Status.COMPLETED,
                attempts=1,
                attempts_dialled=2,
                originate_id="cb-1:2",
                last_result="answered",
                closed_at=T0 + 400,
            ),
            "completed",
        ),
    ]
    for i, (record, change) in enumerate(steps):
        assert await store.save(record, change, at=T0 + i)
    history = await store.history("cb-1")
    assert [(h["change"], h["status"], h["result"], h["originate_id"]) for h in history] == [
        ("created", "pending", None, None),
        ("dialling", "dialling", None, "cb-1:1"),
        ("retry", "pending", "busy", None),
        ("dialling", "dialling", "busy", "cb-1:2"),
        ("completed", "completed", "answered", "cb-1:2"),
    ]
    assert [h["at"] for h in history] == [T0 + i for i in range(5)]
    assert history[1]["agent"] == AGENT
    assert await store.history("nope") == []


async def test_a_final_row_is_never_rewritten(
    store: CallbackStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cb = _cb("cb-1")
    await store.save(cb, "created")
    cancelled = await store.cancel("acme", "cb-1", at=T0 + 5)
    assert cancelled.status is Status.CANCELLED and cancelled.closed_at == T0 + 5
    # A worker that had not seen the cancel tries to dial it: nothing is written.
    stale = cb.evolve(status=Status.DIALLING, originate_id="cb-1:1", agent=AGENT, attempts_dialled=1)
    assert await store.save(stale, "dialling") is False
    assert await store.get("cb-1") == cancelled
    assert [h["change"] for h in await store.history("cb-1")] == ["created", "cancelled"]
    with pytest.raises(CallbackClosed, match="already cancelled"):
        await store.cancel("acme", "cb-1")
    with pytest.raises(CallbackNotFound):
        await store.cancel("globex", "cb-1")  # another tenant's id is not found


async def test_cancel_of_a_dialling_callback_keeps_its_originate_id(store: CallbackStore) -> None:
    dialling = _cb("cb-1", status=Status.DIALLING, originate_id="cb-1:1", agent=AGENT, attempts_dialled=1)
    await store.save(dialling, "dialling")
    since = datetime.now(UTC).replace(microsecond=0)
    cancelled = await store.cancel("acme", "cb-1", at=T0 + 1)
    assert (cancelled.status, cancelled.originate_id, cancelled.agent) == (Status.CANCELLED, "cb-1:1", None)
    # The worker sees it (and hangs the attempt up).
    assert cancelled in await store.updated_since(since, "acme")
    assert await store.load_open() == []


async def test_the_database_allows_one_open_callback_per_number_and_queue(
    store: CallbackStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await store.save(_cb("cb-1", number="+31201234567"), "created")
    with pytest.raises(DuplicateCallback, match="already open") as caught:
        await store.save(_cb("cb-2", number="+31 20 123 4567"), "created")  # same number, other format
    assert caught.value.existing_id == "cb-1"
    assert await _rows(sessions) == 1
    # Other queue, other tenant: fine.
    await store.save(_cb("cb-3", queue="sales"), "created")
    await store.save(_cb("cb-4").evolve(tenant="globex"), "created")
    # Once the first is closed, the number may be booked again (the index covers open ones only).
    await store.save(_cb("cb-1", status=Status.NO_ANSWER, closed_at=T0 + 1, attempts=3), "no_answer")
    await store.save(_cb("cb-2"), "created")
    assert {c.id for c in await store.load_open("acme")} == {"cb-2", "cb-3"}


async def test_deleting_a_tenant_deletes_its_callbacks(
    store: CallbackStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await store.save(_cb("cb-1"), "created")
    async with sessions() as session, session.begin():
        await session.execute(delete(Tenant).where(Tenant.slug == "acme"))
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CallbackAttempt)) == 0
    assert await _rows(sessions) == 0


# --- request_callback ---------------------------------------------------------------------------


async def test_request_dedupes_per_number_and_queue(
    sessions: async_sessionmaker[AsyncSession], store: CallbackStore
) -> None:
    first, created = await request_callback(
        sessions,
        tenant="acme",
        queue="support",
        number="+31201234567",
        source="rest",
        name="Ann",
        note="about invoice 12",
        requested_at=SUNDAY_NOON,
    )
    assert created
    again, created_again = await request_callback(
        sessions, tenant="acme", queue="support", number="+31 20-123 4567", source="wallboard"
    )
    assert (again, created_again) == (first, False)
    other_queue, created_other = await request_callback(
        sessions, tenant="acme", queue="sales", number="+31201234567", source="rest"
    )
    assert created_other and other_queue.id != first.id
    assert await _rows(sessions) == 2
    async with sessions() as session:
        row = await session.get(CallbackRow, first.id)
        assert row is not None and (row.name, row.note, row.number) == (
            "Ann",
            "about invoice 12",
            "+31201234567",
        )
    assert [h["change"] for h in await store.history(first.id)] == ["created"]
    # Closed: the same number may ask again.
    await store.cancel("acme", first.id)
    third, created_third = await request_callback(
        sessions, tenant="acme", queue="support", number="+31201234567", source="rest"
    )
    assert created_third and third.id != first.id


async def test_request_follows_the_queue_policy(sessions: async_sessionmaker[AsyncSession]) -> None:
    always, _ = await request_callback(
        sessions, tenant="acme", queue="support", number="0201234567", source="rest", requested_at=SUNDAY_NOON
    )
    assert (always.status, always.source, always.tier) == (Status.PENDING, "rest", 0)
    assert always.place_at == always.requested_at == always.not_before == SUNDAY_NOON
    assert always.due_by == SUNDAY_NOON + 1800  # callback_due_within_s of support
    # Booked on Sunday for a queue open Mon-Fri 09-17: waits for Monday's opening, due 2 h after it.
    closed, _ = await request_callback(
        sessions,
        tenant="acme",
        queue="office_q",
        number="0201234567",
        source="rest",
        requested_at=SUNDAY_NOON,
    )
    assert (closed.place_at, closed.not_before, closed.due_by) == (
        SUNDAY_NOON,
        MONDAY_NINE,
        MONDAY_NINE + 7200,
    )


async def test_request_refuses_unknown_queue_tenant_and_numbers_without_digits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(LookupError, match="no queue 'billing' in tenant 'acme'"):
        await request_callback(sessions, tenant="acme", queue="billing", number="020", source="rest")
    with pytest.raises(LookupError, match="no tenant 'ghost'"):
        await request_callback(sessions, tenant="ghost", queue="support", number="020", source="rest")
    with pytest.raises(ValueError, match="must be a phone number"):
        await request_callback(sessions, tenant="acme", queue="support", number="+ -", source="rest")
    assert await _rows(sessions) == 0


async def test_concurrent_requests_make_one_callback(
    url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    results = await asyncio.gather(
        *(
            request_callback(
                sessions, tenant="acme", queue="support", number="+31 20 123 4567", source="rest"
            )
            for _ in range(8)
        )
    )
    assert len({cb.id for cb, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await _rows(sessions) == 1


async def test_the_losing_side_of_a_race_returns_the_winner(
    url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], store: CallbackStore
) -> None:
    """B checks, finds nothing (A has not committed), inserts, hits A's row in the unique index
    and answers with A's callback. Deterministic on PostgreSQL, where B's wait on A's lock is
    visible in pg_stat_activity."""
    if engine.dialect.name != "postgresql":
        pytest.skip("needs a server that shows lock waits (PostgreSQL)")
    winner = _cb("cb-a", number="+31201234567")
    async with sessions() as a:
        assert await save_in(a, winner, "created")  # uncommitted: B cannot see it yet
        b = asyncio.create_task(
            request_callback(sessions, tenant="acme", queue="support", number="+31201234567", source="rest")
        )
        waits = 0

        async def lock_waits() -> int:
            async with engine.connect() as conn:
                return int(
                    await conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND datname = current_database()"
                        )
                    )
                    or 0
                )

        async with asyncio.timeout(30):  # a hang guard, not a timing assertion
            while waits == 0 and not b.done():
                waits = await lock_waits()
        assert waits == 1 and not b.done()
        await a.commit()
    cb, created = await b
    assert (cb, created) == (winner, False)
    assert await _rows(sessions) == 1
