"""Token buckets: per API key for every request, per client address for failed logins."""

from __future__ import annotations

from pbx_core.api import ApiContext
from pbx_core.api.ratelimit import RateLimiter
from tests.integration.api.conftest import World, api_client, assert_error, auth


async def test_per_key_limit(ctx: ApiContext, world: World) -> None:
    async with api_client(ctx, rate_limit_per_min=3) as client:
        remaining = []
        for _ in range(3):
            r = await client.get("/tenants/acme", headers=auth(world.admin))
            assert r.status_code == 200 and r.headers["RateLimit-Limit"] == "3"
            remaining.append(r.headers["RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]
        r = await client.get("/tenants/acme", headers=auth(world.admin))
        err = assert_error(r, 429, code="rate_limited")
        assert "3 requests per minute" in err["message"]
        assert int(r.headers["Retry-After"]) >= 1 and r.headers["RateLimit-Remaining"] == "0"
        # Writes are counted too, and refused before they happen.
        assert_error(await client.put("/tenants/acme", json={"name": "Changed"}, headers=auth(world.admin)),
                     429)
        # Another key has its own bucket.
        other = await client.get("/tenants/acme", headers=auth(world.supervisor))
        assert other.status_code == 200 and other.headers["RateLimit-Remaining"] == "2"
        assert (await client.get("/tenants/acme", headers=auth(world.reseller_a))).json()["name"] == "Acme"


async def test_unlimited_sends_no_headers(ctx: ApiContext, world: World) -> None:
    async with api_client(ctx, rate_limit_per_min=0) as c:
        for _ in range(20):
            r = await c.get("/tenants/acme", headers=auth(world.admin))
            assert r.status_code == 200 and "RateLimit-Limit" not in r.headers


async def test_failed_authentications_are_throttled_per_address(ctx: ApiContext, world: World) -> None:
    async with api_client(ctx, auth_failures_per_min=2) as client:
        for _ in range(2):
            assert_error(await client.get("/tenants", headers=auth("pbx_guess")), 401)
        r = await client.get("/tenants", headers=auth("pbx_guess"))
        assert_error(r, 429)
        assert int(r.headers["Retry-After"]) >= 1
        # The address is throttled as a whole: guessing cannot continue behind a valid key.
        assert_error(await client.get("/tenants", headers=auth(world.reseller_a)), 429)


def test_bucket_refills_at_the_configured_rate() -> None:
    now = [1000.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # one token per second, burst of 60
    assert all(limiter.take("k").allowed for _ in range(60))
    refused = limiter.take("k")
    assert not refused.allowed and refused.retry_after_s == 1
    now[0] += 0.5
    assert not limiter.take("k").allowed
    now[0] += 0.5
    assert limiter.take("k").allowed and not limiter.take("k").allowed
    now[0] += 3600  # a long pause refills to the burst size, not beyond
    verdict = limiter.take("k")
    assert verdict.allowed and verdict.remaining == 59
    assert limiter.take("other").remaining == 59
