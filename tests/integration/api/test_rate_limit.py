"""Token buckets: per API key and per tenant for every request, per client address for failed
logins (a valid key is never refused for what others sent), per tenant for minting keys."""

from __future__ import annotations

import httpx

from pbx_core.api import ApiContext
from pbx_core.api.ratelimit import RateLimiter
from pbx_core.api.routes.api_keys import KEY_CREATIONS_PER_MIN
from tests.integration.api.conftest import World, api_client, assert_error, auth, served


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
    async with api_client(ctx, rate_limit_per_min=0, tenant_rate_limit_per_min=0) as c:
        for _ in range(20):
            r = await c.get("/tenants/acme", headers=auth(world.admin))
            assert r.status_code == 200 and "RateLimit-Limit" not in r.headers


async def test_failed_authentications_are_throttled_per_address_but_a_valid_key_never_is(
    ctx: ApiContext, world: World
) -> None:
    async with api_client(ctx, auth_failures_per_min=2) as client:
        for _ in range(2):
            assert_error(await client.get("/tenants", headers=auth("pbx_guess")), 401)
        r = await client.get("/tenants", headers=auth("pbx_guess"))
        assert_error(r, 429)
        assert int(r.headers["Retry-After"]) >= 1
        # Someone else behind the same address (a NAT, a proxy) with a valid key is served,
        # again and again, while the guessing goes on being refused.
        for _ in range(5):
            assert (await client.get("/tenants", headers=auth(world.reseller_a))).status_code == 200
            assert_error(await client.get("/tenants", headers=auth(f"pbx_{'0' * 16}_{'A' * 43}")), 429)
            assert_error(await client.get("/tenants", headers={}), 429)


async def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    ctx: ApiContext, world: World
) -> None:
    """Over real HTTP from loopback: rotating X-Forwarded-For does not escape the throttle unless
    the peer is a configured proxy; behind one, each forwarded client has its own budget."""
    bad = auth(f"pbx_{'0' * 16}_{'A' * 43}")
    async with (
        served(ctx, auth_failures_per_min=5) as api,
        httpx.AsyncClient(base_url=api, timeout=60) as http,
    ):
        statuses = [
            (await http.get("/tenants", headers={**bad, "X-Forwarded-For": f"203.0.113.{i}"})).status_code
            for i in range(30)
        ]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
        ok = await http.get("/tenants", headers={**auth(world.reseller_a), "X-Forwarded-For": "203.0.113.1"})
        assert ok.status_code == 200
    async with (
        served(ctx, auth_failures_per_min=5, trusted_proxies=("127.0.0.1",)) as api,
        httpx.AsyncClient(base_url=api, timeout=60) as http,
    ):
        attacker = {**bad, "X-Forwarded-For": "203.0.113.7"}
        statuses = [(await http.get("/tenants", headers=attacker)).status_code for _ in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        # Another customer behind the same proxy: its own budget.
        other = await http.get("/tenants", headers={**bad, "X-Forwarded-For": "198.51.100.9"})
        assert_error(other, 401)
        # The proxy appends the peer it saw: a client cannot pick its own address by sending
        # the header itself (the rightmost untrusted entry counts).
        spoofed = {**bad, "X-Forwarded-For": "192.0.2.1, 203.0.113.7"}
        assert_error(await http.get("/tenants", headers=spoofed), 429)
        ok = await http.get("/tenants", headers={**auth(world.reseller_a), "X-Forwarded-For": "203.0.113.7"})
        assert ok.status_code == 200


async def test_a_tenant_is_limited_as_a_whole_not_only_per_key(ctx: ApiContext, world: World) -> None:
    async with api_client(ctx, rate_limit_per_min=5, tenant_rate_limit_per_min=8) as client:
        keys = [world.admin, world.supervisor, world.agent]
        answers = [(await client.get("/tenants/acme", headers=auth(key))).status_code
                   for _ in range(4) for key in keys]
        # (the agent key may not read the tenant: its 403s are answers, and count, too)
        assert len(answers) - answers.count(429) == 8 and answers[-4:] == [429] * 4, answers
        r = await client.get("/tenants/acme", headers=auth(world.admin))
        err = assert_error(r, 429, code="rate_limited")
        assert "8 requests per minute for this tenant's keys together" in err["message"]
        assert r.headers["RateLimit-Remaining"] == "0" and int(r.headers["Retry-After"]) >= 1
        # Another tenant, and the reseller's own key, have budgets of their own.
        assert (await client.get("/tenants/globex", headers=auth(world.admin_b))).status_code == 200
        assert (await client.get("/tenants/acme", headers=auth(world.reseller_a))).status_code == 200


async def test_minting_keys_is_limited(ctx: ApiContext, world: World) -> None:
    async with api_client(ctx) as client:
        h = auth(world.admin)
        made = 0
        for i in range(40):
            body = {"name": f"k{i}", "role": "agent"}
            r = await client.post("/tenants/acme/api-keys", json=body, headers=h)
            if r.status_code != 201:
                break
            made += 1
        # 3 keys exist from the fixture; the burst allows 10 more, then one every 6 s.
        assert made == KEY_CREATIONS_PER_MIN, made
        err = assert_error(r, 429, code="rate_limited")
        assert "API keys per minute" in err["message"] and int(r.headers["Retry-After"]) >= 1
        # The count limit: the reseller lowers it, further keys are a 409 naming it.
        limits = {"max_api_keys": 5}
        r = await client.put("/tenants/acme", json={"name": "Acme", "limits": limits},
                             headers=auth(world.reseller_a))
        assert r.status_code == 200, r.text
        err = assert_error(await client.post("/tenants/acme/api-keys", json={"name": "more", "role": "agent"},
                                             headers=h), 409)
        assert "limits.max_api_keys" in err["message"]
        listed = (await client.get("/tenants/acme/api-keys", params={"revoked": False}, headers=h)).json()
        assert listed["total"] == 3 + KEY_CREATIONS_PER_MIN


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
