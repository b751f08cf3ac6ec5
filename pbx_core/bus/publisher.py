"""Publishing deltas to the bus without ever holding up the engine.

``publish`` only appends to a bounded in-memory buffer; one flusher task owns every Redis write,
so each tenant's entries reach its stream in engine order.

The invariant readers rely on, snapshot board + entries after its ``last_id`` == engine state,
is kept by building the boards here from the very deltas that are XADDed (never from the
engine's ``LiveState``, which is ahead by whatever is still buffered). A delta is folded into
its tenant's board the moment it leaves the buffer: into a batch, or dropped on overflow.

- After every batch the touched tenants' snapshots are SET at the batch's last entry (SET XX:
  a key that vanished means Redis restarted or was flushed behind the client's back).
- When the stream is short of the board (a dropped delta, an outage that may have lost writes
  or the whole Redis, or a tenant this process has not written yet) the tenant is *dirty*:
  before any more of its entries, its snapshot is rewritten at the stream's current top, with
  the sequence number advanced by one, followed by a marker entry. Readers following the
  stream see the skipped number and reload the snapshot.

A deleted tenant (``bus.tenants``): the API moves its epoch on and deletes its keys. The next
snapshot write of that tenant finds the key gone, so the rewrite re-reads the epoch and sees it
moved. From then on the tenant is *held*: nothing of it is written (the engine may still hold
the old tenant's queues, and their next ``queue.stats`` would carry the old figures) until the
engine's ``tenant.removed`` delta says it has forgotten it (``on_tenant_reset`` asks it to:
``Bridge.forget_tenant``). Then the board starts empty, the stream is deleted and begun again,
and the snapshot is written at the new epoch. Without an ``on_tenant_reset`` the reset is
immediate. The same ``tenant.removed`` from the engine (an in-process deletion) resets the
tenant without waiting to notice the epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..domain.board import TENANT_REMOVED, Board, apply_delta, delta_dict, empty_board
from ..domain.queue_state import Delta
from ..tasks import cancel_and_wait
from .keys import (
    NO_ID,
    REDIS_ERRORS,
    TENANTS_KEY,
    RedisClient,
    Snapshot,
    connect,
    dumps,
    entry_fields,
    epoch_key,
    marker,
    parse_epoch,
    ping,
    snapshot_key,
    stream_key,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PublisherStats:
    """Plain counters and gauges, for /metrics and the bridge summary."""

    deltas_published: int = 0  # stream entries written (markers excluded)
    batches: int = 0
    buffered: int = 0  # gauge: deltas waiting in memory
    dropped: int = 0  # deltas dropped on buffer overflow (their effect survives in the snapshot)
    outages: int = 0  # transitions to "Redis unavailable"
    redis_up: bool = False  # gauge
    snapshot_rewrites: int = 0
    tenants_reset: int = 0  # deleted tenants started afresh (empty board, new stream)
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BusPublisher:
    """``await start()``, then ``await publish(deltas)`` from the engine task; ``await close()``.

    A ``DeltaSink`` for the bridge: ``publish`` never awaits anything and never raises.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        redis: RedisClient | None = None,
        maxlen: int = 100_000,
        buffer_max: int = 100_000,
        batch_max: int = 1000,
        retry_max_s: float = 5.0,
        keepalive_s: float = 5.0,
        on_tenant_reset: Callable[[str], None] | None = None,
    ) -> None:
        if redis is None and not url:
            raise ValueError("BusPublisher needs a Redis URL or client")
        self.redis = redis if redis is not None else connect(url or "", socket_timeout=10.0)
        self._owns_redis = redis is None
        self.maxlen = maxlen
        self.buffer_max = buffer_max
        self.batch_max = batch_max
        self.retry_max_s = retry_max_s
        self.keepalive_s = keepalive_s
        self.stats = PublisherStats()
        self._buffer: deque[Delta] = deque()
        self._boards: dict[str, Board] = {}
        self._seq: dict[str, int] = {}  # ``n`` of the tenant's last entry
        self._top: dict[str, str] = {}  # id of the tenant's last entry, when known for sure
        self._offset: dict[str, float] = {}  # PBX clock - our wall clock, at the tenant's last delta
        self._dirty: set[str] = set()
        # Tenant deletion (see the module docstring). ``on_tenant_reset(tenant)``: the tenant was
        # deleted behind our back; the engine must forget it and say so with tenant.removed.
        self.on_tenant_reset = on_tenant_reset
        self._epoch: dict[str, int] = {}  # the epoch each tenant's snapshot is written at
        self._held: set[str] = set()  # deleted, waiting for the engine's tenant.removed
        self._fresh: set[str] = set()  # reset: its old stream is deleted at the next rewrite
        self._purge: set[str] = set()  # deleted: entries written before we noticed go at once
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tried = False  # a first connection has been attempted (for counting outages)

    @classmethod
    def from_settings(cls, settings: Any, url: str | None = None) -> BusPublisher:
        """``url`` overrides ``PBX_REDIS_URL`` (e.g. an embedded Redis's)."""
        return cls(
            url or settings.redis_url,
            maxlen=settings.redis_stream_maxlen,
            buffer_max=settings.redis_buffer_max,
        )

    # ------------------------------------------------------------------ engine side

    async def publish(self, deltas: list[Delta]) -> None:
        """Hand deltas over; returns at once, never raises."""
        if not deltas:
            return
        for delta in deltas:
            if delta.tenant not in self._boards:  # new to this process: its snapshot first
                self._boards[delta.tenant] = empty_board(delta.tenant)
                self._dirty.add(delta.tenant)
        buf = self._buffer
        buf.extend(deltas)
        while len(buf) > self.buffer_max:
            dropped = buf.popleft()
            self._fold(dropped)  # its effect lives on in the board, so in the rewritten snapshot
            self._dirty.add(dropped.tenant)
            self.stats.dropped += 1
        self.stats.buffered = len(buf)
        self._idle.clear()
        self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the flusher. Never fails: if Redis is down, the flusher keeps retrying."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bus-publisher")

    async def flush(self) -> None:
        """Wait until everything handed over so far is in Redis, snapshots included. Waits out an
        outage: callers that must not hang wrap it in a timeout."""
        self._wake.set()
        await self._idle.wait()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Drain what can be drained within ``timeout_s``, stop the flusher, close the client."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self.flush()
            await cancel_and_wait([self._task])
            self._task = None
        if self._owns_redis:
            await self.redis.aclose()

    def boards(self) -> dict[str, Board]:
        """The boards as published (diagnostics and tests; do not mutate)."""
        return self._boards

    # ------------------------------------------------------------------ flusher

    def _fold(self, delta: Delta) -> str:
        """Apply the delta to its board; return its JSON for the stream entry. (``apply_delta``
        copies what it stores, so the engine's delta and this board never share data.)"""
        as_dict = delta_dict(delta)
        apply_delta(self._boards[delta.tenant], as_dict)
        # Deltas leave the engine as they happen, so ts is the PBX's "now" (give or take a batch).
        self._offset[delta.tenant] = delta.ts - time.time()
        return dumps(as_dict)

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                if not self.stats.redis_up:
                    await ping(self.redis)
                    self._up()
                if self._purge:
                    await self._purge_streams()
                elif self._dirty - self._held:
                    await self._rewrite()
                elif self._buffer:
                    await self._write_batch()
                else:
                    await self._wait()
                delay = 0.05
            except REDIS_ERRORS as exc:
                self._down(exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(self.retry_max_s, delay * 2)

    async def _wait(self) -> None:
        """Idle until new work; check Redis now and then, so an outage (and a Redis that
        restarted empty) is noticed, and the snapshots rewritten, even when no calls come in."""
        self._idle.set()
        self._wake.clear()
        try:
            async with asyncio.timeout(self.keepalive_s):
                await self._wake.wait()
        except TimeoutError:
            await self._check_snapshots()

    async def _check_snapshots(self) -> None:
        """The keepalive: a Redis that restarted while we were idle is invisible to the client
        (its pool reconnects quietly), but our snapshot keys are gone."""
        tenants = sorted(set(self._boards) - self._held)
        if not tenants:
            await ping(self.redis)
            return
        pipe = self.redis.pipeline(transaction=False)
        for tenant in tenants:
            pipe.exists(snapshot_key(tenant))
        found = await pipe.execute()
        self._lost([t for t, n in zip(tenants, found, strict=True) if not n])

    async def _write_batch(self) -> None:
        batch = [self._buffer.popleft() for _ in range(min(self.batch_max, len(self._buffer)))]
        self.stats.buffered = len(self._buffer)
        pipe = self.redis.pipeline(transaction=False)
        written: list[Delta] = []
        for delta in batch:
            tenant = delta.tenant
            if delta.type == TENANT_REMOVED:
                self._reset(tenant)
                continue
            text = self._fold(delta)
            if tenant in self._held or tenant in self._dirty:
                continue  # in the board only: the rewrite that comes next carries it
            seq = self._seq[tenant] = self._seq[tenant] + 1
            pipe.xadd(stream_key(tenant), entry_fields(text, seq), maxlen=self.maxlen, approximate=True)
            written.append(delta)
        if written:
            ids = await pipe.execute()
            for delta, raw_id in zip(written, ids, strict=True):
                self._top[delta.tenant] = raw_id.decode()
            # Built right after the XADDs return: each board is exact up to its tenant's last
            # entry (plus any delta dropped meanwhile, which made the tenant dirty: rewritten
            # next). XX: a missing key means Redis lost it (restarted, flushed) or the tenant was
            # deleted; either way the rewrite finds out which.
            tenants = sorted({d.tenant for d in written})
            pipe = self.redis.pipeline(transaction=False)
            for tenant in tenants:
                snap = Snapshot(tenant, self._boards[tenant], self._top[tenant], self._seq[tenant],
                                self._epoch.get(tenant, 0), self._offset.get(tenant))  # fmt: skip
                pipe.set(snapshot_key(tenant), snap.encode(), xx=True)
            stored = await pipe.execute()
            self._lost([t for t, ok in zip(tenants, stored, strict=True) if not ok])
        self.stats.deltas_published += len(written)
        self.stats.batches += 1

    async def _rewrite(self) -> None:
        tenants = sorted(self._dirty - self._held)
        unknown = [t for t in tenants if t not in self._top]
        restore: set[str] = set()
        if unknown:
            # The stream's top, and the sequence a previous publisher (or this one, before an
            # outage) reached, so the new numbers never run into a reader's old ones; and the
            # epoch, which tells a deleted tenant from a Redis that lost its keys.
            pipe = self.redis.pipeline(transaction=False)
            for tenant in unknown:
                pipe.xrevrange(stream_key(tenant), count=1)
                pipe.get(snapshot_key(tenant))
                pipe.get(epoch_key(tenant))
            replies = await pipe.execute()
            for i, tenant in enumerate(unknown):
                top, stored = replies[3 * i], Snapshot.decode(tenant, replies[3 * i + 1])
                epoch, known = parse_epoch(replies[3 * i + 2]), self._epoch.get(tenant)
                if known is not None and epoch > known:
                    self._deleted(tenant, epoch)
                    continue
                if known and replies[3 * i + 2] is None:
                    restore.add(tenant)  # Redis lost it: put it back, or a later delete could not tell
                self._epoch[tenant] = max(epoch, known or 0)
                self._top[tenant] = top[0][0].decode() if top and tenant not in self._fresh else NO_ID
                self._seq[tenant] = max(self._seq.get(tenant, 0), stored.seq)
            tenants = [t for t in tenants if t in self._top]
        if not tenants:
            return
        pipe = self.redis.pipeline(transaction=False)
        now = time.time()
        replies_at: list[tuple[str, int, int]] = []  # tenant, index of its XADD and epoch GET
        n = 0
        for tenant in tenants:
            if tenant in self._fresh:  # the deleted tenant's entries go with it
                pipe.delete(stream_key(tenant))
                n += 1
            if tenant in restore:
                pipe.set(epoch_key(tenant), self._epoch[tenant], nx=True)
                n += 1
            # Skip one number: readers following the stream see a gap at the marker and reload.
            seq = self._seq[tenant] + 1
            snap = Snapshot(tenant, self._boards[tenant], self._top[tenant], seq, self._epoch[tenant],
                            self._offset.get(tenant))  # fmt: skip
            pipe.set(snapshot_key(tenant), snap.encode())
            pipe.sadd(TENANTS_KEY, tenant)
            entry = entry_fields(dumps(marker(tenant, now)), seq + 1)
            pipe.xadd(stream_key(tenant), entry, maxlen=self.maxlen, approximate=True)
            # Read back last: an API deletion between our reads and this write is seen here.
            pipe.get(epoch_key(tenant))
            replies_at.append((tenant, n + 2, n + 3))
            n += 4
            self._seq[tenant] = seq + 1
        self._dirty.difference_update(tenants)  # a drop during the await marks a tenant again
        self._fresh.difference_update(tenants)
        replies = await pipe.execute()
        for tenant, at_xadd, at_epoch in replies_at:
            self._top[tenant] = replies[at_xadd].decode()
            epoch = parse_epoch(replies[at_epoch])
            if epoch > self._epoch[tenant]:
                self._deleted(tenant, epoch)  # what we just wrote is stale to every reader
        self.stats.snapshot_rewrites += len(tenants)
        log.info("bus: rewrote the snapshots of %s", ", ".join(tenants))

    # ------------------------------------------------------------------ deleted tenants

    def _deleted(self, tenant: str, epoch: int) -> None:
        """The tenant's epoch moved on: it was deleted (its slug may be in use again)."""
        log.info("bus: tenant %s was deleted (epoch %d); its board starts afresh", tenant, epoch)
        self._top.pop(tenant, None)
        self._dirty.add(tenant)
        self._purge.add(tenant)
        if self.on_tenant_reset is None:
            self._reset(tenant)
            return
        self._held.add(tenant)
        try:
            self.on_tenant_reset(tenant)
        except Exception:
            log.exception("bus: on_tenant_reset(%s) failed; resetting without the engine", tenant)
            self._reset(tenant)

    async def _purge_streams(self) -> None:
        """Entries of a deleted tenant written before we noticed (the old engine's): gone now,
        not at the reset, so not even a reader of raw entries sees them meanwhile."""
        tenants = sorted(self._purge)
        pipe = self.redis.pipeline(transaction=False)
        for tenant in tenants:
            pipe.delete(stream_key(tenant))
        await pipe.execute()
        self._purge.difference_update(tenants)

    def _reset(self, tenant: str) -> None:
        """Start the tenant afresh: an empty board, a new stream, the snapshot at the epoch
        read at the next rewrite (whatever it is now, it is this tenant's)."""
        self._boards[tenant] = empty_board(tenant)
        self._held.discard(tenant)
        self._dirty.add(tenant)
        self._fresh.add(tenant)
        self._top.pop(tenant, None)
        self._epoch.pop(tenant, None)
        self.stats.tenants_reset += 1

    # ------------------------------------------------------------------ outage

    def _down(self, exc: BaseException) -> None:
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        # Any write may or may not have landed, and Redis may come back empty: every tenant is
        # rewritten at its then-current top.
        self._dirty.update(self._boards)
        self._top.clear()
        if self.stats.redis_up or not self._tried:  # once per state change, not per retry
            self._tried = True
            self.stats.outages += 1
            log.warning("bus: Redis unavailable (%s); buffering up to %d deltas", exc, self.buffer_max)
        self.stats.redis_up = False

    def _lost(self, tenants: list[str]) -> None:
        """Redis answers but no longer has these snapshots: it restarted (or was flushed) between
        two commands. An outage all the same; rewrite them at the stream's real top."""
        if not tenants:
            return
        self.stats.outages += 1
        log.warning("bus: the snapshots of %s are gone (Redis restarted, or the tenant was deleted); "
                    "rewriting", ", ".join(tenants))  # fmt: skip
        self._dirty.update(tenants)
        for tenant in tenants:
            self._top.pop(tenant, None)

    def _up(self) -> None:
        self._tried = True
        self.stats.redis_up = True
        log.log(
            logging.WARNING if self.stats.outages else logging.INFO,
            "bus: Redis is up; rewriting %d snapshots, %d deltas buffered, %d dropped so far",
            len(self._dirty), len(self._buffer), self.stats.dropped,
        )  # fmt: skip
