"""Reading one tenant's bus: the snapshot, then the stream entries after it.

Readers are independent (every web process reads the same streams with plain XREAD), so there
are no consumer groups and nothing to acknowledge. Entries carry consecutive sequence numbers;
a reader that sees a number skipped (it fell behind the MAXLEN trim edge, or the publisher
rewrote the snapshot) reloads the snapshot. After a Redis error it reloads too: the server may
have restarted empty.

A snapshot written at an older epoch than the tenant's (``keys.epoch_key``) belongs to a deleted
tenant whose slug is in use again: the reader treats it as absent (an empty board) until the
publisher has started the new tenant's stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..domain.board import DeltaDict, apply_delta, empty_board
from .keys import (
    MARKER_TYPE,
    REDIS_ERRORS,
    RedisClient,
    Snapshot,
    epoch_key,
    id_ms,
    parse_entries,
    parse_epoch,
    snapshot_key,
    stream_key,
)

log = logging.getLogger(__name__)

# How long a reader keeps its last board when the snapshot vanished (Redis restarted empty)
# before it believes the empty board: the bridge's publisher rewrites it within seconds, unless
# the bridge is down too.
HOLD_MISSING_SNAPSHOT_S = 30.0


async def stored_snapshots(redis: RedisClient, tenants: list[str]) -> dict[str, Snapshot]:
    """The stored snapshot of each tenant that has one, in one round trip (GETs in a pipeline, not
    an MGET: on a cluster the tenants' keys are in different slots). A deleted tenant's leftover
    (an older epoch's) is left out."""
    pipe = redis.pipeline(transaction=False)
    for tenant in tenants:
        pipe.get(snapshot_key(tenant))
        pipe.get(epoch_key(tenant))
    replies = await pipe.execute()
    found: dict[str, Snapshot] = {}
    for i, tenant in enumerate(tenants):
        raw = replies[2 * i]
        if raw is None:
            continue
        try:
            snap = Snapshot.decode(tenant, raw)
        except (ValueError, KeyError):
            continue
        if snap.epoch >= parse_epoch(replies[2 * i + 1]):
            found[tenant] = snap
    return found


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    seq: int
    delta: DeltaDict


@dataclass(slots=True)
class ReaderStats:
    entries: int = 0
    snapshots: int = 0  # snapshots loaded (the first one included)
    gaps: int = 0  # skipped sequence numbers seen: trim edge or rewritten snapshot
    errors: int = 0
    redis_up: bool = False
    last_id: str = ""  # the position: the last entry read, or the loaded snapshot's last_id
    lag_s: float = 0.0  # now - the XADD time of the newest entry, when it was read
    last_error: str = ""
    snapshot_missing: int = 0  # loads that found no snapshot and kept the last board


class BusReader:
    """One tenant's stream. ``redis`` may be shared by many readers; it needs no socket timeout
    (or one longer than ``block_ms``): XREAD blocks that long."""

    def __init__(
        self,
        redis: RedisClient,
        tenant: str,
        *,
        block_ms: int = 5000,
        count: int = 500,
        retry_max_s: float = 5.0,
        hold_missing_s: float = HOLD_MISSING_SNAPSHOT_S,
    ) -> None:
        self.redis = redis
        self.hold_missing_s = hold_missing_s
        self.tenant = tenant
        self.block_ms = block_ms
        self.count = count
        self.retry_max_s = retry_max_s
        self.stats = ReaderStats()

    async def snapshot(self) -> Snapshot:
        """The stored snapshot (an empty board at the stream's start if none was written, or if
        the one stored is a deleted tenant's)."""
        snap, _ = await self._stored()
        return snap

    async def _stored(self) -> tuple[Snapshot, bool]:
        """:meth:`snapshot`, and whether it was absent: no key, and no newer epoch either (what a
        Redis that restarted empty looks like, until the publisher writes the snapshot again)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(snapshot_key(self.tenant))
        pipe.get(epoch_key(self.tenant))
        raw, raw_epoch = await pipe.execute()
        snap = Snapshot.decode(self.tenant, raw)
        epoch = parse_epoch(raw_epoch)
        if snap.epoch < epoch:
            return Snapshot(self.tenant, empty_board(self.tenant), epoch=epoch), False
        return snap, raw is None

    async def current(self) -> Snapshot:
        """The board as it is now: the snapshot plus every entry after it (what a new reader
        starts from; also a one-shot read for REST). Retries while the stream has a gap."""
        while True:
            snap = await self.snapshot()
            board, last, seq = snap.board, snap.last_id, snap.seq
            gap = False
            while not gap:
                raw = await self.redis.xrange(stream_key(self.tenant), min=f"({last}", count=self.count)
                if not raw:
                    return Snapshot(self.tenant, board, last, seq, snap.epoch, snap.clock_offset_s)
                for sid, n, data in parse_entries(raw):
                    if n != seq + 1:
                        gap = True
                        break
                    last, seq = sid, n
                    delta = json.loads(data)
                    if delta["type"] != MARKER_TYPE:
                        apply_delta(board, delta)
            self.stats.gaps += 1
            await asyncio.sleep(0.05)  # the snapshot is being rewritten: try again shortly

    async def watch(self) -> AsyncIterator[Snapshot | Entry]:
        """A ``Snapshot``, then ``Entry`` items; a fresh ``Snapshot`` whenever the consumer must
        start over (a gap, or after a Redis outage). Runs until cancelled or closed."""
        stream = stream_key(self.tenant)
        delay = 0.05
        snap: Snapshot | None = None
        last, seq, progressed = "", 0, True
        missing_since: float | None = None
        while True:
            try:
                if snap is None:
                    if not progressed:  # gap right after a load: let the publisher catch up
                        await asyncio.sleep(delay)
                        delay = min(self.retry_max_s, delay * 2)
                    snap, absent = await self._stored()
                    self._up()
                    # A Redis that restarted empty has no snapshot until the publisher notices
                    # and writes one (seconds: its retry backoff). Handing on the empty board
                    # meanwhile blanks every wallboard; the last board stands instead, for a
                    # while. A deleted tenant is told by its newer epoch, not by absence.
                    if absent and seq > 0:  # ``seq``: where the board handed on had got to
                        now = time.monotonic()
                        if missing_since is None:
                            missing_since = now
                            log.info("%s: no snapshot on the bus (Redis restarted empty?): keeping "
                                     "the last board until the publisher writes one", self.tenant)
                        if now - missing_since < self.hold_missing_s:
                            self.stats.snapshot_missing += 1
                            snap, progressed = None, False  # sleep with backoff, then look again
                            continue
                    missing_since = None
                    last, seq, progressed = snap.last_id, snap.seq, False
                    self.stats.last_id = last
                    self.stats.snapshots += 1
                    yield snap
                reply: Any = await self.redis.xread(  # RESP2 (see keys.connect): [[stream, entries]]
                    {stream: last}, count=self.count, block=self.block_ms
                )
                self._up()
                for sid, n, data in parse_entries(reply[0][1]) if reply else ():
                    if n != seq + 1:
                        self.stats.gaps += 1
                        log.info("%s: entry %d after %d: reloading the snapshot", self.tenant, n, seq)
                        snap = None
                        break
                    last, seq, progressed, delay = sid, n, True, 0.05
                    self.stats.entries += 1
                    self.stats.last_id = last
                    self.stats.lag_s = max(0.0, time.time() - id_ms(last) / 1000)
                    delta = json.loads(data)
                    if delta["type"] != MARKER_TYPE:
                        yield Entry(last, n, delta)
            except REDIS_ERRORS as exc:
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if self.stats.redis_up:
                    log.warning("%s: bus read failed (%s); retrying", self.tenant, exc)
                self.stats.redis_up = False
                snap, progressed = None, True  # the server may have restarted: start over
                await asyncio.sleep(delay)
                delay = min(self.retry_max_s, delay * 2)

    def _up(self) -> None:
        if not self.stats.redis_up and self.stats.errors:
            log.warning("%s: bus reads resumed", self.tenant)
        self.stats.redis_up = True
