"""The live bridge: one AMI client → one engine task (the one owner of the live state) → sinks.

``pbx-core bridge`` runs it against ``PBX_AMI_URL``; ``demo`` and ``serve`` embed :class:`Bridge`
and add their own sinks (the Redis bus, the wallboard hub).

The engine is one asyncio task: it takes everything available from the client's queue in
arrival order (raw event frames and resync snapshots), applies it, adds a ``Tick`` about once a
second, and hands each batch of deltas to its parts and then to the sinks. Nothing else writes
the state, so nothing locks; readers on the same loop may read ``bridge.state`` between batches.

Parts (:class:`EnginePart`, e.g. the callbacks: ``pbx_core.callbacks.shell``) share the engine
task rather than run an engine of their own: one AMI session and one parse per PBX. After each
batch a part's pure ``step`` gets the batch's deltas with the frames it watches and its own
inputs at their places in the stream; its deltas are published in the same batch, and its shell
(its ``run`` task) sends its actions through the same client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .ami.client import AmiClient, AmiOptions, EngineItem
from .ami.errors import AmiAuthError
from .config import AmiUrl, ConfigError, Settings
from .domain.events import StatusSnapshot, TenantRemoved, Tick, normalise
from .domain.kpi import kpis
from .domain.queue_state import (
    AVAILABLE,
    LOGGED_OUT,
    ON_CALL,
    PAUSED,
    RINGING,
    WRAPUP,
    Delta,
    EngineSettings,
    LiveState,
    QueueSettings,
    apply,
    longest_waiting_s,
)
from .signals import on_stop_signals
from .tasks import cancel_and_wait

if TYPE_CHECKING:
    from .bus import BusPublisher

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # items per engine round: bounds the latency of ticks and of the sinks


@runtime_checkable
class DeltaSink(Protocol):
    """Where deltas go (the Redis bus, the wallboard hub, a test). ``publish`` is awaited in the
    engine loop, so it must be quick: buffer and return, do slow I/O in your own task."""

    async def publish(self, deltas: list[Delta]) -> None: ...


SinkFunc = Callable[[list[Delta]], Awaitable[None] | None]
SinkLike = DeltaSink | SinkFunc

Mark = tuple[int, Any]
"""A watched frame or a part's own input, with the number of the batch's deltas before it."""


class EnginePart(Protocol):
    """Something that runs on the engine task with the live state (e.g. the callbacks).

    ``extra_events``: events the AMI session must deliver besides the queue events;
    ``user_events``: the UserEvent names among them that are the part's (no other UserEvent is
    delivered: a PBX's unrelated UserEvents must not fill the engine queue).
    ``watched_events``: frames handed to ``step`` at their place in the stream.
    ``step`` runs synchronously in the engine task after each batch (``marks``: the watched
    frames and every non-frame item on the engine queue, i.e. the part's own inputs posted with
    :meth:`Bridge.post`); what it returns is published with the batch. ``run`` is the part's
    shell, a task beside the engine for its I/O (it must not write the live state)."""

    extra_events: frozenset[str]
    user_events: frozenset[str]
    watched_events: frozenset[str]

    def bind(self, bridge: Bridge) -> None: ...

    def step(
        self, state: LiveState, deltas: list[Delta], marks: Sequence[Mark], now: float, ticked: bool
    ) -> list[Delta]: ...

    async def run(self) -> None: ...


def engine_settings(settings: Settings) -> EngineSettings:
    """PBX_SERVICE_LEVEL_S / PBX_SHORT_ABANDON_S / PBX_TIMEZONE → the engine's defaults."""
    return EngineSettings(
        default=QueueSettings(
            service_level_s=settings.service_level_s,
            short_abandon_s=settings.short_abandon_s,
            timezone=settings.timezone,
        )
    )


@dataclass(slots=True)
class EngineCounters:
    batches: int = 0
    items: int = 0  # frames and snapshots taken from the queue
    snapshots: int = 0  # resyncs applied
    deltas: int = 0
    ticks: int = 0
    sink_errors: int = 0
    internal_errors: int = 0  # an event that made apply() raise: skipped, logged


