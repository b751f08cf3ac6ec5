"""The wallboard websocket over real sockets: a private Redis, the real bus publisher, the app
under uvicorn on a free port, and websocket clients that follow wallboard/connection.js's rules."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pbx_core.bus import BusPublisher, EmbeddedRedis
from pbx_core.domain.board import Board, apply_delta, delta_dict, tenant_board
from pbx_core.domain.queue_state import Delta
from pbx_core.ingest import Ingest
from pbx_core.web import StaticTokens, create_app, serving
from pbx_core.web.hub import Hub
from tests import conftest
from tests.conftest import fixture_bytes

TOKENS = "ta=t1;tb=t2;tq=t1:support"
GUARD_S = 30  # hang guard only; nothing here measures time


def normalised(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


class HasWsUrl(Protocol):
    def ws_url(self, query: str) -> str: ...


@dataclass
class Stack:
    redis: EmbeddedRedis
    publisher: BusPublisher
    app: Starlette
    http: str

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    def ws_url(self, query: str) -> str:
        return self.http.replace("http://", "ws://") + "/ws/wallboard?" + query

    async def publish(self, deltas: list[Delta]) -> None:
        await self.publisher.publish(deltas)
        async with asyncio.timeout(GUARD_S):
            await self.publisher.flush()


@contextlib.asynccontextmanager
async def stack(**app_options: Any) -> AsyncIterator[Stack]:
    async with EmbeddedRedis() as redis:
        publisher = BusPublisher(redis.url)
        await publisher.start()
        app = create_app(verifier=StaticTokens.parse(TOKENS), redis_url=redis.url, **app_options)
        try:
            async with serving(app) as http:
                yield Stack(redis, publisher, app, http)
        finally:
            await publisher.close()


async def until(predicate: Callable[[], bool], what: str) -> None:
    await conftest.wait_until(predicate, what, limit_s=GUARD_S)


@dataclass
class Wallboard:
    """A client that applies the protocol exactly as connection.js does, but strictly: a gap is a
    test failure, not a resync (unless the test asked for one)."""

    ws: ClientConnection
    board: Board | None = None
    seq: int | None = None
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    deltas: list[dict[str, Any]] = field(default_factory=list)
    pings: int = 0
    awaiting_snapshot: bool = True

    async def step(self) -> dict[str, Any]:
        async with asyncio.timeout(GUARD_S):
            msg: dict[str, Any] = json.loads(await self.ws.recv())
        assert isinstance(msg.get("server_time"), float | int)
        if msg["type"] == "snapshot":
            assert self.seq is None or msg["seq"] >= self.seq, "a snapshot never goes back in sequence"
            self.board, self.seq, self.awaiting_snapshot = msg["board"], msg["seq"], False
            self.snapshots.append(msg)
        elif msg["type"] == "delta":
            if not self.awaiting_snapshot:
                assert self.board is not None and self.seq is not None
                assert msg["seq"] == self.seq + 1, f"gap: {self.seq} then {msg['seq']}"
                self.seq = msg["seq"]
                apply_delta(self.board, copy.deepcopy(msg["delta"]))  # the board keeps references
                self.deltas.append(msg)
        elif msg["type"] == "ping":
            self.pings += 1
            await self.ws.send(json.dumps({"type": "pong"}))
        return msg

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            msg = await self.step()
            if predicate(msg):
                return msg

    async def resync(self) -> None:
        self.awaiting_snapshot = True
        await self.ws.send(json.dumps({"type": "resync"}))


@contextlib.asynccontextmanager
async def wallboard(s: HasWsUrl, query: str, **kwargs: Any) -> AsyncIterator[Wallboard]:
    async with connect(s.ws_url(query), proxy=None, open_timeout=GUARD_S, **kwargs) as ws:
        yield Wallboard(ws)


async def refused(s: HasWsUrl, query: str) -> tuple[int, list[Any]]:
    """Connect, collect everything the server sends until it closes: (close code, messages)."""
    async with (
        asyncio.timeout(GUARD_S),
        connect(s.ws_url(query), proxy=None) as ws,
    ):
        got: list[Any] = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                got.append(await ws.recv())
        assert ws.close_code is not None
        return ws.close_code, got


def fixture_deltas(ingest: Ingest, name: str) -> list[Delta]:
    deltas = ingest.feed(fixture_bytes(name))
    assert deltas
    return deltas


def renamed(data: dict[str, Any]) -> dict[str, Any]:
    renamed: dict[str, Any] = json.loads(json.dumps(data).replace('"t1-', '"t2-').replace('"t1"', '"t2"'))
    return renamed


def padded(i: int, size: int = 16384) -> Delta:
    """A big, harmless delta: it replaces t1-support's stats, so the board stays small."""
    return Delta("queue.stats", "t1", "t1-support", 1_700_000_000.0 + i, {"n": i, "pad": "x" * size})


