"""Release checks against a real Asterisk 22 (see conftest.py for how to enable them).

Each test asserts something the simulator cannot prove: that a real Asterisk accepts our Login
and refuses a bad one the way we expect, that its EventList replies parse into the same
snapshot the engine resyncs from, that the engine's view equals Asterisk's own QueueStatus, and
that member changes made with AMI actions reach the engine through the events alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions
from pbx_core.ami.errors import AmiAuthError, AmiError
from pbx_core.bridge import Bridge
from pbx_core.config import AmiUrl
from pbx_core.domain.events import DEVICE_INVALID, DEVICE_UNAVAILABLE, StatusSnapshot, status_snapshot
from pbx_core.domain.queue_state import Delta, LiveState
from tests import conftest

from .conftest import LIVE_URL, SKIP_REASON, LiveTenant

pytestmark = [pytest.mark.live, pytest.mark.skipif(not LIVE_URL, reason=SKIP_REASON)]

HANG_GUARD_S = 30.0  # a real network and a real PBX: generous, and only ever a hang guard
OPTIONS = AmiOptions(ping_interval_s=0.5, ping_timeout_s=3.0, action_timeout_s=10.0)


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    await conftest.wait_until(predicate, what, limit_s=HANG_GUARD_S, poll_s=0.05)


@pytest.fixture
async def client(ami_url: AmiUrl) -> AsyncIterator[AmiClient]:
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ami_url, OPTIONS) as c:
        yield c


class Collect:
    def __init__(self) -> None:
        self.deltas: list[Delta] = []

    async def publish(self, deltas: list[Delta]) -> None:
        self.deltas.extend(deltas)


@pytest.fixture
async def bridge(ami_url: AmiUrl, live_tenant: LiveTenant) -> AsyncIterator[tuple[Bridge, Collect]]:
    """A bridge started after the throwaway tenant exists (its first resync sees the queue)."""
    sink = Collect()
    b = Bridge(ami_url, ami=OPTIONS, sinks=[sink], tick_s=0.5)
    task = asyncio.create_task(b.run())
    try:
        await wait_until(lambda: b.engine.counters.snapshots >= 1 or task.done(), "the first resync")
        if task.done():
            task.result()  # a refused login: raise it here, with its message
        yield b, sink
    finally:
        b.stop()
        await asyncio.wait_for(task, HANG_GUARD_S)


async def queue_status(client: AmiClient) -> StatusSnapshot:
    items = await client.listing({"Action": "QueueStatus"})
    return status_snapshot([dict(i) for i in items], ts=0.0, requested_ts=0.0)


def engine_view(state: LiveState) -> dict[str, Any]:
    return {
        q.name: {
            "members": sorted(
                (m.interface, m.paused, m.paused_reason) for m in q.members.values() if m.logged_in
            ),
            "waiting": [c.uniqueid for c in q.callers.values()],
        }
        for q in state.queues.values()
        if q.members or q.callers or q.strategy
    }


def asterisk_view(snapshot: StatusSnapshot) -> dict[str, Any]:
    return {
        info.queue: {
            "members": sorted((m.interface, m.paused, m.paused_reason) for m in info.members),
            "waiting": [e.uniqueid for e in info.entries],
        }
        for info in snapshot.queues
    }


# --------------------------------------------------------------------------- connection


async def test_login_banner_and_ping(client: AmiClient) -> None:
    assert client.connected
    proto = client._protocol
    assert proto is not None and (proto.decoder.banner or "").startswith("Asterisk Call Manager/")
    reply = await client.action({"Action": "Ping"})
    assert reply.success and reply["Ping"] == "Pong"


async def test_wrong_secret_is_refused_clearly(ami_url: AmiUrl) -> None:
    wrong = replace(ami_url, secret=ami_url.secret + "-not-" + secrets.token_hex(4))
    async with asyncio.timeout(HANG_GUARD_S):
        with pytest.raises(AmiAuthError) as err:
            await AmiClient(wrong, OPTIONS).connect()
    assert repr(ami_url.username) in str(err.value) and f"{ami_url.host}:{ami_url.port}" in str(err.value)


async def test_watchdog_stays_quiet_on_a_healthy_connection(ami_url: AmiUrl) -> None:
    client = AmiClient(ami_url, OPTIONS)
    runner = asyncio.create_task(client.run(fail_fast_auth=True))
    try:
        await wait_until(lambda: client.connected, "login")
        # A few ping intervals (the watchdog pings only after silence: a busy PBX may need none).
        await asyncio.sleep(OPTIONS.ping_interval_s * 6)
        c = client.counters
        assert (c.ping_timeouts, c.disconnects, c.connects) == (0, 0, 1), client.stats()
        assert c.connected
    finally:
        await client.close()
        await asyncio.wait_for(runner, HANG_GUARD_S)


# --------------------------------------------------------------------------- listings and resync


async def test_queue_listings_parse_into_a_status_snapshot(
    client: AmiClient, live_tenant: LiveTenant
) -> None:
    snapshot = await queue_status(client)
    summary = await client.listing({"Action": "QueueSummary"})
    by_name = {info.queue: info for info in snapshot.queues}
    mine = by_name[live_tenant.queue]
    assert [m.interface for m in mine.members] == [live_tenant.member]
    assert mine.strategy == "rrmemory" and mine.service_level_s == 30  # QueueConfig defaults
    assert sorted(by_name) == sorted(s["Queue"] for s in summary)
    for info in snapshot.queues:
        assert info.strategy, info.queue
        assert info.service_level_s >= 0
    for s in summary:
        info = by_name[s["Queue"]]
        # Asterisk's LoggedIn leaves out unreachable devices.
        reachable = [m for m in info.members if m.status not in (DEVICE_INVALID, DEVICE_UNAVAILABLE)]
        if int(s["Callers"]) == len(info.entries):  # not racing a live caller
            assert int(s["LoggedIn"]) == len(reachable), (s, info)


async def test_engine_view_equals_asterisks_own_queue_status(
    bridge: tuple[Bridge, Collect], live_tenant: LiveTenant
) -> None:
    b, sink = bridge
    assert any(d.type == "queue.resynced" for d in sink.deltas)
    assert live_tenant.queue in b.state.queues
    # Callers come and go on a live PBX: compare when two reads of Asterisk agree.
    for _ in range(5):
        before = asterisk_view(await queue_status(b.client))
        await asyncio.sleep(1.0)  # let the engine apply whatever events came with it
        after = asterisk_view(await queue_status(b.client))
        if before == after:
            break
    else:
        pytest.skip("the PBX is too busy to find a quiet moment for an exact comparison")
    assert engine_view(b.state) == after
    assert after[live_tenant.queue]["members"] == [(live_tenant.member, False, "")]


# --------------------------------------------------------------------------- member round trip


async def test_member_add_pause_remove_round_trips_through_events(
    bridge: tuple[Bridge, Collect], live_tenant: LiveTenant
) -> None:
    b, sink = bridge
    live_queue = live_tenant.queue
    iface = f"Local/pbxcoretest{secrets.token_hex(3)}@pbx-core-test/n"
    reason = "pbx-core live test"

    def member() -> Any:
        q = b.state.queues.get(live_queue)
        return q.members.get(iface) if q else None

    try:
        await b.client.action(
            {
                "Action": "QueueAdd",
                "Queue": live_queue,
                "Interface": iface,
                "MemberName": "pbx-core test",
                "Paused": "false",
            }
        )
        await wait_until(lambda: member() is not None and member().logged_in, "QueueMemberAdded")
        assert not member().paused

        await b.client.action(
            {
                "Action": "QueuePause",
                "Queue": live_queue,
                "Interface": iface,
                "Paused": "true",
                "Reason": reason,
            }
        )
        await wait_until(lambda: member().paused, "QueueMemberPause (paused)")
        assert member().paused_reason == reason

        await b.client.action(
            {"Action": "QueuePause", "Queue": live_queue, "Interface": iface, "Paused": "false"}
        )
        await wait_until(lambda: not member().paused, "QueueMemberPause (unpaused)")

        await b.client.action({"Action": "QueueRemove", "Queue": live_queue, "Interface": iface})
        # Off the member list, as Asterisk's QueueStatus has it (not kept as "logged out").
        await wait_until(lambda: member() is None, "QueueMemberRemoved")
    finally:
        if b.client.connected:
            with contextlib.suppress(AmiError):  # already removed: the normal case
                await b.client.action({"Action": "QueueRemove", "Queue": live_queue, "Interface": iface})

    mine = [d.type for d in sink.deltas if d.data.get("interface") == iface]
    for kind in ("agent.added", "agent.paused", "agent.unpaused", "agent.removed"):
        assert kind in mine, (kind, mine)
    assert b.stats()["ami"]["ping_timeouts"] == 0
