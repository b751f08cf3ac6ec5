"""The scale-out shape, as separate processes: one `pbx-core bridge` writing the Redis bus and
two independent `pbx-core web` processes reading it and sharing one provisioning database. A
tenant and a supervisor key created through the REST API of one replica open the wallboard on
both, and a caller who joins on the (simulated) Asterisk appears on either."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from pbx_core.bus import EmbeddedRedis
from pbx_core.simulator.server import SimMember, SimulatedAsterisk
from tests.conftest import ROOT

HANG_GUARD_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbx_core", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        return await proc.wait()


async def board_via(port: int, token: str) -> dict[str, object]:
    """The first snapshot a wallboard gets from the web process on ``port`` (retrying while it
    starts)."""
    while True:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws/wallboard?token={token}") as ws:
                return json.loads(await ws.recv())  # type: ignore[no-any-return]
        except (OSError, websockets.InvalidStatus):
            await asyncio.sleep(0.1)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    async with EmbeddedRedis() as server:
        yield server.url


async def cli(*args: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbx_core", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def wait_for_api(client: httpx.AsyncClient) -> None:
    while True:
        try:
            await client.get("/openapi.json")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.1)


async def test_one_bridge_feeds_two_independent_web_processes(redis_url: str, tmp_path: Path) -> None:
    async with SimulatedAsterisk() as ast, asyncio.timeout(HANG_GUARD_S):
        ast.add_member("acme-support", SimMember("Local/acme-201@agents/n", "Anna"), emit=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
        env |= {
            "PBX_AMI_URL": ast.url_text,
            "PBX_REDIS_URL": redis_url,
            "PBX_DATABASE_URL": f"sqlite:///{tmp_path / 'pbx.db'}",
            "PBX_WALLBOARD_TOKENS": "wall-other=other",
        }
        await cli("db", "upgrade", env=env)
        reseller_key = next(w for w in (await cli("keys", "create", "--reseller", "ACME", env=env)).split()
                            if w.startswith("pbx_"))
        web_ports = [free_port(), free_port()]
        procs = [await start("bridge", "--summary-every", "0", env=env)]
        procs += [await start("web", "--port", str(p), env=env) for p in web_ports]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web_ports[0]}/api/v1") as api:
                await wait_for_api(api)
                as_reseller = {"Authorization": f"Bearer {reseller_key}"}
                r = await api.put("/tenants/acme", json={"name": "Acme"}, headers=as_reseller)
                assert r.status_code == 201, r.text
                r = await api.post("/tenants/acme/api-keys", headers=as_reseller,
                                   json={"name": "wallboard", "role": "supervisor"})
                assert r.status_code == 201, r.text
                supervisor_key = r.json()["key"]
            while ast.logins < 1:  # noqa: ASYNC110 - the simulator has no login signal
                await asyncio.sleep(0.05)
            caller = ast.join("acme-support", "0612345678", "Zoë de Boer")
            for port in web_ports:
                while True:
                    snap = await board_via(port, supervisor_key)
                    queue = snap["board"]["queues"].get("acme-support")  # type: ignore[index]
                    if queue and queue["waiting"]:
                        break
                    await asyncio.sleep(0.1)
                assert [c["number"] for c in queue["waiting"]] == ["0612345678"]
                assert queue["waiting"][0]["name"] == "Zoë de Boer"
                assert [m["name"] for m in queue["members"]] == ["Anna"]
                # Another tenant's token sees none of it.
                other = await board_via(port, "wall-other")
                assert other["board"]["queues"] == {}  # type: ignore[index]
            assert caller.uniqueid
        finally:
            codes = [await stop(p) for p in procs]
        assert codes == [0, 0, 0], [
            (await p.stderr.read()).decode()[-500:] for p in procs if p.stderr is not None
        ]


async def test_a_key_revoked_on_one_web_process_closes_its_screen_on_the_other(
    redis_url: str, tmp_path: Path
) -> None:
    """Two `pbx-core web` processes, no re-check due during the test (PBX_WALLBOARD_RECHECK_S):
    only the revocation notice through Redis can close the screen on the other process."""
    async with asyncio.timeout(HANG_GUARD_S):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
        env |= {
            "PBX_REDIS_URL": redis_url,
            "PBX_DATABASE_URL": f"sqlite:///{tmp_path / 'pbx.db'}",
            "PBX_WALLBOARD_RECHECK_S": "3600",
        }
        await cli("db", "upgrade", env=env)
        reseller_key = next(w for w in (await cli("keys", "create", "--reseller", "ACME", env=env)).split()
                            if w.startswith("pbx_"))
        a, b = free_port(), free_port()
        procs = [await start("web", "--port", str(p), env=env) for p in (a, b)]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{a}/api/v1",
                                         headers={"Authorization": f"Bearer {reseller_key}"}) as api:
                await wait_for_api(api)
                assert (await api.put("/tenants/acme", json={"name": "Acme"})).status_code == 201
                r = await api.post("/tenants/acme/api-keys", json={"name": "tv", "role": "supervisor"})
                assert r.status_code == 201, r.text
                key, key_id = r.json()["key"], r.json()["id"]
                await board_via(b, key)  # B is up and accepts the key
                async with websockets.connect(f"ws://127.0.0.1:{b}/ws/wallboard?token={key}") as ws:
                    assert json.loads(await ws.recv())["type"] == "snapshot"
                    assert (await api.delete(f"/tenants/acme/api-keys/{key_id}")).status_code == 204
                    with pytest.raises(websockets.ConnectionClosed):
                        while True:  # hang guard: the test's timeout
                            await ws.recv()
                    assert ws.close_code == 4401
        finally:
            codes = [await stop(p) for p in procs]
        stderr = [(await p.stderr.read()).decode() for p in procs if p.stderr is not None]
        assert codes == [0, 0], [e[-500:] for e in stderr]
        assert not any("Traceback" in e for e in stderr), stderr