def support_n(board: Board | None) -> int | None:
    if board is None or "t1-support" not in board["queues"]:
        return None
    n: int | None = board["queues"]["t1-support"]["stats"].get("n")
    return n


# --------------------------------------------------------------------------- snapshot + deltas


async def test_snapshot_then_ordered_deltas_equal_the_engine() -> None:
    ingest = Ingest()
    async with stack() as s:
        await s.publish(fixture_deltas(ingest, "answered"))
        before = normalised(tenant_board(ingest.state, "t1"))
        async with wallboard(s, "token=ta") as all_q, wallboard(s, "token=tq") as support:
            first = await all_q.step()
            assert first["type"] == "snapshot" and first["tenant"] == "t1" and first["seq"] == 0
            assert first["board"] == before and "thresholds" in first
            # No compression: the server refused the permessage-deflate the client offered.
            assert all_q.ws.response is not None
            assert "Sec-WebSocket-Extensions" not in all_q.ws.response.headers

            only = await support.step()
            assert only["type"] == "snapshot" and set(only["board"]["queues"]) == {"t1-support"}

            deltas = [
                d for name in ("members", "ringnoanswer", "status_busy") for d in fixture_deltas(ingest, name)
            ]
            await s.publish(deltas)
            want = [normalised(delta_dict(d)) for d in deltas]
            while len(all_q.deltas) < len(want):
                await all_q.step()
            assert [m["delta"] for m in all_q.deltas] == want
            assert [m["seq"] for m in all_q.deltas] == list(range(1, len(want) + 1))
            assert all_q.board == normalised(tenant_board(ingest.state, "t1"))

            # The queue-scoped token sees only its queue's deltas, with its own consecutive seqs.
            want_support = [d for d in want if d["queue"] == "t1-support"]
            assert 0 < len(want_support) < len(want)
            while len(support.deltas) < len(want_support):
                await support.step()
            assert [m["delta"] for m in support.deltas] == want_support
            assert [m["seq"] for m in support.deltas] == list(range(1, len(want_support) + 1))
            engine = normalised(tenant_board(ingest.state, "t1"))
            assert support.board == {"tenant": "t1", "queues": {"t1-support": engine["queues"]["t1-support"]}}


async def test_a_client_that_asks_for_a_resync_gets_a_fresh_consistent_snapshot() -> None:
    ingest = Ingest()
    async with stack() as s:
        await s.publish(fixture_deltas(ingest, "members"))
        async with wallboard(s, "token=ta&queues=t1-support,sales") as wb:
            await wb.until(lambda m: m["type"] == "snapshot")
            await s.publish(fixture_deltas(ingest, "answered"))
            await wb.until(lambda m: m["type"] == "delta")
            seen = wb.seq
            await wb.resync()  # what connection.js does when it sees a gap
            again = await wb.until(lambda m: m["type"] == "snapshot")
            assert seen is not None and again["seq"] >= seen
            assert len(wb.snapshots) == 2
            # Deltas after the resync continue from the snapshot's seq, and the board converges.
            deltas = fixture_deltas(ingest, "abandoned")
            await s.publish(deltas)
            last = normalised(delta_dict(deltas[-1]))
            await wb.until(lambda m: m["type"] == "delta" and m["delta"] == last)
            assert wb.board == normalised(tenant_board(ingest.state, "t1"))
            assert s.hub.stats.resyncs["client"] == 1


async def test_a_slow_client_does_not_delay_a_fast_one_and_gets_a_resync_on_overflow() -> None:
    async with stack(client_queue_max=64) as s:
        await s.publish([padded(0)])
        # The slow client's socket has a tiny receive buffer and its library stops reading after
        # one queued frame; the test never calls recv() on it until the end.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(s.http.rsplit(":", 1)[1])))
        async with (
            wallboard(s, "token=ta", sock=sock, max_queue=1, max_size=None) as slow,
            wallboard(s, "token=ta", max_size=None) as fast,
        ):
            await fast.until(lambda m: m["type"] == "snapshot")
            await until(lambda: s.hub.stats.snapshots_out >= 2, "both snapshots to be sent")
            n = 1
            # Batches smaller than the client queue, each fully read by the fast client before
            # the next: the fast client can never overflow, the slow one must.
            while s.hub.stats.resyncs["overflow"] == 0:
                assert n < 300 * 32, "the slow client never overflowed"
                await s.publish([padded(i) for i in range(n, n + 32)])
                n += 32
                await fast.until(
                    lambda m, last=n - 1: m["type"] == "delta" and m["delta"]["data"]["n"] == last
                )
            assert len(fast.snapshots) == 1, "the fast client was never resynced"
            assert [m["delta"]["data"]["n"] for m in fast.deltas] == list(range(1, n))
            assert s.hub.stats.dropped_messages > 0

            # Now the slow client reads: a valid stream (strictly checked) that ends with the
            # same board as everyone else.
            await s.publish([padded(n, size=10)])
            # The last delta may reach it inside the resync snapshot, which is built only when
            # its socket drains: wait for the board, not for a particular message.
            await slow.until(lambda m: support_n(slow.board) == n)
            assert len(slow.snapshots) >= 2  # connect + the overflow resync
            assert len(slow.deltas) < n  # it did not get every delta: it skipped via a snapshot
            await fast.until(lambda m: m["type"] == "delta" and m["delta"]["data"]["n"] == n)
            assert slow.board == fast.board == normalised(s.publisher.boards()["t1"])


