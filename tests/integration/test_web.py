"""The web app's HTTP side over real sockets: the wallboard UI, /healthz, /metrics, and the
`pbx-core web` command as a real process."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from pbx_core.bus import BusPublisher, EmbeddedRedis
from pbx_core.bus.embedded import free_port
from pbx_core.ingest import Ingest
from pbx_core.web import StaticTokens, create_app, serving
from tests.conftest import fixture_bytes
from tests.integration.test_websocket import GUARD_S, TOKENS, refused, stack, wallboard

ROOT = Path(__file__).resolve().parents[2]


def metric_value(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line_start} in /metrics:\n{text}")


async def test_the_wallboard_ui_is_served_at_the_root() -> None:
    async with stack() as s, httpx.AsyncClient(base_url=s.http, timeout=GUARD_S) as http:
        index = await http.get("/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        assert index.text == (ROOT / "wallboard" / "index.html").read_text()
        js = await http.get("/connection.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert "4401" in js.text
        assert (await http.get("/no-such-file.js")).status_code == 404


async def test_healthz_is_bare_and_turns_503_when_the_bus_is_down() -> None:
    async with stack() as s, httpx.AsyncClient(base_url=s.http, timeout=GUARD_S) as http:
        async with wallboard(s, "token=ta") as wb:  # a client and a followed tenant it must not name
            await wb.until(lambda m: m["type"] == "snapshot")
            ok = await http.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
            assert ok.status_code == 200 and ok.json() == {"status": "ok"}
            assert "t1" not in ok.text
        await s.redis.kill()
        down = await http.get("/healthz")
        assert down.status_code == 503 and down.json() == {"status": "unavailable"}
        # The detail is a metric, for those who may read metrics.
        assert metric_value((await http.get("/metrics")).text, "pbx_web_redis_up") == 0
        await s.redis.start()  # same port, empty
        assert (await http.get("/healthz")).status_code == 200
        assert metric_value((await http.get("/metrics")).text, "pbx_web_redis_up") == 1


async def test_metrics_are_served_only_where_configured() -> None:
    """Without PBX_METRICS_TOKEN: only a scrape from this host that no proxy forwarded. With it:
    only with the token. Everyone else learns nothing about tenants or queues."""
    async with EmbeddedRedis() as redis:
        publisher = BusPublisher(redis.url)
        await publisher.start()
        await publisher.publish(Ingest().feed(fixture_bytes("members")))
        await publisher.flush()
        try:
            open_app = create_app(verifier=StaticTokens.parse(TOKENS), redis_url=redis.url)
            async with serving(open_app) as base, httpx.AsyncClient(base_url=base, timeout=GUARD_S) as http:
                local = await http.get("/metrics")
                assert local.status_code == 200 and 'tenant="t1"' in local.text
                for proxied in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
                                {"X-Real-IP": "203.0.113.9"}):
                    r = await http.get("/metrics", headers=proxied)
                    assert r.status_code == 404 and "t1" not in r.text, proxied
            # Behind a trusted proxy the client is the forwarded address: not local either.
            async with (
                serving(open_app, trusted_proxies=("127.0.0.1",)) as base,
                httpx.AsyncClient(base_url=base, timeout=GUARD_S) as http,
            ):
                assert (await http.get("/metrics")).status_code == 200
                forwarded = await http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
                assert forwarded.status_code == 404

            token_app = create_app(verifier=StaticTokens.parse(TOKENS), redis_url=redis.url,
                                   metrics_token="s3cret-scrape-token")
            async with serving(token_app) as base, httpx.AsyncClient(base_url=base, timeout=GUARD_S) as http:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"}):
                    r = await http.get("/metrics", headers=headers)
                    assert r.status_code == 401 and "t1" not in r.text, headers
                    assert r.headers["www-authenticate"] == "Bearer"
                ok = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token",
                                                         "X-Forwarded-For": "203.0.113.9"})
                assert ok.status_code == 200 and 'pbx_queue_waiting{queue="t1-sales",tenant="t1"}' in ok.text
        finally:
            await publisher.close()


async def test_metrics_export_clients_traffic_refusals_queues_and_bridge_stats() -> None:
    bridge_stats: dict[str, Any] = {
        "ami": {"connected": True, "events_queued": 1234, "connects": 1, "disconnects": 0},
        "engine": {"deltas": 99},
    }
    ingest = Ingest()
    async with EmbeddedRedis() as redis:
        publisher = BusPublisher(redis.url)
        await publisher.start()
        app = create_app(
            verifier=StaticTokens.parse(TOKENS),
            redis_url=redis.url,
            stats_provider=lambda: bridge_stats,
            thresholds=lambda tenant: {f"{tenant}-support": {"sl_pct": {"amber": 90, "red": 70}}},
        )
        async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=GUARD_S) as http:
            await publisher.publish(ingest.feed(fixture_bytes("members")))
            await publisher.flush()
            # Nobody follows t1 yet: the per-queue gauges come from the bus snapshot.
            text = (await http.get("/metrics")).text
            assert metric_value(text, 'pbx_queue_waiting{queue="t1-sales",tenant="t1"}') == 0
            assert 'pbx_web_clients{tenant="t1"}' not in text  # t1 is not followed yet

            s = _StackView(base, publisher)
            assert (await refused(s, "token=bad"))[0] == 4401
            async with wallboard(s, "token=ta") as wb:
                snap = await wb.until(lambda m: m["type"] == "snapshot")
                assert snap["thresholds"] == {"t1-support": {"sl_pct": {"amber": 90, "red": 70}}}
                deltas = ingest.feed(fixture_bytes("status_busy"))
                await publisher.publish(deltas)
                await wb.until(lambda m: m["type"] == "delta" and len(wb.deltas) == len(deltas))
                resp = await http.get("/metrics")
                assert resp.headers["content-type"].startswith("text/plain")
                text = resp.text
                assert metric_value(text, 'pbx_web_clients{tenant="t1"}') == 1
                assert metric_value(text, "pbx_web_deltas_out_total") == len(deltas)
                assert metric_value(text, "pbx_web_bus_entries_total") == len(deltas)
                assert metric_value(text, 'pbx_web_refused_total{code="4401"}') == 1
                assert metric_value(text, 'pbx_web_resyncs_total{reason="overflow"}') == 0
                assert metric_value(text, 'pbx_web_stream_lag_seconds{tenant="t1"}') >= 0
                # The live board mid-status_busy: callers wait in t1-support right now.
                waiting = len(wb.board["queues"]["t1-support"]["waiting"]) if wb.board else -1
                assert metric_value(text, 'pbx_queue_waiting{queue="t1-support",tenant="t1"}') == waiting
                members = wb.board["queues"]["t1-sales"]["members"] if wb.board else []
                available = sum(1 for m in members if m["state"] == "available")
                assert (
                    metric_value(text, 'pbx_queue_available_agents{queue="t1-sales",tenant="t1"}')
                    == available
                )
                assert 'pbx_queue_longest_wait_seconds{queue="t1-support",tenant="t1"}' in text
                assert metric_value(text, "pbx_ami_connected") == 1
                assert metric_value(text, "pbx_ami_events_total") == 1234
                assert metric_value(text, "pbx_engine_deltas_total") == 99
            bridge_stats["ami"]["connected"] = False
            text = (await http.get("/metrics")).text
            assert metric_value(text, "pbx_ami_connected") == 0
            assert (await http.get("/healthz")).json() == {"status": "ok"}  # the web app still serves
        await publisher.close()


class _StackView:
    """Just enough of test_websocket.Stack for its refused()/wallboard() helpers."""

    def __init__(self, http: str, publisher: BusPublisher) -> None:
        self.http = http

    def ws_url(self, query: str) -> str:
        return self.http.replace("http://", "ws://") + "/ws/wallboard?" + query


async def run_command(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbx_core", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(GUARD_S):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_the_web_command_serves_from_the_configured_redis(tmp_path: Path) -> None:
    async with EmbeddedRedis() as redis:
        port = free_port()
        env = {
            **os.environ,
            "PBX_REDIS_URL": redis.url,
            "PBX_HTTP_HOST": "127.0.0.1",
            "PBX_HTTP_PORT": str(port),
            "PBX_WALLBOARD_TOKENS": "ta=t1",
            "PBX_DATABASE_URL": f"sqlite:///{tmp_path / 'pbx.db'}",
        }
        # A database without the schema is refused, naming the command that fixes it.
        code, out = await run_command("web", env=env)
        assert code == 2 and "run `pbx-core db upgrade` first" in out, out
        code, out = await run_command("db", "upgrade", env=env)
        assert code == 0, out
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbx_core", "web", env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=GUARD_S) as http:
                health: httpx.Response | None = None

                async def poll() -> bool:
                    nonlocal health
                    try:
                        health = await http.get("/healthz")
                    except httpx.TransportError:
                        return False
                    return True

                async with asyncio.timeout(GUARD_S):
                    while proc.returncode is None and not await poll():  # noqa: ASYNC110 - polls a process
                        await asyncio.sleep(0.05)
                assert health is not None, (await proc.stdout.read()).decode() if proc.stdout else ""
                assert health.status_code == 200 and health.json() == {"status": "ok"}
                assert (await http.get("/")).status_code == 200
                # The provisioning API is served by the same process, in its JSON error shape.
                api = await http.get("/api/v1/tenants")
                assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"
                assert (await http.get("/api/v1/openapi.json")).json()["info"]["title"]
        finally:
            proc.terminate()
            async with asyncio.timeout(GUARD_S):
                await proc.wait()

        # Without PBX_REDIS_URL it refuses to start rather than serve an empty private bus.
        env.pop("PBX_REDIS_URL")
        code, out = await run_command("web", env=env)
        assert code == 2 and "PBX_REDIS_URL" in out


@pytest.mark.parametrize(
    ("text", "token", "tenant", "queues"),
    [
        ("a=t1", "a", "t1", None),
        (" a = t1 : support , t1-sales ; b=t2", "a", "t1", frozenset({"t1-support", "t1-sales"})),
        ("a=t1;b=t2:x", "b", "t2", frozenset({"t2-x"})),
    ],
)
async def test_static_tokens_parse_the_configured_format(
    text: str, token: str, tenant: str, queues: frozenset[str] | None
) -> None:
    scope = await StaticTokens.parse(text).verify(token)
    assert scope is not None and scope.tenant == tenant and scope.queues == queues
    assert await StaticTokens.parse(text).verify(token + "x") is None


@pytest.mark.parametrize("bad", ["a", "=t1", "a=T1", "a=t1;a=t2", "a=t1:t2-support", "a=bad-slug"])
def test_static_tokens_refuse_a_bad_configuration(bad: str) -> None:
    from pbx_core.config import ConfigError

    with pytest.raises(ConfigError):
        StaticTokens.parse(bad)
