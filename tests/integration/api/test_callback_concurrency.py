"""100 concurrent callback bookings over real HTTP (uvicorn, the default connection pool of 5 + 10)
on SQLite and PostgreSQL: no request may need a second pooled connection while it holds one, so
none fails with a pool timeout and an unrelated reseller's request still gets through.

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
from pbx_core.provisioning.models import CallbackRow
from tests.integration.api.conftest import World, auth, served

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
