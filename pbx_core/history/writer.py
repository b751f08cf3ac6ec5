"""The history writer's shell: a Redis Streams consumer group on every tenant's stream, writing
the rows the pure core (``core.TenantHistory``) folds into SQL.

One loop, no locks: read a batch from every tenant's stream (one non-blocking XREADGROUP per
tenant in one pipeline: the tenants' keys live in different cluster slots, so no multi-key
read), fold it, write the changed rows in one transaction, then XACK. A crash between the
commit and the XACK redelivers the batch; folding it again yields the same rows, upserted onto
themselves (``store``): nothing is written twice. On start the writer first re-reads its own
pending entries (XREADGROUP from 0), then new ones.

Outages never crash it: a batch read but not yet in SQL (the database is down) or in SQL but not
acknowledged (Redis is down) is kept and retried with backoff, and nothing new is read meanwhile.
A tenant whose group is gone (NOGROUP: the tenant was deleted, or Redis restarted empty) is
followed again from the start of its new stream, at its new epoch if it has one.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import ResponseError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..bus.keys import (
    MARKER_TYPE,
    REDIS_ERRORS,
    TENANTS_KEY,
    RedisClient,
    connect,
    epoch_key,
    parse_epoch,
    stream_key,
)
from ..tasks import cancel_and_wait
from . import store
from .core import CallKey, CallRow, SessionKey, SessionRow, TenantHistory

log = logging.getLogger(__name__)

GROUP = "history"
CONSUMER = "writer"  # one writer per deployment: a tenant's deltas must be folded in order
DB_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, TimeoutError)


@dataclass(slots=True)
class WriterStats:
    entries: int = 0  # stream entries folded (markers included)
    batches: int = 0  # transactions committed
    calls_written: int = 0  # call rows upserted (a call is written again as it changes)
    sessions_written: int = 0
    gaps: int = 0  # entries lost before the writer read them (trimmed, or dropped by the publisher)
    tenants: int = 0  # gauge: streams followed
    redis_up: bool = False
    db_up: bool = False
    redis_outages: int = 0
    db_outages: int = 0
    tenants_reset: int = 0  # groups recreated after NOGROUP (tenant deleted, Redis emptied)
    bad_entries: int = 0  # entries skipped because they are not a delta the writer understands
    anonymised: int = 0  # call rows past the retention that lost their number and name
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Followed:
    history: TenantHistory
    read_from: str = "0"  # "0": our own pending entries first (after a start or a reset); then ">"
    last_n: int | None = None


@dataclass(slots=True)
class _Batch:
    """Read from Redis; folded or not yet; written or not yet; acknowledged at the end."""

    entries: dict[str, list[tuple[str, int, dict[str, Any] | None]]]
    folded: bool = False
    written: bool = False
    calls: list[CallRow] = field(default_factory=list)
    sessions: list[SessionRow] = field(default_factory=list)


class HistoryWriter:
    """``await start()`` … ``await close()``; or ``await run()`` in a task of your own."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        url: str | None = None,
        *,
        redis: RedisClient | None = None,
        batch_max: int = 5000,
        poll_s: float = 0.2,
        tenants_every_s: float = 2.0,
        retry_max_s: float = 5.0,
        retention_months: int = 13,
        retention_every_s: float = 3600.0,
    ) -> None:
        if redis is None and not url:
            raise ValueError("HistoryWriter needs a Redis URL or client")
        self.redis = redis if redis is not None else connect(url or "", socket_timeout=10.0)
        self._owns_redis = redis is None
        self.sessions = sessions
        self.batch_max = batch_max
        self.poll_s = poll_s
        self.tenants_every_s = tenants_every_s
        self.retry_max_s = retry_max_s
        self.retention_months = retention_months  # 0: keep caller numbers for ever
        self.retention_every_s = retention_every_s
        self._retention_at = 0.0  # monotonic time of the next anonymisation; at once on start
        self.stats = WriterStats()
        self._followed: dict[str, _Followed] = {}
        self._lost: dict[str, _Followed] = {}  # streams gone (NOGROUP), until they are followed again
        self._batch: _Batch | None = None
        self._tenants_at = -1e9
        self._task: asyncio.Task[None] | None = None
        self._tried_redis = self._tried_db = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="history-writer")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        if self._owns_redis:
            await self.redis.aclose()

    async def caught_up(self) -> bool:
        """Everything in every known tenant's stream is folded, written and acknowledged (tests,
        benchmarks). Looks the tenants up afresh, so a stream that appeared just now counts."""
        if self._batch is not None:
            return False
        tenants = sorted(_text(m) for m in await self.redis.smembers(TENANTS_KEY))
        if set(tenants) - set(self._followed):
            return False
        pipe = self.redis.pipeline(transaction=False)
        for tenant in tenants:
            pipe.xinfo_groups(stream_key(tenant))
        for groups in await pipe.execute(raise_on_error=False):
            if isinstance(groups, Exception):
                return False
            mine = [g for g in groups if g["name"] == GROUP.encode()]
            if not mine or mine[0]["pending"] or mine[0].get("lag") not in (0, None):
                return False
        return True

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        delay = 0.05
        while True:
            stage = "Redis"
            try:
                if not self.stats.redis_up:
                    await self.redis.ping()
                    self._redis_up()
                if time.monotonic() - self._tenants_at >= self.tenants_every_s:
                    await self._refresh_tenants()
                if self._batch is None and self.retention_months and time.monotonic() >= self._retention_at:
                    stage = "database"
                    await self.anonymise()
                    stage = "Redis"
                if self._batch is None:
                    self._batch = await self._read()
                    if self._batch is None:
                        await asyncio.sleep(self.poll_s)
                        continue
                batch = self._batch
                stage = "database"
                if not batch.folded:
                    await self._fold(batch)
                if not batch.written:
                    await self._write(batch)
                stage = "Redis"
                await self._ack(batch)
                self._batch = None
                delay = 0.05
            except (*REDIS_ERRORS, *DB_ERRORS) as exc:
                # Which one failed is the stage, not the type: both can raise OSError.
                if stage == "Redis" and isinstance(exc, REDIS_ERRORS):
                    self._redis_down(exc)
                elif stage == "database":
                    self._db_down(exc)
                else:
                    raise
                delay = await self._backoff(delay)
            except Exception:
                # A bug must not stop the history for good (nor silently, inside serve): say so,
                # keep the batch in hand, and try again after the backoff.
                log.exception("history: unexpected error in the %s stage; retrying", stage)
                self.stats.last_error = "unexpected error (see the log)"
                delay = await self._backoff(delay)

    async def anonymise(self, now: float | None = None) -> int:
        """Anonymise the calls older than the retention (run hourly by the loop)."""
        before = months_before(time.time() if now is None else now, self.retention_months)
        async with self.sessions() as session, session.begin():
            n = await store.anonymise(session, before)
        self._retention_at = time.monotonic() + self.retention_every_s
        self.stats.anonymised += n
        if n:
            log.info("history: %d calls older than %d months anonymised", n, self.retention_months)
        return n

    async def _backoff(self, delay: float) -> float:
        await asyncio.sleep(delay * (0.5 + random.random()))
        return min(self.retry_max_s, delay * 2)

    async def _refresh_tenants(self) -> None:
        """Follow every tenant with a stream (``pbx:tenants``); create our group where missing."""
        tenants = {_text(m) for m in await self.redis.smembers(TENANTS_KEY)}
        new = sorted(tenants - set(self._followed))
        if new:
            pipe = self.redis.pipeline(transaction=False)
            for tenant in new:
                pipe.xgroup_create(stream_key(tenant), GROUP, id="0")
                pipe.get(epoch_key(tenant))
            replies = await pipe.execute(raise_on_error=False)
            for i, tenant in enumerate(new):
                created, epoch = replies[2 * i], replies[2 * i + 1]
                if isinstance(created, ResponseError) and "BUSYGROUP" not in str(created):
                    continue  # no stream (yet): the next refresh tries again
                if isinstance(created, Exception) and not isinstance(created, ResponseError):
                    raise created
                self._follow(tenant, parse_epoch(None if isinstance(epoch, Exception) else epoch))
        self._tenants_at = time.monotonic()
        self.stats.tenants = len(self._followed)

    def _follow(self, tenant: str, epoch: int) -> None:
        old = self._followed.get(tenant) or self._lost.pop(tenant, None)
        if old is not None and old.history.epoch == epoch:
            # The same tenant (Redis came back empty): keep its open calls, and its sequence
            # number, so entries the publisher lost in the outage show as a gap.
            self._followed[tenant] = _Followed(old.history, last_n=old.last_n)
        else:
            self._followed[tenant] = _Followed(TenantHistory(tenant, epoch))
        log.info("history: following %s (epoch %d)", tenant, epoch)

    async def _read(self) -> _Batch | None:
        tenants = sorted(self._followed)
        if not tenants:
            return None
        count = max(10, self.batch_max // len(tenants))
        pipe = self.redis.pipeline(transaction=False)
        for tenant in tenants:
            pipe.xreadgroup(
                GROUP, CONSUMER, {stream_key(tenant): self._followed[tenant].read_from}, count=count
            )
        replies = await pipe.execute(raise_on_error=False)
        entries: dict[str, list[tuple[str, int, dict[str, Any] | None]]] = {}
        for tenant, reply in zip(tenants, replies, strict=True):
            if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
                self._lost_group(tenant)
                continue
            if isinstance(reply, Exception):
                raise reply
            got = _entries(reply)
            if not got and self._followed[tenant].read_from == "0":
                self._followed[tenant].read_from = ">"  # our pending entries are all done
            if got:
                entries[tenant] = got
        return _Batch(entries) if entries else None

    def _lost_group(self, tenant: str) -> None:
        """The stream (and our group with it) is gone: the tenant was deleted, or Redis came back
        empty. Follow it again from the start of whatever stream it has next."""
        self._lost[tenant] = self._followed.pop(tenant)
        self.stats.tenants_reset += 1
        self._tenants_at = -1e9
        log.warning("history: the stream of %s is gone (tenant deleted or Redis emptied); "
                    "following it afresh when it has one", tenant)  # fmt: skip

    async def _fold(self, batch: _Batch) -> None:
        parsed = {t: [d for _, _, d in entries if d is not None] for t, entries in batch.entries.items()}
        wanted: dict[tuple[str, int], tuple[set[CallKey], set[SessionKey]]] = {}
        for tenant in batch.entries:
            followed = self._followed.get(tenant)
            if followed is not None:
                keys = followed.history.wants(parsed[tenant])
                if keys[0] or keys[1]:
                    wanted[(tenant, followed.history.epoch)] = keys
        if wanted:  # rows of these calls written earlier: read back, one query for all tenants
            async with self.sessions() as session:
                found = await store.load(session, wanted)
            for (tenant, _epoch), rows in found.items():
                self._followed[tenant].history.preload(wanted[(tenant, _epoch)], *rows)
        for tenant, entries in batch.entries.items():
            followed = self._followed.get(tenant)
            if followed is None:
                continue
            history = followed.history
            for entry_id, n, delta in entries:
                self._check_gap(tenant, followed, entry_id, n, delta)
                if delta is not None:
                    try:
                        history.fold(delta)
                    except (KeyError, TypeError, ValueError, AttributeError):
                        # Not a delta shape we know (a newer or a broken producer): say which
                        # entry, skip it, keep the rest of the batch.
                        self.stats.bad_entries += 1
                        log.exception("history: %s entry %s cannot be folded; skipped", tenant, entry_id)
            calls, sessions = history.take()
            batch.calls.extend(calls)
            batch.sessions.extend(sessions)
            self.stats.entries += len(entries)
        batch.folded = True

    def _check_gap(
        self, tenant: str, f: _Followed, entry_id: str, n: int, delta: dict[str, Any] | None
    ) -> None:
        expected = (
            None if f.last_n is None else f.last_n + (2 if delta and delta["type"] == MARKER_TYPE else 1)
        )
        if expected is not None and n > expected:
            self.stats.gaps += 1
            log.warning("history: %s lost %d stream entries before %s (trimmed before the writer read "
                        "them, or dropped by the publisher); their calls may be incomplete",
                        tenant, n - expected, entry_id)  # fmt: skip
        if delta is not None:
            f.last_n = n

    async def _write(self, batch: _Batch) -> None:
        if batch.calls or batch.sessions:
            async with self.sessions() as session, session.begin():
                await store.write(session, batch.calls, batch.sessions)
        self._db_up()
        batch.written = True
        self.stats.batches += 1
        self.stats.calls_written += len(batch.calls)
        self.stats.sessions_written += len(batch.sessions)

    async def _ack(self, batch: _Batch) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for tenant, entries in batch.entries.items():
            pipe.xack(stream_key(tenant), GROUP, *[entry_id for entry_id, _, _ in entries])
        for reply in await pipe.execute(raise_on_error=False):
            # NOGROUP: the stream went meanwhile (the next read notices); its rows are written.
            if isinstance(reply, Exception) and not (
                isinstance(reply, ResponseError) and "NOGROUP" in str(reply)
            ):
                raise reply

    # ------------------------------------------------------------------ outages

    def _redis_down(self, exc: BaseException) -> None:
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if self.stats.redis_up or not self._tried_redis:
            self._tried_redis = True
            self.stats.redis_outages += 1
            log.warning("history: Redis unavailable (%s); retrying, nothing is lost (unacknowledged "
                        "entries are read again)", exc)  # fmt: skip
        self.stats.redis_up = False

    def _redis_up(self) -> None:
        self._tried_redis = True
        self.stats.redis_up = True
        self._tenants_at = -1e9
        log.log(logging.WARNING if self.stats.redis_outages else logging.INFO, "history: Redis is up")

    def _db_down(self, exc: BaseException) -> None:
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if self.stats.db_up or not self._tried_db:
            self._tried_db = True
            self.stats.db_outages += 1
            log.warning("history: the database is unavailable (%s); holding the batch and retrying",
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)  # fmt: skip
        self.stats.db_up = False

    def _db_up(self) -> None:
        if not self.stats.db_up:
            self._tried_db = True
            self.stats.db_up = True
            if self.stats.db_outages:
                log.warning("history: the database is back; writing again")


def months_before(ts: float, months: int) -> float:
    """The same UTC day and time ``months`` calendar months before ``ts`` (the day clamped to the
    month's last: 31 March - 1 month = 28/29 February)."""
    at = datetime.fromtimestamp(ts, UTC)
    month0 = at.year * 12 + at.month - 1 - months
    year, month = divmod(month0, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day).timestamp()


def _delta_shaped(d: Any) -> bool:
    return (isinstance(d, dict) and isinstance(d.get("type"), str) and isinstance(d.get("queue"), str)
            and isinstance(d.get("ts"), int | float) and isinstance(d.get("data"), dict))  # fmt: skip


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(reply: Any) -> list[tuple[str, int, dict[str, Any] | None]]:
    """XREADGROUP's ``[[stream, [(id, fields)]]]`` as ``(id, seq, delta)``; a pending entry
    trimmed meanwhile comes back with no fields (``None``): acknowledged, nothing to fold."""
    out: list[tuple[str, int, dict[str, Any] | None]] = []
    for _stream, items in reply or ():
        for raw_id, fields in items:
            if not fields:
                out.append((raw_id.decode(), 0, None))
                continue
            try:
                seq, delta = int(fields[b"n"]), json.loads(fields[b"d"])
                if not _delta_shaped(delta):
                    raise ValueError("not a delta")
                out.append((raw_id.decode(), seq, delta))
            except (KeyError, ValueError):  # not a bus entry: acknowledged, skipped, logged
                log.warning("history: stream entry %s is not a bus delta; skipped", raw_id.decode())
                out.append((raw_id.decode(), 0, None))
    return out


@contextlib.asynccontextmanager
async def running_writer(sessions: async_sessionmaker[AsyncSession], redis_url: str, settings: Any) -> Any:
    """A started writer for the block (``pbx-core history``), configured by ``settings``."""
    writer = HistoryWriter(
        sessions,
        redis_url,
        batch_max=settings.history_batch,
        retention_months=settings.history_retention_months,
    )
    await writer.start()
    try:
        yield writer
    finally:
        await writer.close()