class Engine:
    """Owns the LiveState. ``run()`` is the engine task; ``process()`` is its synchronous core."""

    def __init__(
        self,
        events: asyncio.Queue[EngineItem],
        settings: EngineSettings | None = None,
        *,
        tick_s: float = 1.0,
        sinks: Iterable[SinkLike] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.events = events
        self.clock = clock  # Asterisk's clock: stamps ticks and frames that lack a Timestamp
        self.state = LiveState(settings=settings or EngineSettings())
        self.tick_s = tick_s
        self.counters = EngineCounters()
        self._sinks: list[SinkLike] = list(sinks)
        self._parts: list[EnginePart] = []
        self._watched: frozenset[str] = frozenset()
        self._stopping = False

    def add_sink(self, sink: SinkLike) -> None:
        self._sinks.append(sink)

    def add_part(self, part: EnginePart) -> None:
        self._parts.append(part)
        self._watched = self._watched | part.watched_events

    def process(self, items: list[Any], now: float, marks: list[Mark] | None = None) -> list[Delta]:
        """Apply a batch in order. ``now`` stamps frames without a Timestamp. With ``marks``, the
        watched frames and the parts' inputs are collected there at their places."""
        state = self.state
        watched = self._watched if marks is not None else frozenset()
        deltas: list[Delta] = []
        for item in items:
            try:
                if isinstance(item, StatusSnapshot):
                    self.counters.snapshots += 1
                    deltas.extend(apply(state, item))
                    continue
                if isinstance(item, TenantRemoved):
                    deltas.extend(apply(state, item))
                    continue
                if not isinstance(item, dict):
                    if marks is not None:
                        marks.append((len(deltas), item))  # a part's input, in stream order
                    continue
                if watched and item.get("Event") in watched:
                    marks.append((len(deltas), item))  # type: ignore[union-attr]  # watched implies marks
                event = normalise(item, now)
                if event is not None:
                    deltas.extend(apply(state, event))
            except Exception:
                # A bug in the core must not stop the bridge; the next resync repairs the state.
                self.counters.internal_errors += 1
                log.exception("engine: applying %r failed; skipped", _describe(item))
        self.counters.items += len(items)
        return deltas

    def tick(self) -> list[Delta]:
        self.counters.ticks += 1
        return apply(self.state, Tick(ts=max(self.clock(), self.state.now)))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self.tick_s
        while not self._stopping:
            batch: list[EngineItem] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_tick - loop.time())):
                    batch.append(await self.events.get())
            queue = self.events
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            now = self.clock()
            marks: list[Mark] = []
            deltas = self.process(batch, now, marks) if batch else []
            ticked = loop.time() >= next_tick
            if ticked:
                deltas.extend(self.tick())
                next_tick = loop.time() + self.tick_s
            if batch:
                self.counters.batches += 1
            for part in self._parts:
                try:
                    deltas.extend(part.step(self.state, deltas, marks, now, ticked))
                except Exception:
                    # Like a bad event: the engine and the other parts carry on.
                    self.counters.internal_errors += 1
                    log.exception("engine part %r failed on a batch; skipped", part)
            if deltas:
                self.counters.deltas += len(deltas)
                await self._publish(deltas)

    def stop(self) -> None:
        self._stopping = True

    async def _publish(self, deltas: list[Delta]) -> None:
        for sink in self._sinks:
            try:
                publish = getattr(sink, "publish", None)
                result = publish(deltas) if publish is not None else sink(deltas)  # type: ignore[operator]
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.counters.sink_errors += 1
                log.exception("delta sink %r failed; the engine carries on", sink)


