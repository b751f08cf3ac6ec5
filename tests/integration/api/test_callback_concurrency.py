"""No request may need a second pooled connection while it holds one. 100 concurrent callback
bookings over real HTTP (uvicorn, the default pool of 5 + 10) on SQLite and PostgreSQL: none
fails with a pool timeout and an unrelated reseller's request still gets through. And with a
pool of one connection, every operation of the API still completes.

Latency is reported (printed, and recorded as the test's ``booking_latency_*`` properties in
JUnit XML), never asserted: the machine is shared."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from pbx_core.api import ApiContext
from pbx_core.provisioning.db import make_engine, session_factory
from pbx_core.provisioning.models import CallbackRow
from tests.integration.api.conftest import World, api_client, auth, make_world, served
from tests.integration.api.test_isolation_sweep import body_for, fill, operations, provision_a

BOOKINGS = 100
DUPLICATES = 10  # of those, this many book one and the same number: the race path
GUARD_S = 240  # a hang guard; the pool timeout this test is about is 30 s per request


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def test_a_hundred_concurrent_bookings_neither_fail_nor_stall_the_api(
    ctx: ApiContext, world: World, database_url: str, record_property: Callable[[str, Any], None]
) -> None:
    assert ctx.sessions.kw["bind"].pool.size() == 5  # the production default, not a test-sized pool
    async with served(ctx) as api, httpx.AsyncClient(
        base_url=api, timeout=GUARD_S, limits=httpx.Limits(max_connections=BOOKINGS + 10)
    ) as http:
        r = await http.put("/tenants/acme/queues/support", json={}, headers=auth(world.admin))
        assert r.status_code == 201, r.text
        numbers = [f"+3120{i:07d}" for i in range(BOOKINGS - DUPLICATES)] + ["+31612345678"] * DUPLICATES
        latencies: list[float] = []

        async def book(number: str) -> int:
            started = time.perf_counter()
            r = await http.post("/tenants/acme/callbacks", json={"queue": "support", "number": number},
                                headers=auth(world.agent))
            latencies.append(time.perf_counter() - started)
            return r.status_code

        async def unrelated() -> tuple[int, float]:
            await asyncio.sleep(0.05)  # while the bookings are in flight
            started = time.perf_counter()
            r = await http.get("/tenants", headers=auth(world.reseller_b))
            return r.status_code, time.perf_counter() - started

        async with asyncio.timeout(GUARD_S):
            *statuses, (other_status, other_s) = await asyncio.gather(
                *(book(n) for n in numbers), unrelated())

    backend = database_url.split(":", 1)[0]
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    report = (f"{backend}: {BOOKINGS} concurrent bookings, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms; unrelated GET {other_s * 1000:.0f} ms")
    print(report)
    record_property("booking_latency_p50_ms", round(p50 * 1000))
    record_property("booking_latency_p99_ms", round(p99 * 1000))
    record_property("unrelated_get_ms", round(other_s * 1000))

    assert all(s < 500 for s in statuses), (report, sorted(statuses))
    assert statuses.count(201) == BOOKINGS - DUPLICATES + 1, statuses
    assert statuses.count(200) == DUPLICATES - 1, statuses  # the open one, not a second booking
    assert other_status == 200
    async with ctx.sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(CallbackRow))
    assert rows == BOOKINGS - DUPLICATES + 1


async def test_no_request_needs_a_second_pooled_connection(
    database_url: str, engine: Any, tmp_path: Any  # engine: the fixture empties the tables
) -> None:
    """With a pool of exactly one connection, every operation of the API (as the reseller, with
    valid bodies, on real objects) still completes: a request that held its connection while it
    waited for another would time out here instead."""
    one = make_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=5)
    try:
        ctx = ApiContext(sessions=session_factory(one), rate_limit_per_min=0, tenant_rate_limit_per_min=0,
                         asterisk_config_dir=tmp_path / "pbx-core", auth_failures_per_min=100_000)
        async with api_client(ctx) as client:
            world = await make_world(ctx, client)
            values = await provision_a(client, world)
            failed = []
            for method, path in operations(ctx):
                r = await client.request(method.upper(), fill(path, values), json=body_for(method, path),
                                         headers=auth(world.reseller_a))
                if r.status_code >= 500:
                    failed.append(f"{method.upper()} {path}: {r.status_code} {r.text[:200]}")
            assert not failed, "\n".join(failed)
    finally:
        await one.dispose()
