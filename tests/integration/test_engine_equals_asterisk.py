"""The engine's view of every queue equals Asterisk's own QueueStatus, over real TCP against the
simulated Asterisk: members removed with QueueRemove (live or while the bridge was away) leave
the member list, and a queue that leaves queues.conf leaves the engine, the Redis snapshot and
the wallboard, learnt from the ``Reload`` event app_queue's reload sends (the deletion itself
sends none)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions
from pbx_core.asterisk.apply import apply_tenant
from pbx_core.bridge import Bridge
from pbx_core.bus import BusPublisher, BusReader, EmbeddedRedis, connect
from pbx_core.domain.board import apply_delta, delta_dict, empty_board, tenant_board
from pbx_core.domain.queue_state import Delta, LiveState
from pbx_core.simulator.server import SimMember, SimulatedAsterisk
from pbx_core.web import StaticTokens, create_app, serving
from tests import conftest
from tests.conftest import ROOT
from tests.integration.test_apply import BASE_FILES, tenant
from tests.integration.test_websocket import wallboard

HANG_GUARD_S = 20.0
SUPPORT, SALES = "t1-support", "t1-sales"
ANNA, BRAM = "Local/anna@agents/n", "Local/bram@agents/n"
FAST = AmiOptions(ping_interval_s=0.5, ping_timeout_s=2.0, action_timeout_s=5.0,
                  reconnect_min_s=0.05, reconnect_max_s=0.2)  # fmt: skip
ACTIONS = AmiOptions(resync_on_connect=False, event_filter=False)

View = dict[str, dict[str, Any]]


class Collect:
    def __init__(self) -> None:
        self.deltas: list[Delta] = []

    async def publish(self, deltas: list[Delta]) -> None:
        self.deltas.extend(deltas)


@pytest.fixture
async def ast() -> AsyncIterator[SimulatedAsterisk]:
    async with SimulatedAsterisk() as server:
        yield server


@pytest.fixture
async def bridge(ast: SimulatedAsterisk) -> AsyncIterator[tuple[Bridge, Collect]]:
    sink = Collect()
    b = Bridge(ast.url, ami=FAST, sinks=[sink], tick_s=0.2)
    task = asyncio.create_task(b.run())
    try:
        yield b, sink
    finally:
        b.stop()
        await asyncio.wait_for(task, HANG_GUARD_S)


async def wait_until(predicate: Any, what: str) -> None:
    await conftest.wait_until(predicate, what, limit_s=HANG_GUARD_S)


async def asterisk_view(ast: SimulatedAsterisk) -> View:
    """What Asterisk says, asked over AMI the way an operator would: QueueStatus."""
    async with AmiClient(ast.url, ACTIONS) as ami:
        items = await ami.listing({"Action": "QueueStatus"})
    view: View = {}
    for item in items:
        queue = item.get("Queue")
        if not queue:
            continue
        q = view.setdefault(queue, {"members": {}, "callers": []})
        if item.get("Event") == "QueueMember":
            q["members"][item["Location"]] = item.get("Paused") == "1"
        elif item.get("Event") == "QueueEntry":
            q["callers"].append(item["Uniqueid"])
    return view


def engine_view(state: LiveState) -> View:
    return {
        q.name: {
            "members": {m.interface: m.paused for m in q.members.values()},
            "callers": list(q.callers),
        }
        for q in state.queues.values()
    }


def board_of(deltas: list[Delta], tenant: str) -> dict[str, Any]:
    board = empty_board(tenant)
    for d in deltas:
        if d.tenant == tenant:
            apply_delta(board, delta_dict(d))
    return board


async def test_queue_remove_takes_the_member_off_the_engine_and_the_board(
    ast: SimulatedAsterisk, bridge: tuple[Bridge, Collect]
) -> None:
    b, sink = bridge
    ast.queue(SUPPORT)
    ast.queue(SALES, "ringall", 60)
    await wait_until(lambda: b.engine.counters.snapshots >= 1, "the first resync")
    async with AmiClient(ast.url, ACTIONS) as ami:
        for queue in (SUPPORT, SALES):
            for iface, name in ((ANNA, "Anna"), (BRAM, "Bram")):
                add = {"Action": "QueueAdd", "Queue": queue, "Interface": iface, "MemberName": name}
                await ami.action(add)
        await ami.action({"Action": "QueuePause", "Queue": SALES, "Interface": BRAM, "Paused": "true",
                          "Reason": "lunch"})  # fmt: skip
        await ami.action({"Action": "QueueRemove", "Queue": SUPPORT, "Interface": ANNA})
    await wait_until(lambda: ANNA not in b.state.queues[SUPPORT].members, "QueueMemberRemoved applied")
    await wait_until(lambda: b.state.queues[SALES].members[BRAM].paused, "the pause applied")

    assert engine_view(b.state) == await asterisk_view(ast)
    assert set(b.state.queues[SUPPORT].members) == {BRAM}
    [removed] = [d for d in sink.deltas if d.type == "agent.removed"]
    assert (removed.queue, removed.data["interface"], removed.data["state"]) == (SUPPORT, ANNA, "logged_out")
    # The board rebuilt from the deltas (what the bus and every wallboard hold) agrees.
    board = board_of(sink.deltas, "t1")
    assert [m["interface"] for m in board["queues"][SUPPORT]["members"]] == [BRAM]
    assert board == tenant_board(b.state, "t1")


async def test_a_member_removed_while_the_bridge_was_away_is_gone_after_the_resync(
    ast: SimulatedAsterisk, bridge: tuple[Bridge, Collect]
) -> None:
    b, sink = bridge
    ast.add_member(SUPPORT, SimMember(ANNA, "Anna"), emit=False)
    ast.add_member(SUPPORT, SimMember(BRAM, "Bram"), emit=False)
    await wait_until(lambda: b.engine.counters.snapshots >= 1, "the first resync")
    assert set(b.state.queues[SUPPORT].members) == {ANNA, BRAM}

    ast.drop()
    ast.remove_member(SUPPORT, ANNA, emit=False)  # the QueueMemberRemoved event is never seen
    await wait_until(lambda: ast.logins == 2 and b.engine.counters.snapshots >= 2, "reconnect + resync")

    assert engine_view(b.state) == await asterisk_view(ast)
    assert [d.data["interface"] for d in sink.deltas if d.type == "agent.removed"] == [ANNA]
    assert board_of(sink.deltas, "t1") == tenant_board(b.state, "t1")


# --------------------------------------------------------------------------- queues leave queues.conf


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """A directory playing /etc/asterisk, with the repository's base files."""
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    for name in BASE_FILES:
        shutil.copyfile(ROOT / "asterisk-config" / name, etc / name)
    return etc