class Bridge:
    """AMI client + engine (+ an optional periodic summary), as one embeddable unit.

    >>> bridge = Bridge(url, ami=AmiOptions(), engine=EngineSettings())
    >>> bridge.add_sink(my_bus)            # async publish(deltas) or a (async) callable
    >>> task = asyncio.create_task(bridge.run())
    >>> ... bridge.state ...               # read between batches, on the same loop
    >>> bridge.stop(); await task
    """

    def __init__(
        self,
        url: AmiUrl,
        *,
        ami: AmiOptions | None = None,
        engine: EngineSettings | None = None,
        sinks: Iterable[SinkLike] = (),
        tick_s: float = 1.0,
        summary_every_s: float | None = None,
        parts: Iterable[EnginePart] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``parts``: engine parts sharing the engine task (e.g. the callbacks). ``clock``: the
        PBX's time (default: Asterisk's clock learnt from its event timestamps; tests inject
        the simulator's)."""
        parts = list(parts)
        options = ami or AmiOptions()
        extra = frozenset().union(*(part.extra_events for part in parts))
        user = frozenset().union(*(part.user_events for part in parts))
        if extra - options.extra_events or user - options.user_events:
            options = replace(
                options, extra_events=options.extra_events | extra, user_events=options.user_events | user
            )
        self.client = AmiClient(url, options)
        self.engine = Engine(
            self.client.events, engine, tick_s=tick_s, sinks=sinks, clock=clock or self.client.clock.now
        )
        self.parts = parts
        for part in parts:
            self.engine.add_part(part)
            part.bind(self)
        self.summary_every_s = summary_every_s
        self._stop = asyncio.Event()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Bridge:
        if settings.ami_url is None:
            raise ConfigError(
                "PBX_AMI_URL is not set: the bridge needs ami://user:secret@host:5038 "
                "(or run `pbx-core demo` for the simulator)"
            )
        return cls(
            settings.ami_url,
            ami=AmiOptions.from_settings(settings),
            engine=engine_settings(settings),
            **kwargs,
        )

    @property
    def state(self) -> LiveState:
        return self.engine.state

    def add_sink(self, sink: SinkLike) -> None:
        self.engine.add_sink(sink)

    def now(self) -> float:
        """The PBX's time, as the engine stamps ticks and frames without a Timestamp."""
        return self.engine.clock()

    def post(self, item: Any) -> None:
        """Put a part's input on the engine queue, behind everything received so far: the
        engine hands it to the parts' ``step`` at that place in the stream."""
        self.client.events.put_nowait(item)

    def stats(self) -> dict[str, Any]:
        """Counters for logs and /metrics; a part with a ``name`` adds its ``counters`` there."""
        out: dict[str, Any] = {"ami": self.client.stats(), "engine": asdict(self.engine.counters)}
        for part in self.parts:
            name = getattr(part, "name", None)
            if name:
                out[name] = dict(part.counters)  # type: ignore[attr-defined]
        return out

    def stop(self) -> None:
        self._stop.set()

    def forget_tenant(self, tenant: str) -> None:
        """A tenant was deleted (told by the API in this process): its queues leave the live state
        (and every sink's board) at once, in order with the events before it. Safe to call from
        any task on the bridge's loop, and more than once. The app_queue reload that removed
        its queues from Asterisk brings a resync of its own."""
        self.client.events.put_nowait(TenantRemoved(max(self.client.clock.now(), self.state.now), tenant))

    def queues_changed(self, tenant: str) -> None:
        """pbx-core applied ``tenant`` to Asterisk: resync now, so a queue the apply deleted leaves
        the live state even where the AMI user cannot read the ``Reload`` event (class system)."""
        self.client.request_resync()

    def forget_deleted_tenant(self, tenant: str) -> None:
        """The bus publisher found the tenant deleted (by a web process elsewhere): forget it, and
        resync, since its slug may already be in use again by a new tenant's queues."""
        self.forget_tenant(tenant)
        self.client.request_resync()

    async def run(self, *, fail_fast_auth: bool = True) -> None:
        """Run until :meth:`stop`. With ``fail_fast_auth`` a refused *first* login raises
        :class:`AmiAuthError`; later refusals are retried (see :mod:`pbx_core.ami.client`).
        A :meth:`stop` that comes before this task first runs still stops it (never cleared)."""
        tasks = {
            asyncio.create_task(self.engine.run(), name="engine"),
            asyncio.create_task(self.client.run(fail_fast_auth=fail_fast_auth), name="ami"),
            asyncio.create_task(self._stop.wait(), name="stop"),
        }
        if self.summary_every_s:
            tasks.add(asyncio.create_task(self._summaries(self.summary_every_s), name="summary"))
        for part in self.parts:
            tasks.add(asyncio.create_task(part.run(), name=f"part {type(part).__name__}"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.get_name() != "stop" and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.engine.stop()
            await self.client.close()
            await cancel_and_wait(tasks)

    async def _summaries(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            for line in summary_lines(self.state, self.stats()):
                log.info("%s", line)


# --------------------------------------------------------------------------- summary


def summary_lines(state: LiveState, stats: dict[str, Any] | None = None) -> list[str]:
    """A compact live summary: one line for the connection, one per queue (tenant/queue)."""
    lines: list[str] = []
    if stats is not None:
        a, e = stats["ami"], stats["engine"]
        lines.append(
            f"AMI {'up' if a['connected'] else 'DOWN'} · connects {a['connects']}"
            f" · events {a['events_queued']} · dropped {a['dropped_overflow']}"
            f" · malformed {a['malformed']} · resyncs {e['snapshots']}"
            + (f" · last error: {a['last_error']}" if a["last_error"] else "")
        )
    if not state.queues:
        lines.append("no queues seen yet")
    now = state.now  # kept current by the ticks, on Asterisk's clock
    for q in sorted(state.queues.values(), key=lambda q: (q.tenant, q.name)):
        states = [m.state for m in q.members.values() if m.state != LOGGED_OUT]
        busy = sum(s in (RINGING, ON_CALL, WRAPUP) for s in states)
        longest = longest_waiting_s(q, now)
        sl = kpis(q.counters)["sl_pct"]
        c = q.counters
        lines.append(
            f"{q.tenant}/{q.name}: waiting {len(q.callers)}"
            + (f" (longest {longest:.0f}s)" if longest is not None else "")
            + f" · agents {states.count(AVAILABLE)} available, {busy} busy, {states.count(PAUSED)} paused"
            + f" · offered {c.offered} answered {c.answered} abandoned {c.abandoned}"
            + f" · SL {'-' if sl is None else f'{sl:.1f}%'} ({q.service_level_s}s)"
        )
    return lines


def _describe(item: EngineItem) -> str:
    if isinstance(item, StatusSnapshot):
        return f"StatusSnapshot({len(item.queues)} queues)"
    if isinstance(item, TenantRemoved):
        return f"TenantRemoved({item.tenant})"
    return item.get("Event", "?")


# --------------------------------------------------------------------------- CLI

DESCRIPTION = """\
Bridge a real Asterisk: connect to its AMI (PBX_AMI_URL), keep a live model of every queue from
the events, resync it from QueueStatus after every (re)connect and every app_queue reload (so
queues and members Asterisk no longer has leave the model), publish every change to the
Redis bus (PBX_REDIS_URL) for any number of `pbx-core web` processes, and log a compact summary.

settings (environment):
  PBX_AMI_URL                 ami://user:secret@host:5038 (required)
  PBX_REDIS_URL               redis://host:6379/0, or redis+cluster://host:port for a Redis
                              Cluster (unset: no bus, the summary only)
  PBX_AMI_*                   timeouts, ping watchdog, reconnect cap, queue size, event filter
  PBX_SERVICE_LEVEL_S         service-level threshold T (default: each queue's own servicelevel)
  PBX_SHORT_ABANDON_S         abandons quicker than this are short abandons (default 5)
  PBX_TIMEZONE                timezone of "today" (default Europe/Amsterdam)
  (`pbx-core config --markdown` lists them all)

The AMI user needs read permission for `agent` (queue events), `call` (Hangup) and `system`
(the Reload event after which a deleted queue leaves the model), and write
`system` if PBX_AMI_EVENT_FILTER is on (without it the bridge filters locally). With
--callbacks also read `user` and write `originate,call,agent,reporting` (DBGet of the callback
dialplan's markers; see asterisk-config/manager.conf).

An unreachable Asterisk is retried with capped backoff (it may still be starting); a refused
first login is not (fix the user or secret).

exit status: 0 after Ctrl-C/SIGTERM, 1 if the first login is refused, 2 on a configuration error.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bridge",
        help="only the AMI bridge: Asterisk → live queue state, with a live summary",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--summary-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="log a per-queue summary this often (0: never; default 10)",
    )
    p.add_argument(
        "--callbacks",
        action="store_true",
        help="also run the callbacks on this bridge's AMI session and engine (dial booked "
        "callbacks, keep the dialplan's wait estimates fresh, counts on the wallboard); needs "
        "PBX_DATABASE_URL",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.ami_url is None:
        print(
            "pbx-core bridge: PBX_AMI_URL is not set. Set it to ami://user:secret@host:5038 "
            "(a manager.conf user), or run `pbx-core demo` to try it on simulated traffic.",
            file=sys.stderr,
        )
        return 2
    log.info("bridging AMI at %s%s", settings.ami_url, " with callbacks" if args.callbacks else "")
    if not settings.redis_url:
        log.warning("PBX_REDIS_URL is not set: the live state is not published (summary only)")
    try:
        asyncio.run(_run_until_signal(settings, args.summary_every or None, callbacks=args.callbacks))
    except AmiAuthError as exc:
        print(f"pbx-core bridge: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run_until_signal(settings: Settings, summary_every_s: float | None, *, callbacks: bool) -> None:
    async with bridge_with_bus(settings, summary_every_s, callbacks=callbacks) as (bridge, _):
        with on_stop_signals(bridge.stop):
            await bridge.run()
    for line in summary_lines(bridge.state, bridge.stats()):
        log.info("%s", line)


@contextlib.asynccontextmanager
async def bridge_with_bus(
    settings: Settings, summary_every_s: float | None = None, *, callbacks: bool = False
) -> AsyncIterator[tuple[Bridge, BusPublisher | None]]:
    """What ``pbx-core bridge`` runs, not yet started: the bridge with its publisher (when
    PBX_REDIS_URL is set) as a sink, and its callbacks part when asked. The caller runs
    ``bridge.run()`` inside the block; ``bench soak`` drives the same wiring."""
    from .bus import BusPublisher  # only the CLI needs Redis; the Bridge class does not

    async with contextlib.AsyncExitStack() as exits:
        parts: list[EnginePart] = []
        if callbacks:
            # A part of this bridge: the same AMI session and engine task; its counts reach the
            # bus through the same publisher, in the same ordered stream.
            from .callbacks.shell import callbacks_for

            parts.append(await exits.enter_async_context(callbacks_for(settings)))
        bridge = Bridge.from_settings(settings, summary_every_s=summary_every_s, parts=parts)
        publisher = BusPublisher.from_settings(settings) if settings.redis_url else None
        if publisher is not None:
            publisher.on_tenant_reset = bridge.forget_deleted_tenant  # deleted through a web process
            await publisher.start()
            exits.push_async_callback(publisher.close)
            bridge.add_sink(publisher)
        yield bridge, publisher