# --------------------------------------------------------------------------- auth


async def test_unknown_and_missing_tokens_are_closed_4401_without_data() -> None:
    async with stack() as s:
        await s.publish(fixture_deltas(Ingest(), "answered"))
        assert await refused(s, "token=nope") == (4401, [])
        assert await refused(s, "") == (4401, [])
        assert await refused(s, "token=") == (4401, [])
        assert s.hub.stats.refused[4401] == 3 and s.hub.client_count == 0


async def test_a_token_never_yields_another_tenants_board() -> None:
    ingest = Ingest()
    async with stack() as s:
        t1 = fixture_deltas(ingest, "members") + fixture_deltas(ingest, "status_busy")
        # The same traffic for tenant t2: rename the queues.
        t2 = [Delta(d.type, "t2", d.queue.replace("t1-", "t2-"), d.ts, renamed(d.data)) for d in t1]
        await s.publish(t1 + t2)
        assert await refused(s, "token=tb&queues=t1-support") == (4403, [])
        assert await refused(s, "token=tb&tenant=t1") == (4403, [])
        assert await refused(s, "token=tq&queues=sales") == (4403, [])  # outside the token's queues
        assert await refused(s, "token=tq&queues=t1-support,t1-sales") == (4403, [])
        assert s.hub.stats.refused[4403] == 4

        async with wallboard(s, "token=tb") as wb:
            snap = await wb.until(lambda m: m["type"] == "snapshot")
            assert snap["tenant"] == "t2" and set(snap["board"]["queues"]) == {"t2-support", "t2-sales"}
            await s.publish(t1 + t2)
            await wb.until(lambda m: m["type"] == "delta" and len(wb.deltas) == len(t2))
            assert {m["delta"]["tenant"] for m in wb.deltas} == {"t2"}
            sent = json.dumps([wb.snapshots, wb.deltas])
            assert '"t1"' not in sent and "t1-" not in sent
            assert set(s.hub.feeds) == {"t2"}  # t1's stream is not even read for this client


# --------------------------------------------------------------------------- liveness


async def test_pings_flow_and_shutdown_closes_sockets_at_once() -> None:
    async with EmbeddedRedis() as redis:
        app = create_app(verifier=StaticTokens.parse(TOKENS), redis_url=redis.url, ping_interval_s=0.05)
        async with serving(app) as http:
            url = http.replace("http://", "ws://") + "/ws/wallboard?token=ta"
            async with connect(url, proxy=None) as ws1, connect(url, proxy=None):
                wb = Wallboard(ws1)
                await wb.until(lambda m: m["type"] == "snapshot")
                await wb.until(lambda m: m["type"] == "ping")
                await wb.until(lambda m: m["type"] == "ping")
                hub: Hub = app.state.hub
                assert hub.client_count == 2 and hub.stats.pings_out >= 2
            # The second client was never read from; the receive loops notice both disconnects.
            await until(lambda: hub.client_count == 0 and not hub.feeds, "the hub to drop both clients")

        app = create_app(verifier=StaticTokens.parse(TOKENS), redis_url=redis.url)
        async with connect_after_serving(app) as (ws, server_exit):
            await server_exit()  # server shutdown while the client is connected and idle
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(GUARD_S):
                    while True:
                        await ws.recv()
            assert ws.close_code == 1012  # "service restart": the browser reconnects with backoff


@contextlib.asynccontextmanager
async def connect_after_serving(
    app: Starlette,
) -> AsyncIterator[tuple[ClientConnection, Callable[[], Any]]]:
    stop: asyncio.Event = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stopped = asyncio.Event()

    async def serve() -> None:
        async with serving(app) as http:
            ready.set_result(http)
            await stop.wait()
        stopped.set()

    task = asyncio.create_task(serve())
    http = await ready

    async def server_exit() -> None:
        stop.set()
        async with asyncio.timeout(GUARD_S):  # hang guard: shutdown must not wait for clients
            await stopped.wait()

    try:
        async with connect(http.replace("http://", "ws://") + "/ws/wallboard?token=ta", proxy=None) as ws:
            await Wallboard(ws).until(lambda m: m["type"] == "snapshot")
            yield ws, server_exit
    finally:
        stop.set()
        await task


