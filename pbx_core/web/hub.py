"""The wallboard hub: one board per followed tenant, fanned out to that tenant's websockets.

Protocol (the browser side is wallboard/connection.js, which is the contract):
  server → client  ``{"type":"snapshot","seq":n,"server_time":t,"pbx_time":p,"tenant":..,"labels":..,
                   "board":..,"thresholds":..,"features":{"callbacks":bool}}``
                   ``{"type":"delta","seq":n+1,"server_time":t,"pbx_time":p,"delta":{v,type,tenant,queue,ts,data}}``
                   ``{"type":"ping","server_time":t,"pbx_time":p}``
                   ``{"type":"callback.ack","ok":bool,"message":..,"id":..,"queue":..,"number":..,"ref":..}``
  client → server  ``{"type":"resync"}`` (it saw a gap) · ``{"type":"pong"}``
                   ``{"type":"callback","queue":full name,"number":..,"ref":..}`` (book a callback)
``server_time`` is this server's wall clock; ``pbx_time`` is the tenant's PBX clock at the moment
of sending (epoch seconds). Every time on the board (``since``, ``joined_at``, ``at``, ``ts``) is on
the PBX's clock, so the page measures durations against ``pbx_time``, run forward locally; a PBX
whose clock is hours off ours still shows waits that tick from 00:00. The feed learns the offset
from each entry (its ``ts`` against the stream id's time) and from the snapshot's
``clock_offset_s``; before it knows any, ``pbx_time`` is our own clock.
``labels`` are the tenant's names for people (``LabelsFor``; ``{}`` without a provisioning
database): the page shows them instead of slugs and pause-reason codes.
Sequence numbers are per stream: the clients of a tenant that see the same queues (all of them,
or one scope) share one, so a delta is one identical frame for all of them. A client's deltas
are each the previous seq + 1, and a snapshot carries the seq of the last delta of its stream
that it already contains (not necessarily 0: the stream may be older than the connection).
Replies (``callback.ack``) carry no seq: they are outside the board's stream and survive a resync.

Fan-out never awaits a socket: a delta frame is encoded once per tenant and scope (``seq``,
times and delta in one string) and that same string is appended to each client's bounded queue;
each client has its own writer task that does the awaiting. A client whose queue overflows
loses the queue and gets a fresh snapshot instead (its board is rebuilt from scratch, so nothing
it missed matters).

The hub's input per tenant is an async iterator of bus ``Snapshot`` / ``Entry`` items
(``BusReader.watch()`` in production), started when the tenant's first client connects and
stopped when its last one leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..bus import Entry, Snapshot
from ..domain.board import Board, apply_delta
from ..tasks import cancel_and_wait
from .auth import CLOSE_UNAUTHORISED
from .ratelog import BAD_CLIENTS

log = logging.getLogger(__name__)

FeedSource = Callable[[str], AsyncIterator[Snapshot | Entry]]
ThresholdsFor = Callable[[str], Mapping[str, Any]]
# A tenant's names for people (the provisioning database's): {"tenant": "Acme Bakery",
# "queues": {full queue name: display name}, "pause_reasons": {code: label}}; parts may be absent.
LabelsFor = Callable[[str], Awaitable[Mapping[str, Any]]]
LABELS_REFRESH_S = 300.0  # a renamed queue reaches open boards within this


class Sender(Protocol):
    """The part of a websocket the hub needs (Starlette's WebSocket has it)."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class HubStats:
    entries_in: int = 0  # bus entries applied to boards
    snapshots_in: int = 0  # bus snapshots loaded (start, reload)
    deltas_out: int = 0  # delta messages queued to clients
    delta_frames: int = 0  # delta frames encoded: one per delta per tenant and scope, not per client
    snapshots_out: int = 0
    pings_out: int = 0
    dropped_messages: int = 0  # discarded from overflowing client queues
    send_errors: int = 0
    resyncs: Counter[str] = field(default_factory=Counter)  # reason -> clients resynced
    refused: Counter[int] = field(default_factory=Counter)  # close code -> connections refused
    revoked: Counter[str] = field(default_factory=Counter)  # why -> open sockets closed 4401
    connects: int = 0


class Client:
    """One websocket: its filter, its sequence counter and its bounded send queue."""

    __slots__ = (
        "_expiry",
        "_wake",
        "close_code",
        "close_reason",
        "closed",
        "expires",
        "feed",
        "key",
        "last_seen",
        "queue",
        "queue_max",
        "queues",
        "replies",
        "resync_reason",
        "sender",
        "tenant",
    )  # fmt: skip

    def __init__(
        self,
        sender: Sender,
        tenant: str,
        queues: frozenset[str] | None,
        *,
        queue_max: int = 1000,
        key: str | None = None,
        expires: float | None = None,
    ) -> None:
        self.sender = sender
        self.tenant = tenant
        self.queues = queues
        # What the grant rests on (auth.Scope): the API key's public id, a token's expiry.
        self.key = key
        self.expires = expires
        # Set by revoke(): the writer sends nothing more and closes the socket with this code.
        self.close_code: int | None = None
        self.close_reason = ""
        self._expiry: asyncio.TimerHandle | None = None
        self.queue_max = queue_max
        self.queue: deque[str] = deque()
        self.replies: deque[str] = deque()  # answers to this client's own requests
        # A client starts owing a snapshot; it is built by the writer once the board is loaded.
        self.resync_reason: str | None = "connect"
        self.feed: TenantFeed | None = None
        self.closed = False
        self.last_seen = time.monotonic()
        self._wake = asyncio.Event()
        self._wake.set()

    def wants(self, queue: str) -> bool:
        return self.queues is None or queue in self.queues

    # ------------------------------------------------------------ called by the hub, never awaits

    def offer_delta(self, frame: str, stats: HubStats) -> None:
        """``frame``: the delta message of this client's stream, shared with its other clients."""
        if self.resync_reason is not None:
            return  # the snapshot it is owed will contain this delta
        if len(self.queue) >= self.queue_max:
            self.resync("overflow", stats)
            return
        self.queue.append(frame)
        stats.deltas_out += 1
        self._wake.set()

    def offer_ping(self, text: str, stats: HubStats) -> None:
        # A busy or resyncing client gets data soon anyway; a ping must never cause an overflow.
        if self.resync_reason is None and not self.queue:
            self.queue.append(text)
            stats.pings_out += 1
            self._wake.set()

    def offer_reply(self, text: str) -> None:
        """An answer to this client's request: not part of the delta stream, so a resync does not
        drop it. A client that sends requests but never reads loses the excess answers."""
        if len(self.replies) < self.queue_max:
            self.replies.append(text)
            self._wake.set()

    def revoke(self, code: int, reason: str, why: str, stats: HubStats) -> None:
        """Close this socket with ``code``: nothing more is sent, queued messages are dropped. The
        writer does the closing, so a close never interleaves with a send in flight."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        if self.feed is not None:
            self.feed.clients.discard(self)  # no more deltas or pings for it (remove() is idempotent)
        stats.revoked[why] += 1
        stats.dropped_messages += len(self.queue)
        self.queue.clear()
        self.replies.clear()
        self._wake.set()

    def resync(self, reason: str, stats: HubStats) -> None:
        if self.resync_reason is None:
            stats.resyncs[reason] += 1
        stats.dropped_messages += len(self.queue)
        self.queue.clear()
        self.resync_reason = reason
        self._wake.set()

    # ------------------------------------------------------------ the writer task

    async def run_writer(self, hub: Hub) -> None:
        """Send queued messages until the socket fails or the task is cancelled."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while True:
                    if self.close_code is not None:
                        await self.sender.close(self.close_code, self.close_reason)
                        return
                    feed = self.feed
                    if self.replies:
                        text = self.replies.popleft()
                    elif self.resync_reason is not None:
                        if feed is None or feed.board is None:
                            break  # not loaded yet: the feed wakes us when it is
                        # Built and dequeued with no await in between, so the snapshot's seq
                        # matches exactly the deltas it contains.
                        text = feed.snapshot_text(self)
                        self.resync_reason = None
                        self.queue.clear()
                        hub.stats.snapshots_out += 1
                    elif self.queue:
                        text = self.queue.popleft()
                    else:
                        break
                    await self.sender.send_text(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket went away; the receive loop notices and cleans up
            hub.stats.send_errors += 1
            log.debug("wallboard send failed: %s", exc)
        finally:
            self.closed = True


class TenantFeed:
    """One tenant's board, kept by applying its bus items, and the clients that follow it."""

    def __init__(self, hub: Hub, tenant: str) -> None:
        self.hub = hub
        self.tenant = tenant
        self.board: Board | None = None
        self.clients: set[Client] = set()
        self.last_id = ""
        self.lag_s = 0.0
        self.clock_offset_s = 0.0  # the PBX's clock - ours (0 until learnt)
        self.labels_json = "{}"
        self.task: asyncio.Task[None] | None = None
        self._version = 0
        self._cache: dict[frozenset[str] | None, tuple[int, str]] = {}
        # The seq of each stream's last delta: key None is the whole tenant, else a queue scope.
        self.seqs: dict[frozenset[str] | None, int] = {}

    async def run(self, source: AsyncIterator[Snapshot | Entry]) -> None:
        stats = self.hub.stats
        try:
            async for item in source:
                if isinstance(item, Snapshot):
                    # Our own copy: the reader may keep its Snapshot object around.
                    self.board = copy.deepcopy(item.board)
                    self.last_id = item.last_id
                    if item.clock_offset_s is not None:
                        self.clock_offset_s = item.clock_offset_s
                    self._version += 1
                    stats.snapshots_in += 1
                    for c in self.clients:
                        c.resync("reload" if c.resync_reason is None else c.resync_reason, stats)
                    continue
                delta = item.delta
                if self.board is None or delta.get("tenant") != self.tenant:
                    continue  # defence in depth: a tenant's feed only ever carries that tenant
                apply_delta(self.board, delta)
                self._version += 1
                self.last_id = item.id
                stats.entries_in += 1
                ms = item.id.partition("-")[0]
                if ms.isdigit():
                    self.lag_s = max(0.0, time.time() - int(ms) / 1000)
                    # The entry was added when the engine made the delta: its id's time is "now"
                    # for the delta's ts. Right for old entries read after a stall, too.
                    ts = delta.get("ts")
                    if isinstance(ts, int | float) and not isinstance(ts, bool):
                        self.clock_offset_s = ts - int(ms) / 1000
                if not self.clients:
                    continue
                self._fan_out(delta, stats)
        finally:
            await _aclose(source)

    def _fan_out(self, delta: Mapping[str, Any], stats: HubStats) -> None:
        """One frame per stream that wants the delta, encoded the first time one of its clients
        needs it, then shared: the per-client work is an append."""
        delta_json = _dumps(delta)
        wall = time.time()
        times = f'"server_time":{wall:.3f},"pbx_time":{self.pbx_time(wall):.3f}'
        queue = delta.get("queue", "")
        frames: dict[frozenset[str] | None, str] = {}
        seqs = self.seqs
        for c in self.clients:
            key = c.queues
            frame = frames.get(key)
            if frame is None:
                if not c.wants(queue):
                    continue
                seq = seqs[key] = seqs.get(key, 0) + 1
                frame = frames[key] = f'{{"type":"delta","seq":{seq},{times},"delta":{delta_json}}}'
                stats.delta_frames += 1
            c.offer_delta(frame, stats)

    def pbx_time(self, wall: float) -> float:
        return wall + self.clock_offset_s

    def snapshot_text(self, client: Client) -> str:
        assert self.board is not None
        key = client.queues
        cached = self._cache.get(key)
        if cached is None or cached[0] != self._version:
            board = self.board
            if key is not None:
                board = {
                    "tenant": self.tenant,
                    "queues": {n: q for n, q in board["queues"].items() if n in key},
                }
            cached = (self._version, _dumps(board))
            self._cache[key] = cached
        thresholds: Mapping[str, Any] = {}
        if self.hub.thresholds is not None:
            thresholds = {
                n: t for n, t in self.hub.thresholds(self.tenant).items() if key is None or n in key
            }
        wall = time.time()
        return (
            f'{{"type":"snapshot","seq":{self.seqs.get(key, 0)},"server_time":{wall:.3f},'
            f'"pbx_time":{self.pbx_time(wall):.3f},'
            f'"tenant":{_dumps(self.tenant)},"labels":{self.labels_json},"thresholds":{_dumps(thresholds)},'
            f'"features":{self.hub.features_json},"board":{cached[1]}}}'
        )


async def _aclose(source: AsyncIterator[Any]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


class Hub:
    """``add(client)`` / ``remove(client)`` from the websocket handler; ``start()`` / ``close()``
    from the app's lifespan."""

    def __init__(
        self,
        source: FeedSource,
        *,
        ping_interval_s: float = 15.0,
        thresholds: ThresholdsFor | None = None,
        features: Mapping[str, Any] | None = None,
        labels: LabelsFor | None = None,
    ) -> None:
        self.source = source
        self.labels = labels
        # What this server can do for a page (e.g. {"callbacks": true}): the page shows only
        # the actions that will work.
        self.features_json = _dumps(dict(features or {}))
        self.ping_interval_s = ping_interval_s
        self.thresholds = thresholds
        self.stats = HubStats()
        self.revoke_code = CLOSE_UNAUTHORISED  # final for the browser: it stops reconnecting
        self.feeds: dict[str, TenantFeed] = {}
        self._writers: dict[Client, asyncio.Task[None]] = {}
        self._pinger: asyncio.Task[None] | None = None

    @property
    def client_count(self) -> int:
        return len(self._writers)

    def clients_per_tenant(self) -> dict[str, int]:
        return {t: len(f.clients) for t, f in self.feeds.items()}

    def start(self) -> None:
        if self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_loop(), name="wallboard-ping")

    def add(self, client: Client) -> None:
        feed = self.feeds.get(client.tenant)
        if feed is None:
            feed = self.feeds[client.tenant] = TenantFeed(self, client.tenant)
            feed.task = asyncio.create_task(self._run_feed(feed), name=f"wallboard-feed-{client.tenant}")
        client.feed = feed
        feed.clients.add(client)
        self.stats.connects += 1
        self._writers[client] = asyncio.create_task(client.run_writer(self), name="wallboard-writer")
        if client.expires is not None:
            # One timer per short-lived token: it closes the socket the moment the token expires.
            client._expiry = asyncio.get_running_loop().call_later(
                max(0.0, client.expires - time.time()), self._expired, client
            )

    def _expired(self, client: Client) -> None:
        client.revoke(self.revoke_code, "token expired", "expired", self.stats)

    def revoke_grants(self, still_valid: Callable[[Client], bool], why: str) -> int:
        """Close (``revoke_code``) every socket for which ``still_valid`` is false; the count."""
        closed = 0
        for client in list(self._writers):
            if client.close_code is None and not still_valid(client):
                client.revoke(self.revoke_code, f"access {why}", why, self.stats)
                closed += 1
        return closed

    def clients(self) -> list[Client]:
        return list(self._writers)

    async def remove(self, client: Client) -> None:
        if client._expiry is not None:
            client._expiry.cancel()
        writer = self._writers.pop(client, None)
        feed = self.feeds.get(client.tenant)
        if feed is not None:
            feed.clients.discard(client)
            if not feed.clients:
                # Nobody is watching: stop reading this tenant's stream.
                del self.feeds[client.tenant]
                await cancel_and_wait([feed.task])
        await cancel_and_wait([writer])

    async def _run_feed(self, feed: TenantFeed) -> None:
        refresher: asyncio.Task[None] | None = None
        try:
            if self.labels is not None:
                # Before the first snapshot, so a board never starts with slugs for names.
                await self._load_labels(feed)
                refresher = asyncio.create_task(self._refresh_labels(feed), name="wallboard-labels")
            await feed.run(self.source(feed.tenant))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("wallboard feed for %s failed", feed.tenant)
        finally:
            await cancel_and_wait([refresher])

    async def _load_labels(self, feed: TenantFeed) -> bool:
        """Fetch the tenant's names; True when they changed. A failure keeps the old ones: names
        are a nicety, the board works with slugs."""
        assert self.labels is not None
        try:
            async with asyncio.timeout(10.0):
                text = _dumps(dict(await self.labels(feed.tenant)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("wallboard names for %s not loaded (%s); showing slugs", feed.tenant, exc)
            return False
        changed = text != feed.labels_json
        feed.labels_json = text
        return changed

    async def _refresh_labels(self, feed: TenantFeed) -> None:
        while True:
            await asyncio.sleep(LABELS_REFRESH_S)
            if await self._load_labels(feed):
                for c in feed.clients:  # the new names come with a fresh snapshot
                    c.resync("labels", self.stats)

    async def _ping_loop(self) -> None:
        # One timer for all clients, rather than one per client.
        while True:
            await asyncio.sleep(self.ping_interval_s)
            self.ping_all()
            BAD_CLIENTS.flush()  # a flood of bad clients that ended still gets its summary line

    def ping_all(self) -> None:
        # Per tenant: each carries its own PBX's clock, which the pages re-anchor on.
        wall = time.time()
        for feed in self.feeds.values():
            text = f'{{"type":"ping","server_time":{wall:.3f},"pbx_time":{feed.pbx_time(wall):.3f}}}'
            for c in feed.clients:
                c.offer_ping(text, self.stats)

    async def close(self) -> None:
        tasks: list[asyncio.Task[None]] = [*self._writers.values()]
        tasks += [f.task for f in self.feeds.values() if f.task is not None]
        if self._pinger is not None:
            tasks.append(self._pinger)
            self._pinger = None
        await cancel_and_wait(tasks)
        self._writers.clear()
        self.feeds.clear()
