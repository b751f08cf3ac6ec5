"""A hostile or broken PBX over real TCP cannot grow the bridge without bound.

Each test runs a small AMI server that sends one pathological stream, and asserts on what the
client holds (items, bytes, queued events), never on RSS or time: an EventList reply that never
completes, one that stalls, a flood of other applications' UserEvents, a flood of our own, and a
banner without a line ending. Past a bound the connection is dropped with a log line and a
metric, and the client reconnects (and so resyncs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions
from pbx_core.ami.errors import AmiTimeout
from pbx_core.ami.framing import MAX_BANNER_BYTES
from pbx_core.web.hub import Hub
from pbx_core.web.metrics import Metrics
from tests import conftest
from tests.integration.ami_stub import StubAsterisk, StubSession

HANG_GUARD_S = 20.0
FAST = AmiOptions(
    ping_interval_s=5.0,
    ping_timeout_s=5.0,
    action_timeout_s=10.0,
    reconnect_min_s=0.05,
    reconnect_max_s=0.1,
    event_filter=False,
)
MEMBER = (
    "Event: QueueMember\r\nQueue: t1-support\r\nName: Agent One\r\nLocation: Local/agent1@agents/n\r\n"
    "StateInterface: Custom:agent1\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\n"
    "LastCall: 0\r\nLastPause: 0\r\nLoginTime: 1795338050\r\nInCall: 0\r\nStatus: 1\r\nPaused: 0\r\n"
    "PausedReason: \r\nWrapuptime: 0\r\nActionID: {aid}\r\n\r\n"
)


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    await conftest.wait_until(predicate, what, limit_s=HANG_GUARD_S)


class Watch:
    """Samples what the client holds on every read it makes: the worst case, not a lucky poll."""

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.max_items = 0
        self.max_pending = 0
        self.max_queued = 0

    def sample(self) -> None:
        proto = self.client._protocol
        if proto is not None:
            self.max_items = max(self.max_items, proto.listings.buffered_items)
            self.max_pending = max(self.max_pending, proto.decoder.pending_bytes)
        self.max_queued = max(self.max_queued, self.client.events.qsize())


def watched(client: AmiClient) -> Watch:
    watch = Watch(client)
    original = client._open_and_login

    async def open_and_login():  # type: ignore[no-untyped-def]
        proto = await original()
        received = proto.data_received

        def data_received(data: bytes) -> None:
            received(data)
            watch.sample()

        proto.data_received = data_received  # type: ignore[method-assign]
        return proto

    client._open_and_login = open_and_login  # type: ignore[method-assign]
    return watch


def on_queue_status(answer: Callable[[StubSession, str], Awaitable[None]]):  # type: ignore[no-untyped-def]
    async def on_action(session: StubSession, action: dict[str, str]) -> bool:
        if action.get("Action", "").lower() != "queuestatus":
            return False
        session.reply(action, EventList="start", Message="Queue status will follow")
        session.__dict__.setdefault("task", asyncio.create_task(answer(session, action["ActionID"])))
        return True

    return on_action


async def endless_listing(session: StubSession, aid: str) -> None:
    """QueueMember items for ever, and never the QueueStatusComplete."""
    chunk = MEMBER.format(aid=aid).encode() * 200
    while not session.closed:
        session.send(chunk)
        await session.drain()


async def stalled_listing(session: StubSession, aid: str) -> None:
    """A few items, then nothing: the reply never completes, the connection stays up."""
    session.send(MEMBER.format(aid=aid).encode() * 5)
    await session.drain()


async def run_client(client: AmiClient) -> asyncio.Task[None]:
    return asyncio.create_task(client.run())


async def stop(client: AmiClient, task: asyncio.Task[None]) -> None:
    await client.close()
    await asyncio.wait_for(task, HANG_GUARD_S)


def metric(client: AmiClient, line: str) -> float:
    # The bridge's /metrics collector over this client's stats (no feed: the hub is idle).
    hub = Hub(source=None)  # type: ignore[arg-type]
    text = Metrics(hub, lambda: {"ami": client.stats()}).render({}).decode()
    for row in text.splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line} in /metrics:\n{text}")


async def test_an_eventlist_that_never_completes_is_cut_at_its_bound_and_the_client_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bound = 1000
    async with StubAsterisk(on_action=on_queue_status(endless_listing)) as ast:
        client = AmiClient(ast.url, dataclasses.replace(FAST, max_list_items=bound))
        watch = watched(client)
        task = await run_client(client)
        try:
            await wait_until(lambda: ast.logins >= 3, "two reconnects after the bound was hit")
        finally:
            await stop(client, task)
    assert 0 < watch.max_items <= bound  # the listing grew to its bound and never past it
    assert client.counters.limits_exceeded["listing_items"] >= 2
    assert metric(client, 'pbx_ami_limits_exceeded_total{limit="listing_items"}') >= 2
    assert any("passed 1000 items without completing" in r.message for r in caplog.records)


async def test_a_stalled_eventlist_is_dropped_with_its_action_timeout() -> None:
    options = dataclasses.replace(FAST, action_timeout_s=0.3, resync_on_connect=False)
    async with StubAsterisk(on_action=on_queue_status(stalled_listing)) as ast:
        client = AmiClient(ast.url, options)
        try:
            await client.connect()
            with pytest.raises(AmiTimeout):
                await client.listing({"Action": "QueueStatus"})
            proto = client._protocol
            assert proto is not None and not proto.closed  # an ordinary action: the session stays
            assert (proto.listings.open_count, proto.listings.buffered_items) == (0, 0)
            assert client.counters.listings_dropped == 1
            assert metric(client, "pbx_ami_listings_dropped_total") == 1
        finally:
            await client.close()


async def test_a_resync_that_stalls_is_retried_on_a_fresh_connection() -> None:
    options = dataclasses.replace(FAST, action_timeout_s=0.3)
    async with StubAsterisk(on_action=on_queue_status(stalled_listing)) as ast:
        client = AmiClient(ast.url, options)
        watch = watched(client)
        task = await run_client(client)
        try:
            await wait_until(lambda: ast.logins >= 3, "reconnects after stalled resyncs")
        finally:
            await stop(client, task)
    assert watch.max_items == 5 and client.counters.listings_dropped >= 2


async def test_other_applications_user_events_are_never_queued() -> None:
    async def flood(session: StubSession) -> None:
        theirs = b"".join(
            b"Event: UserEvent\r\nPrivilege: user,all\r\nChannel: PJSIP/x-00000001\r\n"
            b"UserEvent: SomeoneElses\r\nN: %d\r\n\r\n" % i
            for i in range(1000)
        )
        for _ in range(100):  # 100,000 of them
            session.send(theirs)
            await session.drain()
        session.send(b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: PbxCallbackResult\r\n\r\n")

    options = dataclasses.replace(FAST, queue_size=100, user_events=frozenset({"PbxCallbackResult"}))
    async with StubAsterisk(on_login=flood) as ast:
        client = AmiClient(ast.url, options)
        watch = watched(client)
        task = await run_client(client)
        try:
            await wait_until(lambda: client.counters.user_events_ignored == 100_000, "the flood")
            await wait_until(lambda: client.counters.events_queued >= 1, "our own UserEvent")
        finally:
            await stop(client, task)
    assert watch.max_queued <= 2  # our UserEvent and the resync snapshot, nothing of theirs
    assert client.counters.dropped_overflow == 0
    assert metric(client, "pbx_ami_user_events_ignored_total") == 100_000


async def test_a_flood_of_our_own_extra_events_stays_within_the_queue_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def flood(session: StubSession) -> None:
        ours = b"".join(
            b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: PbxCallbackResult\r\n"
            b"CallbackId: %d\r\n\r\n" % i
            for i in range(1000)
        )
        for _ in range(20):
            session.send(ours)
            await session.drain()

    bound = 100
    options = dataclasses.replace(FAST, queue_size=bound, user_events=frozenset({"PbxCallbackResult"}))
    caplog.set_level(logging.WARNING)
    async with StubAsterisk(on_login=flood) as ast:
        client = AmiClient(ast.url, options)
        watch = watched(client)
        task = await run_client(client)
        try:
            await wait_until(lambda: client.counters.dropped_extra >= 20_000 - bound, "the flood")
        finally:
            await stop(client, task)
    # Nobody consumes: the queue holds the bound (plus the one resync snapshot), never more.
    assert watch.max_queued <= bound + 1
    assert client.counters.events_queued <= bound
    assert any("no resync brings back" in r.message for r in caplog.records)


async def test_a_banner_without_a_line_ending_is_cut_and_the_client_tries_again() -> None:
    garbage = b"Asterisk Call Manager/" + b"7" * (4 * 1024 * 1024)
    async with StubAsterisk(banner=garbage) as ast:
        client = AmiClient(ast.url, FAST)
        task = await run_client(client)
        try:
            await wait_until(lambda: len(ast.sessions) >= 3, "two more connection attempts")
            await wait_until(lambda: client.counters.limits_exceeded.get("banner", 0) >= 2, "the bound")
        finally:
            await stop(client, task)
    assert client.counters.connects == 0  # it never took that peer for an Asterisk
    assert "not an AMI banner" in client.counters.last_error
    assert metric(client, 'pbx_ami_limits_exceeded_total{limit="banner"}') >= 2


def test_the_banner_bound_holds_over_many_reads() -> None:
    from pbx_core.ami.framing import FrameDecoder

    dec = FrameDecoder(max_frame_bytes=256 * 1024)
    dec.feed(b"Asterisk Call Manager/")
    for _ in range(1500):  # the reported case: 1,500 reads of 64 KiB
        dec.feed(b"7" * 65536)
        assert dec.pending_bytes <= 256 * 1024 + 3
    assert dec.violation is not None and dec.violation.limit == "banner"
    assert dec.banner == ""
    assert MAX_BANNER_BYTES < 65536


async def test_a_flood_of_reload_events_costs_a_bounded_number_of_queuestatus() -> None:
    """Every app_queue Reload asks for a resync; a PBX sending thousands of them gets at most one
    QueueStatus in flight and one after it, not one each (each would be a listing and a
    snapshot in the unbounded control lane of the engine queue)."""

    async def flood(session: StubSession) -> None:
        reload = b"Event: Reload\r\nPrivilege: system,all\r\nModule: app_queue.so\r\nStatus: 2\r\n\r\n"
        await wait_until(
            lambda: any(a.get("Action") == "QueueStatus" for a in session.actions), "the login's resync"
        )
        for _ in range(10):
            session.send(reload * 100)
            await session.drain()
        session.send(b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: Done\r\n\r\n")

    async with StubAsterisk(on_login=flood) as ast:
        client = AmiClient(ast.url, dataclasses.replace(FAST, user_events=frozenset({"Done"})))
        task = await run_client(client)
        try:
            await wait_until(lambda: client.counters.events_queued >= 1, "the end of the flood")
            await wait_until(lambda: client.counters.resyncs >= 2, "the resyncs to complete")
            await asyncio.sleep(0.2)  # let any further (wrong) resyncs show up
        finally:
            await stop(client, task)
    asked = [a for s in ast.sessions for a in s.actions if a.get("Action") == "QueueStatus"]
    assert 2 <= len(asked) <= 3  # the login's, and one after the flood (perhaps one in between)