async def test_messages_carry_the_pbx_clock_learnt_from_the_deltas() -> None:
    """The recordings' events are stamped weeks before today: ``pbx_time`` follows their clock
    (from the snapshot's offset, then from each entry), while ``server_time`` stays ours."""
    ingest = Ingest()
    first, rest = fixture_deltas(ingest, "abandoned"), fixture_deltas(ingest, "ringnoanswer")
    async with stack(ping_interval_s=0.2) as s:
        await s.publish(first)
        async with wallboard(s, "token=ta") as wb:
            snap = await wb.until(lambda m: m["type"] == "snapshot")
            skew = snap["server_time"] - first[-1].ts
            assert skew > 3600, "the recording must be older than an hour for this test to mean anything"
            # Nothing happens on that PBX after its last event here, so its clock reads just after it.
            assert 0 <= snap["pbx_time"] - first[-1].ts < 10
            await s.publish(rest)
            delta = await wb.until(lambda m: m["type"] == "delta" and m["delta"]["ts"] == rest[-1].ts)
            assert 0 <= delta["pbx_time"] - rest[-1].ts < 10
            ping = await wb.until(lambda m: m["type"] == "ping")
            assert 0 <= ping["pbx_time"] - rest[-1].ts < 10
            assert ping["server_time"] - ping["pbx_time"] > 3600


async def test_each_delta_is_encoded_once_per_tenant_and_scope_and_shared_in_order() -> None:
    ingest = Ingest()
    async with stack() as s:
        await s.publish(fixture_deltas(ingest, "answered"))
        async with contextlib.AsyncExitStack() as exits:
            # 24 whole-tenant boards of t1, 8 scoped to t1-support, 4 of t2 (who gets none of t1's).
            whole = [await exits.enter_async_context(wallboard(s, "token=ta")) for _ in range(24)]
            scoped = [await exits.enter_async_context(wallboard(s, "token=tq")) for _ in range(8)]
            other = [await exits.enter_async_context(wallboard(s, "token=tb")) for _ in range(4)]
            boards = whole + scoped + other
            firsts = [await wb.until(lambda m: m["type"] == "snapshot") for wb in boards]
            assert {f["seq"] for f in firsts[:24]} == {0} and {f["seq"] for f in firsts[24:32]} == {0}
            frames0, out0 = s.hub.stats.delta_frames, s.hub.stats.deltas_out

            deltas = [
                d for name in ("members", "ringnoanswer", "status_busy") for d in fixture_deltas(ingest, name)
            ]
            await s.publish(deltas)
            want = [normalised(delta_dict(d)) for d in deltas]
            want_support = [d for d in want if d["queue"] == "t1-support"]
            assert 0 < len(want_support) < len(want)
            for wb in whole:
                while len(wb.deltas) < len(want):
                    await wb.step()  # strict: a gap fails the test
            for wb in scoped:
                while len(wb.deltas) < len(want_support):
                    await wb.step()

            # One encoding per delta for the whole-tenant stream, one more per support delta for
            # the scoped stream; none for t2, whose clients were not offered anything.
            assert s.hub.stats.delta_frames - frames0 == len(want) + len(want_support)
            assert s.hub.stats.deltas_out - out0 == 24 * len(want) + 8 * len(want_support)
            for wb in whole:
                assert [m["delta"] for m in wb.deltas] == want
                assert [m["seq"] for m in wb.deltas] == list(range(1, len(want) + 1))
            for wb in scoped:
                assert [m["delta"] for m in wb.deltas] == want_support
            # The very same frame: every client of a stream got identical messages, times included.
            assert len({json.dumps(wb.deltas) for wb in whole}) == 1
            assert len({json.dumps(wb.deltas) for wb in scoped}) == 1
            assert all(not wb.deltas for wb in other)
            assert whole[0].board == normalised(tenant_board(ingest.state, "t1"))

            # A client that joins a live stream starts at that stream's seq, and follows it.
            async with wallboard(s, "token=ta") as late:
                snap = await late.until(lambda m: m["type"] == "snapshot")
                assert snap["seq"] == len(want)
                more = fixture_deltas(ingest, "abandoned")
                await s.publish(more)
                while len(late.deltas) < len(more):
                    await late.step()
                assert [m["seq"] for m in late.deltas] == list(
                    range(len(want) + 1, len(want) + len(more) + 1)
                )
                assert late.board == normalised(tenant_board(ingest.state, "t1"))