async def test_the_simulator_sends_reload_events_as_asterisk_22_does(etc: Path) -> None:
    """main/loader.c publishes ``Reload`` (class system) after every ast_module_reload, with the
    module as asked for (``All`` for a reload of everything) and the numeric result."""
    async with SimulatedAsterisk(config_dir=etc) as ast:
        frames: list[bytes] = []
        ast.taps.append(frames.append)
        async with AmiClient(ast.url, ACTIONS) as ami:
            await ami.action({"Action": "Command", "Command": "module reload app_queue.so nonesuch.so"})
            await ami.action({"Action": "Reload", "Module": "app_queue"})
            ast.fail_next_reload("pbx_config.so")
            await ami.action({"Action": "Reload"}, check=False)
            await ami.action({"Action": "Command", "Command": "dialplan reload"})  # pbx_config's own
    reloads = [f.decode() for f in frames if f.startswith(b"Event: Reload\r\n")]
    fields = [dict(line.split(": ", 1) for line in r.strip().split("\r\n")) for r in reloads]
    assert [(f["Module"], f["Status"]) for f in fields] == [
        ("app_queue.so", "0"), ("nonesuch.so", "2"), ("app_queue", "0"), ("All", "3")
    ]  # fmt: skip
    assert all(f["Privilege"] == "system,all" and float(f["Timestamp"]) > 0 for f in fields)


