"""The AMI client over real TCP against the simulated Asterisk: login, watchdog, reconnect,
actions and EventLists, bad frames, listeners, and the bounded engine queue."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from pbx_core.ami.backoff import backoff_delay
from pbx_core.ami.client import AmiClient, AmiOptions, EngineItem
from pbx_core.ami.errors import AmiActionError, AmiAuthError, AmiConnectError, AmiTimeout
from pbx_core.ami.framing import Frame
from pbx_core.bridge import Engine
from pbx_core.config import AmiUrl
from pbx_core.domain.events import StatusSnapshot
from pbx_core.simulator.server import (
    AmiSession,
    SimCaller,
    SimMember,
    SimulatedAsterisk,
    caller_join_event,
    noise_event,
)
from tests import conftest

HANG_GUARD_S = 15.0  # only ever a guard against a hang, never a measurement
QUEUE = "t1-support"

# Short intervals so the watchdog and reconnect paths run in a test's lifetime.
FAST = AmiOptions(
    connect_timeout_s=5.0,
    ping_interval_s=0.2,
    ping_timeout_s=0.5,
    action_timeout_s=5.0,
    reconnect_min_s=0.05,
    reconnect_max_s=0.2,
)


@pytest.fixture
async def ast() -> AsyncIterator[SimulatedAsterisk]:
    async with SimulatedAsterisk() as server:
        yield server


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    await conftest.wait_until(predicate, what, limit_s=HANG_GUARD_S)


async def next_event(client: AmiClient, name: str) -> Frame:
    """The next queued event frame called ``name`` (skipping other frames and snapshots)."""
    async with asyncio.timeout(HANG_GUARD_S):
        while True:
            item = await client.events.get()
            if not isinstance(item, StatusSnapshot) and item.get("Event") == name:
                return item


async def next_snapshot(client: AmiClient) -> StatusSnapshot:
    async with asyncio.timeout(HANG_GUARD_S):
        while True:
            item = await client.events.get()
            if isinstance(item, StatusSnapshot):
                return item


def join_bytes(uniqueid: str, number: str, name: str = "") -> bytes:
    caller = SimCaller(uniqueid, f"Local/wait@patience-{uniqueid};1", number, name, 1795338000.0)
    return caller_join_event(QUEUE, caller, 1, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- backoff


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    for attempt in range(40):
        ceiling = min(30.0, 0.5 * 2**attempt)
        draws = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in draws), attempt
        assert len(set(draws)) > 150, "no jitter"
    assert max(backoff_delay(1000, 0.5, 30.0, rng) for _ in range(100)) <= 30.0
    assert min(backoff_delay(10, 0.5, 30.0, rng) for _ in range(100)) >= 15.0


# --------------------------------------------------------------------------- login


async def test_login_then_ping(ast: SimulatedAsterisk) -> None:
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, FAST) as client:
        assert client.connected
        reply = await client.action({"Action": "Ping"})
        assert reply["Ping"] == "Pong"
        assert ast.logins == 1
        assert client.stats()["connects"] == 1
    assert not client.connected


async def test_wrong_secret_is_a_prompt_clear_error(ast: SimulatedAsterisk) -> None:
    client = AmiClient(ast.wrong_url(), FAST)
    async with asyncio.timeout(HANG_GUARD_S):
        with pytest.raises(AmiAuthError) as err:
            await client.connect()
    message = str(err.value)
    assert "'pbx'" in message and f"127.0.0.1:{ast.port}" in message
    assert "Authentication failed" in message
    assert "wrong" not in message  # never echo the secret
    assert client.counters.auth_failures == 1 and not client.connected


async def test_wrong_secret_fails_run_fast_when_asked(ast: SimulatedAsterisk) -> None:
    client = AmiClient(ast.wrong_url(), FAST)
    async with asyncio.timeout(HANG_GUARD_S):
        with pytest.raises(AmiAuthError):
            await client.run(fail_fast_auth=True)


async def test_connection_refused_is_a_connect_error() -> None:
    port = free_port()
    client = AmiClient(AmiUrl("pbx", "s3cret", "127.0.0.1", port), FAST)
    async with asyncio.timeout(HANG_GUARD_S):
        with pytest.raises(AmiConnectError, match=f"127.0.0.1:{port}"):
            await client.connect()
    assert client.counters.connect_failures == 1


# --------------------------------------------------------------------------- watchdog + reconnect


async def test_watchdog_aborts_a_silent_socket_and_run_reconnects(ast: SimulatedAsterisk) -> None:
    ast.answer_pings = False  # the socket stays open but nothing comes back: half-open
    client = AmiClient(ast.url, FAST)
    runner = asyncio.create_task(client.run())
    try:
        await wait_until(lambda: client.counters.ping_timeouts >= 1, "a ping timeout")
        await wait_until(lambda: ast.logins >= 2, "a second login")
        assert client.counters.disconnects >= 1
        assert "half-open" in client.counters.last_error
    finally:
        await client.close()
        await asyncio.wait_for(runner, HANG_GUARD_S)


async def test_watchdog_is_quiet_on_a_healthy_connection(ast: SimulatedAsterisk) -> None:
    client = AmiClient(ast.url, FAST)
    runner = asyncio.create_task(client.run())
    try:
        await wait_until(lambda: bool(ast.live), "a session")
        session = ast.live[0]
        await wait_until(lambda: client.counters.pings >= 4, "four watchdog pings")
        # Each watchdog ping reached the server and got its answer (one more Ping clocks the resync).
        assert sum(a.get("Action") == "Ping" for a in session.actions) >= client.counters.pings
        assert client.counters.ping_timeouts == 0
        assert client.counters.connects == 1 and ast.logins == 1
    finally:
        await client.close()
        await asyncio.wait_for(runner, HANG_GUARD_S)


async def test_run_reconnects_after_the_server_drops_us(ast: SimulatedAsterisk) -> None:
    client = AmiClient(ast.url, FAST)
    runner = asyncio.create_task(client.run())
    try:
        await wait_until(lambda: client.connected and ast.logins == 1, "first login")
        ast.drop()
        await wait_until(lambda: ast.logins == 2 and client.connected, "second login")
        assert client.counters.disconnects == 1 and client.counters.connects == 2
        assert (await client.action({"Action": "Ping"}))["Ping"] == "Pong"
    finally:
        await client.close()
        await asyncio.wait_for(runner, HANG_GUARD_S)
    assert runner.done() and runner.exception() is None


# --------------------------------------------------------------------------- actions


async def test_eventlist_actions_return_their_items(ast: SimulatedAsterisk) -> None:
    ast.add_member(QUEUE, SimMember("Local/agent1@agents/n", "agent1"))
    ast.add_member(QUEUE, SimMember("Local/agent2@agents/n", "agent2", paused=True, reason="lunch"))
    ast.join(QUEUE, "0201234567", "Zoë Özdemir-Müller", waited_s=42)
    ast.queue("t1-sales", "ringall", 60)
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, FAST) as client:
        status = await client.listing({"Action": "QueueStatus"})
        kinds = [m["Event"] for m in status]
        assert kinds == ["QueueParams", "QueueMember", "QueueMember", "QueueEntry", "QueueParams"]
        entry = status[3]
        assert entry["CallerIDName"] == "Zoë Özdemir-Müller" and int(entry["Wait"]) >= 42
        assert status[2]["PausedReason"] == "lunch"

        summary = await client.listing({"Action": "QueueSummary", "Queue": QUEUE})
        assert [(m["Queue"], m["LoggedIn"], m["Available"], m["Callers"]) for m in summary] == [
            (QUEUE, "2", "1", "1")
        ]
        # A plain action on the same connection still works after the lists.
        reply = await client.action(
            {
                "Action": "QueuePause",
                "Queue": QUEUE,
                "Interface": "Local/agent1@agents/n",
                "Paused": "true",
                "Reason": "training",
            }
        )
        assert reply.success
        assert ast.queues[QUEUE].members["Local/agent1@agents/n"].reason == "training"


async def test_error_reply_to_an_eventlist_action_fails_fast(ast: SimulatedAsterisk) -> None:
    def refuse(session: AmiSession, action: dict[str, str]) -> None:
        session.reply(action, "Error", ("Message", "Permission denied"))

    ast.handlers["queuesummary"] = refuse
    slow = AmiOptions(action_timeout_s=60.0)  # waiting for the timeout would trip the hang guard
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, slow) as client:
        with pytest.raises(AmiActionError, match=r"QueueSummary.*Permission denied") as err:
            await client.listing({"Action": "QueueSummary"})
        assert err.value.action == "QueueSummary"
        with pytest.raises(AmiActionError, match="Invalid/unknown command"):
            await client.action({"Action": "NoSuchThing"})


async def test_an_unanswered_action_times_out_naming_it(ast: SimulatedAsterisk) -> None:
    ast.ignore.add("QueueSummary")
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, FAST) as client:
        with pytest.raises(AmiTimeout, match=r"'QueueSummary'.*within 0\.3s"):
            await client.listing({"Action": "QueueSummary"}, timeout=0.3)
        assert (await client.action({"Action": "Ping"}))["Ping"] == "Pong"
        assert client.connected


async def test_header_injection_is_refused(ast: SimulatedAsterisk) -> None:
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, FAST) as client:
        with pytest.raises(ValueError, match="line break"):
            await client.action({"Action": "QueuePause", "Reason": "x\r\nAction: Logoff"})
        assert (await client.action({"Action": "Ping"}))["Ping"] == "Pong"


# --------------------------------------------------------------------------- bad input


async def test_malformed_and_oversized_frames_are_counted_never_fatal(ast: SimulatedAsterisk) -> None:
    options = AmiOptions(max_frame_bytes=4096)
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, options) as client:
        before = client.stats()
        huge = b"Event: QueueCallerJoin\r\nQueue: t1-support\r\nX: " + b"x" * 10_000
        ast.emit(
            b"this is not a header line\r\nnor is this\r\n\r\n",  # malformed
            huge + b"\r\n\r\n",  # oversized, complete in one piece
            huge + b"y" * 10_000,  # oversized and still growing ...
            b"z" * 10_000 + b"\r\n\r\n",  # ... until it ends
            noise_event(1),
            join_bytes("100.1", "0201234567", "Zoë Özdemir-Müller"),
        )
        frame = await next_event(client, "QueueCallerJoin")
        assert frame["Uniqueid"] == "100.1"
        assert frame["CallerIDName"] == "Zoë Özdemir-Müller"  # UTF-8, not ASCII-with-losses
        after = client.stats()
        assert after["malformed"] - before["malformed"] == 1
        assert after["oversized"] - before["oversized"] == 2
        assert after["noise"] - before["noise"] == 1
        assert client.connected and client.counters.internal_errors == 0
        assert (await client.action({"Action": "Ping"}))["Ping"] == "Pong"


async def test_a_frame_cut_by_a_dropped_connection_is_counted_and_dropped(ast: SimulatedAsterisk) -> None:
    client = AmiClient(ast.url, FAST)
    runner = asyncio.create_task(client.run())
    try:
        await wait_until(lambda: client.connected and ast.logins == 1, "first login")
        whole = join_bytes("200.1", "0201111111")
        ast.emit(whole[: len(whole) // 2])
        await wait_until(lambda: client.stats()["bytes"] > 0 and _pending(client) > 0, "half a frame")
        ast.drop()
        await wait_until(lambda: ast.logins == 2 and client.connected, "reconnect")
        assert client.counters.truncated == 1
        ast.emit(join_bytes("200.2", "0202222222"))
        frame = await next_event(client, "QueueCallerJoin")
        assert frame["Uniqueid"] == "200.2"  # the cut frame never surfaced, not even glued to the next
    finally:
        await client.close()
        await asyncio.wait_for(runner, HANG_GUARD_S)


def _pending(client: AmiClient) -> int:
    proto = client._protocol  # test-only peek: has the half frame arrived yet?
    return proto.decoder.pending_bytes if proto is not None else 0


async def test_a_raising_listener_does_not_kill_the_connection(ast: SimulatedAsterisk) -> None:
    seen: list[str] = []

    def bad_listener(frame: Frame) -> None:
        seen.append(frame.get("Uniqueid", ""))
        raise RuntimeError("listener bug")

    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, FAST) as client:
        client.add_listener(bad_listener)
        ast.emit(join_bytes("300.1", "0201"), join_bytes("300.2", "0202"))
        assert (await next_event(client, "QueueCallerJoin"))["Uniqueid"] == "300.1"
        assert (await next_event(client, "QueueCallerJoin"))["Uniqueid"] == "300.2"
        assert seen[-2:] == ["300.1", "300.2"]
        assert client.counters.internal_errors >= 2
        assert client.connected
        assert (await client.action({"Action": "Ping"}))["Ping"] == "Pong"


async def test_a_refused_event_filter_is_harmless(ast: SimulatedAsterisk) -> None:
    ast.allow_filter = False
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, FAST) as client:
        assert client.counters.filter_denied == 1
        ast.emit(join_bytes("400.1", "0201"))
        assert (await next_event(client, "QueueCallerJoin"))["Uniqueid"] == "400.1"
    sent = [a for a in ast.sessions[0].actions if a.get("Action") == "Filter"]
    assert len(sent) == 1 and sent[0]["Filter"].startswith("Event: (")


# --------------------------------------------------------------------------- bounded engine queue


async def test_engine_queue_overflow_drops_counts_then_resyncs(ast: SimulatedAsterisk) -> None:
    ast.add_member(QUEUE, SimMember("Local/agent1@agents/n", "agent1"))
    client = AmiClient(ast.url, AmiOptions(queue_size=6))
    engine = Engine(client.events)
    async with asyncio.timeout(HANG_GUARD_S), client:
        first = await next_snapshot(client)  # the resync after login; nothing joined yet
        engine.process([first], first.ts)
        callers = [ast.join(QUEUE, f"02000000{i:02d}", waited_s=i) for i in range(20)]
        await wait_until(
            lambda: client.counters.events_queued + client.counters.dropped_overflow >= 20,
            "all 20 joins received",
        )
        assert client.counters.dropped_overflow == 20 - 6
        assert client.events.qsize() == 6
        # The engine catches up; the client then resyncs, and the snapshot repairs the state.
        runner = asyncio.create_task(engine.run())
        try:
            await wait_until(lambda: engine.counters.snapshots >= 2, "the overflow resync applied")
        finally:
            engine.stop()
            await runner
    q = engine.state.queues[QUEUE]
    assert list(q.callers) == [c.uniqueid for c in callers]
    assert q.counters.offered == 20  # 6 from events + 14 found by the resync, none twice
    assert client.counters.resyncs >= 2


def _items(queue: asyncio.Queue[EngineItem]) -> list[EngineItem]:
    out: list[EngineItem] = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_snapshot_keeps_its_place_in_the_stream(ast: SimulatedAsterisk) -> None:
    """Events before the QueueStatus listing stay before its snapshot, events after stay after."""
    ast.join(QUEUE, "0201", waited_s=5)
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, FAST) as client:
        await next_snapshot(client)
        ast.emit(join_bytes("500.1", "0201"))
        await wait_until(lambda: client.events.qsize() >= 1, "the join")
        assert client.request_resync()
        await wait_until(lambda: client.counters.resyncs >= 2, "second resync")
        ast.emit(join_bytes("500.2", "0202"))
        await wait_until(lambda: client.events.qsize() >= 3, "the second join")
        kinds = [
            "snapshot" if isinstance(i, StatusSnapshot) else i.get("Uniqueid") for i in _items(client.events)
        ]
        assert kinds == ["500.1", "snapshot", "500.2"]
