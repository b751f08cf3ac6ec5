"""`pbx-core demo` as a newcomer runs it: one process, nothing set up. It must print working
wallboard URLs, serve a live board with history (the warm-up) over the real websocket protocol,
keep tenants apart, and stop cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from tests.conftest import ROOT

HANG_GUARD_S = 60
THRESHOLDS = {"t1-support": {"sl_pct": {"amber": 90, "red": 75}, "waiting": {"amber": 1, "red": 2}}}


@pytest.fixture
async def demo() -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env["PBX_WALLBOARD_THRESHOLDS"] = json.dumps(THRESHOLDS)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbx_core", "demo", "--port", "0", "--tenants", "2", "--warmup", "30",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            while len(urls) < 3:
                line = (await proc.stdout.readline()).decode()
                assert line, "demo exited before printing its wallboard URLs and API key"
                if m := re.search(r"\b(t\d)\s+(http://\S+/\?token=(\S+))", line):
                    urls[m.group(1)] = m.group(2)
                if m := re.search(r"reseller key\s+(pbx_\S+)", line):
                    urls["reseller_key"] = m.group(1)
        yield proc, urls
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


def ws_url(page_url: str, **params: str) -> str:
    base, _, query = page_url.partition("/?")
    extra = "".join(f"&{k}={v}" for k, v in params.items())
    return base.replace("http://", "ws://") + "/ws/wallboard?" + query + extra


async def test_demo_serves_a_live_board_per_tenant_and_stops_on_ctrl_c(
    demo: tuple[asyncio.subprocess.Process, dict[str, str]],
) -> None:
    proc, urls = demo
    assert set(urls) == {"t1", "t2", "reseller_key"}
    async with asyncio.timeout(HANG_GUARD_S):
        async with httpx.AsyncClient() as http:
            page = await http.get(urls["t1"])
            assert page.status_code == 200 and "<html" in page.text
            base = urls["t1"].split("/?")[0]
            assert (await http.get(base + "/healthz")).json() == {"status": "ok"}
            metrics = (await http.get(base + "/metrics")).text  # from this host: allowed
            assert "pbx_web_redis_up 1.0" in metrics and "pbx_ami_connected 1.0" in metrics

        async with websockets.connect(ws_url(urls["t1"])) as ws:
            snapshot = json.loads(await ws.recv())
            assert snapshot["type"] == "snapshot" and snapshot["tenant"] == "t1"
            assert snapshot["thresholds"] == THRESHOLDS  # from PBX_WALLBOARD_THRESHOLDS
            # The board shows the seeded tenant's names, not its slugs and codes.
            labels = snapshot["labels"]
            assert labels["tenant"] == "Acme Bakery"
            assert labels["queues"]["t1-support"] == "Customer support"
            assert labels["pause_reasons"]["lunch"] == "Lunch"
            assert isinstance(snapshot["pbx_time"], float | int)
            queues = snapshot["board"]["queues"]
            assert set(queues) == {"t1-support", "t1-sales"}
            # The warm-up played 30 minutes of a morning: there is history on the board.
            assert sum(q["stats"]["offered"] for q in queues.values()) > 10
            # The callback worker runs in the demo: its counts are part of the board.
            assert snapshot["features"]["callbacks"] is True
            assert all(q["members"] for q in queues.values())
            # And it is live: deltas follow with consecutive sequence numbers, the worker's
            # per-queue callback counts among them (unless the snapshot already has them).
            seq = snapshot["seq"]
            summarised = {n for n, q in queues.items() if "callbacks" in q}
            received = 0
            while received < 3 or not summarised:
                msg = json.loads(await ws.recv())
                if msg["type"] == "delta":
                    assert msg["seq"] == seq + 1 and msg["delta"]["tenant"] == "t1"
                    seq = msg["seq"]
                    received += 1
                    delta = msg["delta"]
                    if delta["type"] == "callbacks.summary":
                        assert {"pending", "in_progress", "overdue", "on_time_pct"} <= set(delta["data"])
                        summarised.add(delta["queue"])

        # t1's token asks for t2's board: refused, and nothing of t2 is sent.
        async with websockets.connect(ws_url(urls["t1"], tenant="t2")) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403

    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(HANG_GUARD_S):
        assert await proc.wait() == 0


async def test_demo_api_key_provisions_and_applies_to_the_simulated_pbx(
    demo: tuple[asyncio.subprocess.Process, dict[str, str]],
) -> None:
    """The printed reseller key works at once: the demo's tenants are there (seeded through the
    API), and an apply renders the tenant, writes it and reloads the simulated Asterisk, whose
    agents already are the provisioned members."""
    _, urls = demo
    base = urls["t1"].split("/?")[0] + "/api/v1"
    auth = {"Authorization": f"Bearer {urls['reseller_key']}"}
    async with asyncio.timeout(HANG_GUARD_S), httpx.AsyncClient(base_url=base, headers=auth) as api:
        tenants = (await api.get("/tenants")).json()
        assert [t["slug"] for t in tenants["items"]] == ["t1", "t2"]
        queues = (await api.get("/tenants/t1/queues")).json()
        assert sorted(q["asterisk_name"] for q in queues["items"]) == ["t1-sales", "t1-support"]
        applied = await api.post("/tenants/t1/apply")
        assert applied.status_code == 200, applied.text
        body = applied.json()
        assert body["status"] == "ok" and "t1/pjsip.conf" in body["changed"]
        assert set(body["reloads"]) >= {"res_pjsip.so", "app_queue.so", "pbx_config.so"}
        assert body["members"]["added"] == [] and body["members"]["removed"] == []
        again = (await api.post("/tenants/t1/apply")).json()
        assert again["status"] == "unchanged" and again["reloads"] == []
        # Callbacks: the demo's queues call back abandoned callers (and callers who pressed 1):
        # booked in SQL by the worker, listed with their source and state.
        callbacks = (await api.get("/tenants/t1/callbacks", params={"limit": 200})).json()
        assert callbacks["total"] > 0
        assert {c["source"] for c in callbacks["items"]} <= {"abandoned", "queue_offer"}
        assert all(c["status"] in {"pending", "overdue", "dialling", "completed", "no_answer", "busy",
                                   "failed", "cancelled", "expired"} for c in callbacks["items"])
        # Another reseller's view: a made-up key is refused, not shown the demo's tenants.
        refused = await api.get("/tenants", headers={"Authorization": "Bearer pbx_0000_nope"})
        assert refused.status_code == 401