async def test_a_queue_removed_from_queues_conf_leaves_engine_snapshot_and_wallboard(etc: Path) -> None:
    async with (
        SimulatedAsterisk(config_dir=etc) as ast,
        EmbeddedRedis() as redis,
        AmiClient(ast.url, ACTIONS) as ami,
    ):
        publisher = BusPublisher(redis.url)
        await publisher.start()
        b = Bridge(ast.url, ami=FAST, sinks=[publisher], tick_s=0.2)
        task = asyncio.create_task(b.run())
        app = create_app(verifier=StaticTokens.parse("ta=acme"), redis_url=redis.url)
        reader_redis = connect(redis.url)
        try:
            await wait_until(lambda: b.engine.counters.snapshots >= 1, "the first resync")
            result = await apply_tenant(ami, etc / "pbx-core", tenant(queues=("support", "sales")),
                                        all_slugs=["acme"])  # fmt: skip
            assert result.status == "ok", result.error
            # The reload's Reload event made the bridge ask QueueStatus: both queues are live
            # before any call came in.
            await wait_until(lambda: {"acme-support", "acme-sales"} <= set(b.state.queues), "the new queues")
            ast.join("acme-sales", "0201234567", "Zoë")
            ast.add_member("acme-sales", SimMember(ANNA, "Anna"))
            await wait_until(lambda: bool(b.state.queues["acme-sales"].callers), "a caller in sales")

            async with serving(app) as http, wallboard(_Url(http), "token=ta") as wb:
                snap = await wb.until(lambda m: m["type"] == "snapshot")
                assert "acme-sales" in snap["board"]["queues"]

                result = await apply_tenant(ami, etc / "pbx-core", tenant(queues=("support",)),
                                            all_slugs=["acme"])  # fmt: skip
                assert result.status == "ok", result.error
                assert "acme-sales" not in (await asterisk_view(ast))  # gone in Asterisk, no event
                await wait_until(lambda: "acme-sales" not in b.state.queues, "sales leaves the engine")
                assert engine_view(b.state) == await asterisk_view(ast)

                async with asyncio.timeout(HANG_GUARD_S):
                    await publisher.flush()
                want = tenant_board(b.state, "acme")
                assert set(want["queues"]) == {"acme-support"}
                stored = await BusReader(reader_redis, "acme").current()
                assert stored.board == want  # the Redis snapshot + stream
                await wb.until(lambda m: wb.board == want)  # the wallboard, over its websocket
        finally:
            await reader_redis.aclose()
            b.stop()
            await asyncio.wait_for(task, HANG_GUARD_S)
            await publisher.close()


class _Url:
    def __init__(self, http: str) -> None:
        self.http = http

    def ws_url(self, query: str) -> str:
        return self.http.replace("http://", "ws://") + "/ws/wallboard?" + query


def test_no_new_caller_joins_a_queue_deleted_from_queues_conf() -> None:
    """app_queue keeps a deleted queue only for the callers already in it: Queue() cannot join it
    any more, so the simulated traffic sends no new arrivals there."""
    from pbx_core.simulator.traffic import Traffic, TrafficConfig

    world = SimulatedAsterisk()
    traffic = Traffic(world, TrafficConfig(tenants=1, queues=1, agents=1, seed=3))
    traffic.setup()
    [name] = traffic.queue_names
    traffic._arrive(name)
    assert len(world.queues[name].callers) == 1
    world.queues[name].dead = True  # what _queues_loaded does when the file drops it mid-call
    traffic._arrive(name)
    assert len(world.queues[name].callers) == 1
