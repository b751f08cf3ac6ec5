"""The callback worker: the imperative shell around the pure scheduler. One per Asterisk.

Why its own AMI connection feeding the bridge's engine (``pbx_core.domain``), instead of following
the boards on the Redis bus: the worker needs an AMI connection anyway (Originate, QueuePause,
Setvar, the UserEvents), and on that one connection the queue events and the callback events
arrive in Asterisk's order: the agent's pause, the originate's outcome and the member's next
state are never seen out of order, and there is no extra hop (or a bridge that must be up) between
"agent free" and "dial". The engine is the bridge's own code, so "free agent" means the same here
as on the wallboard.

One asyncio task (``_main``) owns the engine's LiveState *and* the SchedulerState. It takes the
AMI events in arrival order, runs the pure ``decide()`` after every batch and every second, and
carries out the commands in order, awaiting each: a ``Dial`` is saved as ``dialling`` (with its
originate id) *before* the Originate is sent, so a worker that dies in between restarts into a
``dialling`` record, finds the call by its channel variable (AMI ``Status``) and waits for its
result instead of dialling again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..ami.client import AmiClient, AmiOptions, EngineItem
from ..ami.errors import AmiActionError, AmiDisconnected, AmiError, AmiTimeout
from ..bridge import Engine
from ..config import AmiUrl
from ..domain.queue_state import Delta, EngineSettings
from ..tasks import cancel_and_wait
from . import scheduler as sched
from .ami_shell import (
    CALLBACK_EVENTS,
    CALLBACK_USER_EVENTS,
    PAUSE_REASON,
    OriginateEvent,
    RequestEvent,
    ResultEvent,
    ewt_variable,
    live_callback_channels,
    offer_variable,
    originate_action,
    parse_event,
    pause_action,
    setvar_action,
    status_action,
)
from .estimator import WaitEstimator
from .live import Pacing, expected_wait_now, queue_loads, split_queue, staffed_agents
from .model import (
    SOURCES,
    VAR_CALLBACK_ID,
    VAR_ORIGINATE_ID,
    AttemptResult,
    Callback,
    Status,
    result_from_dialstatus,
)
from .policy import callback_for_abandon
from .scheduler import CallbackRequest, Command, QueueKey, QueueLoad
from .settings import QueueInfo, fill_reserve_agents, load_queue_infos
from .store import DuplicateCallback

log = logging.getLogger(__name__)

POLL_OVERLAP_S = 5.0  # the store's stamps come from other processes' clocks
_ID_NAMESPACE = uuid.UUID("1f7c0e52-5a4e-4c1b-9d3e-6b2f3c7a9e01")


class Store(Protocol):
    """What the worker needs of ``pbx_core.callbacks.store.CallbackStore``."""

    async def load_open(self, tenant: str | None = None) -> list[Callback]: ...

    async def save(self, cb: Callback, change: str, *, at: float | None = None) -> bool | None: ...

    async def get(self, callback_id: str) -> Callback | None: ...

    async def updated_since(self, since: datetime, tenant: str | None = None) -> list[Callback]: ...


SummarySink = Callable[[list[Delta]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    tick_s: float = 1.0  # decide() at least this often
    refresh_s: float = 5.0  # re-send every PBX_EWT_/PBX_OFFER_ global (they vanish on a restart)
    store_poll_s: float = 1.0  # pick up callbacks booked through REST / the wallboard
    policies_every_s: float = 30.0  # re-read queue settings and hours
    reconcile_every_s: float = 30.0  # look for lost dials (no channel, no result)


# After a failed agent leg (declined, no device) that agent gets no callback for this long.
AGENT_COOLDOWN_S = 60.0
# "Today" is over in every timezone 26 hours after a callback closed.
FORGET_CLOSED_AFTER_S = 26 * 3600


@dataclass(slots=True)
class WorkerCounters:
    originates: int = 0
    originate_errors: int = 0
    results: int = 0
    requests: int = 0
    requests_refused: int = 0
    setvars: int = 0
    reconciles: int = 0


@dataclass(slots=True)
class _Refresh:
    sent: dict[str, str] = field(default_factory=dict)  # global variable -> value last sent
    last_full: float = float("-inf")
    summaries: dict[QueueKey, dict[str, Any]] = field(default_factory=dict)


class CallbackWorker:
    """``worker = CallbackWorker(url, store, sessions)``; ``await worker.run()`` until ``stop()``.

    ``clock``: the time the scheduler runs on (default: Asterisk's clock as learnt from its
    event timestamps). Tests inject the simulator's clock.
    """

    def __init__(
        self,
        url: AmiUrl,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ami: AmiOptions | None = None,
        engine: EngineSettings | None = None,
        options: WorkerOptions | None = None,
        clock: Callable[[], float] | None = None,
        summary_sink: SummarySink | None = None,
    ) -> None:
        base = ami or AmiOptions()
        # The dialplan's UserEvents and the Originate outcomes, between the queue events.
        ami_options = dataclasses.replace(
            base,
            extra_events=base.extra_events | CALLBACK_EVENTS,
            user_events=base.user_events | CALLBACK_USER_EVENTS,
        )
        self.client = AmiClient(url, ami_options)
        self.store = store
        self.sessions = sessions
        self.options = options or WorkerOptions()
        self.clock = clock or self.client.clock.now
        self.engine = Engine(self.client.events, engine, clock=self.clock)
        self.summary_sink = summary_sink
        self.state = sched.SchedulerState()
        self.infos: dict[QueueKey, QueueInfo] = {}
        self.estimators: dict[QueueKey, WaitEstimator] = {}
        self.pacing = Pacing()  # each queue's rolling SL and offered load, for fill callbacks
        self.counters = WorkerCounters()
        self._agent_rested_until: dict[str, float] = {}
        self.ready = asyncio.Event()  # restored and reconciled: serving
        self._refresh = _Refresh()
        self._stop = asyncio.Event()
        self._connects_seen = 0
        self._polled_at = datetime.now(UTC) - timedelta(seconds=POLL_OVERLAP_S)

    # ----------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        # Never clear _stop here: a stop() before this task first runs must still stop it.
        tasks = {
            asyncio.create_task(self.client.run(fail_fast_auth=True), name="callbacks-ami"),
            asyncio.create_task(self._main(), name="callbacks-main"),
            asyncio.create_task(self._stop.wait(), name="stop"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.get_name() != "stop" and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            await self.client.close()
            await cancel_and_wait(tasks)

    # ----------------------------------------------------------------- the owner task

    async def _main(self) -> None:
        await self.client.wait_connected()
        await self._load_policies()
        self.state = sched.restore(await self.store.load_open(), self._policies())
        opened = len(self.state.callbacks)
        # Today's closed callbacks too: the wallboard's "completed / on time today" must not
        # start again from zero when the worker restarts. (Final: the scheduler never acts on them.)
        # updated_at is the database writers' wall clock, not Asterisk's.
        since = datetime.now(UTC) - timedelta(seconds=FORGET_CLOSED_AFTER_S)
        for callback in await self.store.updated_since(since):
            if not callback.is_open and callback.id not in self.state.callbacks:
                self.state.put(callback)
        log.info("callbacks: restored %d open callbacks (and %d closed in the last day)",
                 opened, len(self.state.callbacks) - opened)
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        next_poll = loop.time() + self.options.store_poll_s
        next_policies = loop.time() + self.options.policies_every_s
        next_reconcile = loop.time() + self.options.reconcile_every_s
        events = self.client.events
        while True:
            if self.client.connected and self.client.counters.connects != self._connects_seen:
                # A (re)connect: calls may have ended while we were away; find what is still up.
                self._connects_seen = self.client.counters.connects
                await self._run(await self._reconcile())
                self.ready.set()
            batch: list[EngineItem] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_tick - loop.time())):
                    batch.append(await events.get())
            while not events.empty() and len(batch) < 5000:
                batch.append(events.get_nowait())
            commands: list[Command] = []
            for item in batch:
                commands.extend(self._take(item))
            await self._run(commands)
            if loop.time() >= next_tick:
                next_tick = loop.time() + self.options.tick_s
                self.engine.tick()
                if loop.time() >= next_poll:
                    next_poll = loop.time() + self.options.store_poll_s
                    await self._run(await self._poll_store())
                if loop.time() >= next_policies:
                    next_policies = loop.time() + self.options.policies_every_s
                    await self._load_policies()
                    self.forget_closed(self.clock())
                if loop.time() >= next_reconcile:
                    next_reconcile = loop.time() + self.options.reconcile_every_s
                    if self._lost_dials_possible():
                        await self._run(await self._reconcile())
                await self._refresh_globals()
            await self._run(self._decide())

    def forget_closed(self, now: float) -> int:
        """Drop callbacks closed more than a day ago from memory (SQL keeps them and their
        history): the summaries only count today's, and a worker runs for months."""
        horizon = now - FORGET_CLOSED_AFTER_S
        old = [cid for cid, c in self.state.callbacks.items()
               if not c.is_open and c.closed_at is not None and c.closed_at < horizon]
        for cid in old:
            del self.state.callbacks[cid]
        return len(old)

    def _decide(self) -> list[Command]:
        keys = set(self.infos) | {(c.tenant, c.queue) for c in self.state.callbacks.values() if c.is_open}
        now = self.clock()
        self._size_fill_reserves()
        loads = queue_loads(self.engine.state, keys, now, self.pacing, self.estimators)
        return sched.decide(self.state, now, self._without_resting_agents(loads, now))

    def _without_resting_agents(
        self, loads: dict[QueueKey, QueueLoad], now: float
    ) -> dict[QueueKey, QueueLoad]:
        rested = self._agent_rested_until
        for agent in [a for a, until in rested.items() if until <= now]:
            del rested[agent]
        if not rested:
            return loads
        return {
            key: dataclasses.replace(load, free_agents=[a for a in load.free_agents if a not in rested])
            for key, load in loads.items()
        }

    def _size_fill_reserves(self) -> None:
        """The fill reserve follows the agents staffed right now, not the provisioned members: a
        reserve of 3 on a queue 3 agents work at night would starve its fill work."""
        for key, info in self.infos.items():
            q = self.engine.state.queues.get(f"{key[0]}-{key[1]}")
            reserve = fill_reserve_agents(staffed_agents(q) if q is not None else info.members)
            policy = self.state.policies.get(key)
            if policy is not None and policy.fill_reserve_agents != reserve:
                self.state.policies[key] = dataclasses.replace(policy, fill_reserve_agents=reserve)

    # ----------------------------------------------------------------- events in

    def _take_queued(self) -> list[Command]:
        commands: list[Command] = []
        events = self.client.events
        while not events.empty():
            commands.extend(self._take(events.get_nowait()))
        return commands

    def _take(self, item: EngineItem) -> list[Command]:
        now = self.clock()
        if isinstance(item, dict) and item.get("Event") in CALLBACK_EVENTS:
            event = parse_event(item, now)
            if isinstance(event, RequestEvent):
                return self._on_request(event)
            if isinstance(event, ResultEvent):
                return self._on_result(event)
            if isinstance(event, OriginateEvent):
                return self._on_originate(event)
            return []
        if isinstance(item, dict) and item.get("Event") == "AgentComplete":
            self._observe_handled(item)
        return self._on_deltas(self.engine.process([item], now))

    def _observe_handled(self, frame: dict[str, str]) -> None:
        key = split_queue(frame.get("Queue", ""))
        if key is None:
            return
        try:
            talk = float(frame.get("TalkTime", "") or 0)
        except ValueError:
            return
        q = self.engine.state.queues.get(frame.get("Queue", ""))
        member = q.members.get(frame.get("Interface", "")) if q is not None else None
        wrapup = 0
        if q is not None:
            wrapup = (
                q.settings.wrapup_s if q.settings.wrapup_s is not None else (member.wrapup_s if member else 0)
            )
        self.estimators.setdefault(key, WaitEstimator()).observe(talk + wrapup)

    def _on_deltas(self, deltas: list[Delta]) -> list[Command]:
        self.pacing.observe(deltas)
        commands: list[Command] = []
        for delta in deltas:
            key = split_queue(delta.queue)
            if key is None:
                continue
            if delta.type == "caller.abandoned":
                commands.extend(self._on_abandon(key, delta))
            elif delta.type == "caller.answered" and delta.data.get("number"):
                commands.extend(sched.on_live_answer(self.state, *key, str(delta.data["number"]), delta.ts))
        return commands

    def _on_abandon(self, key: QueueKey, delta: Delta) -> list[Command]:
        policy = self.state.policy(*key)
        number = str(delta.data.get("number") or "")
        waited = float(delta.data.get("waited_s") or 0)
        if not number or not callback_for_abandon(policy, waited) or key not in self.infos:
            return []
        uniqueid = str(delta.data.get("uniqueid") or "")
        req = CallbackRequest(
            id=_request_id(key, uniqueid),
            tenant=key[0],
            queue=key[1],
            number=number,
            source="abandoned",
            requested_at=delta.ts,
        )
        return self._request(req)

    def _on_request(self, event: RequestEvent) -> list[Command]:
        key = (event.tenant, event.queue)
        if key not in self.infos:
            self.counters.requests_refused += 1
            log.warning("callbacks: booking for unknown queue %s-%s ignored", event.tenant, event.queue)
            return []
        if event.source not in ("queue_offer", "after_hours"):
            self.counters.requests_refused += 1
            log.warning(
                "callbacks: booking with source %r ignored (queue_offer or after_hours)", event.source
            )
            return []
        req = CallbackRequest(
            id=_request_id(key, event.uniqueid),
            tenant=event.tenant,
            queue=event.queue,
            number=event.number,
            source=event.source,  # type: ignore[arg-type]  # checked above
            requested_at=event.ts,
            joined_at=event.joined_at if event.source == "queue_offer" else None,
        )
        return self._request(req)

    def _request(self, req: CallbackRequest) -> list[Command]:
        assert req.source in SOURCES
        try:
            _callback, commands = sched.request(self.state, req)
        except ValueError as exc:
            self.counters.requests_refused += 1
            log.warning("callbacks: booking refused: %s", exc)
            return []
        self.counters.requests += bool(commands)
        return commands

    def _on_result(self, event: ResultEvent) -> list[Command]:
        return self._resolve(event.callback_id, event.originate_id, _dial_result(event.dialstatus), event.ts)

    def _on_originate(self, event: OriginateEvent) -> list[Command]:
        if event.success:
            return []  # the agent answered; the customer leg's result follows as a UserEvent
        callback = next((c for c in self.state.in_flight() if c.originate_id == event.originate_id), None)
        if callback is None:
            return []
        return self._resolve(callback.id, event.originate_id, "agent_unavailable", event.ts)

    def _resolve(
        self, callback_id: str, originate_id: str, result: AttemptResult, at: float
    ) -> list[Command]:
        before = self.state.callbacks.get(callback_id)
        commands = sched.on_result(self.state, callback_id, originate_id, result, at)
        if commands and before is not None and before.agent:
            if result == "agent_unavailable":
                # An agent who declined (or whose phone is gone) still looks idle to the queue:
                # without a pause they would be rung again at once, in a loop.
                self._agent_rested_until[before.agent] = at + AGENT_COOLDOWN_S
            self.counters.results += 1
            commands.append(_Unpause(before.tenant, before.queue, before.agent))  # type: ignore[arg-type]
        return commands

    # ----------------------------------------------------------------- commands out

    async def _run(self, commands: Iterable[Command | _Unpause]) -> None:
        pending = list(commands)
        while pending:
            command = pending.pop(0)
            if isinstance(command, sched.Save):
                await self._save(command.callback, command.change)
            elif isinstance(command, sched.Dial):
                pending[:0] = await self._dial(command)
            elif isinstance(command, sched.Hangup):
                await self._hangup(command)
            elif isinstance(command, _Unpause):
                await self._unpause(command)

    async def _save(self, callback: Callback, change: str) -> bool:
        """Persist; False when the database says otherwise (closed through the API meanwhile, or
        a duplicate booked at the same moment): the database wins and the state follows it."""
        try:
            written = await self.store.save(callback, change, at=self.clock())
        except DuplicateCallback:
            # Booked at the same moment through REST: the stored one wins, ours is forgotten.
            log.info("callbacks: %s duplicates an open callback; keeping the stored one", callback.id)
            self.state.callbacks.pop(callback.id, None)
            if self.state.open_by_key.get(callback.key) == callback.id:
                del self.state.open_by_key[callback.key]
            return False
        # Any other error propagates (crash-only): a restart restores what the database holds.
        if written is False:
            stored = await self.store.get(callback.id)
            if stored is not None:
                self.state.put(stored)
            return False
        return True

    async def _dial(self, dial: sched.Dial) -> list[Command | _Unpause]:
        cb = dial.callback
        if not await self._save(cb, "dialling"):  # before the Originate: what makes a restart safe
            return []  # cancelled through the API meanwhile: never dialled
        now = self.clock()
        try:
            await self.client.action(pause_action(cb.tenant, cb.queue, dial.agent, True))
        except AmiActionError as exc:
            log.info("callbacks: cannot reserve agent %s for %s: %s", dial.agent, cb.id, exc)
            return list(sched.on_result(self.state, cb.id, dial.originate_id, "agent_unavailable", now))
        except (AmiDisconnected, AmiTimeout) as exc:
            log.warning("callbacks: %s: %s; the dial is retried after the reconnect", cb.id, exc)
            return list(sched.on_result(self.state, cb.id, dial.originate_id, "agent_unavailable", now))
        try:
            action = originate_action(cb, dial.agent, dial.originate_id)
            await self.client.action(action)
            self.counters.originates += 1
            log.info("callbacks: dialling %s for %s-%s via %s", cb.id, cb.tenant, cb.queue, dial.agent)
            return []
        except (AmiActionError, ValueError) as exc:
            self.counters.originate_errors += 1
            log.error("callbacks: Originate for %s refused: %s", cb.id, exc)
            back = list(sched.on_result(self.state, cb.id, dial.originate_id, "failed", now))
            return [*back, _Unpause(cb.tenant, cb.queue, dial.agent)]
        except (AmiDisconnected, AmiTimeout) as exc:
            # It may or may not have reached Asterisk: the record stays ``dialling`` and the
            # reconcile after the reconnect decides (live channel, or lost after dial_timeout_s).
            self.counters.originate_errors += 1
            log.warning("callbacks: Originate for %s unconfirmed: %s", cb.id, exc)
            return []

    async def _hangup(self, command: sched.Hangup) -> None:
        cb = command.callback
        try:
            items = await self.client.listing(status_action(VAR_ORIGINATE_ID))
            for item in items:
                variables = item.get("Variable", "")
                if f"{VAR_ORIGINATE_ID}={command.originate_id}" in variables.split("\n"):
                    await self.client.action(
                        {"Action": "Hangup", "Channel": item.get("Channel", "")}, check=False
                    )
        except AmiError as exc:
            log.warning("callbacks: hanging up cancelled %s failed: %s", cb.id, exc)
        if cb.agent:
            await self._unpause(_Unpause(cb.tenant, cb.queue, cb.agent))

    async def _unpause(self, command: _Unpause) -> None:
        q = self.engine.state.queues.get(f"{command.tenant}-{command.queue}")
        member = q.members.get(command.agent) if q is not None else None
        if member is not None and member.paused and member.paused_reason != PAUSE_REASON:
            return  # the agent took a break meanwhile: theirs to end, not ours
        try:
            await self.client.action(pause_action(command.tenant, command.queue, command.agent, False))
        except AmiError as exc:
            log.warning("callbacks: unpausing %s after a callback failed: %s", command.agent, exc)

    # ----------------------------------------------------------------- restart and drift

    def _lost_dials_possible(self) -> bool:
        now = self.clock()
        return any(
            c.dialled_at is not None
            and now - c.dialled_at >= self.state.policy(c.tenant, c.queue).dial_timeout_s
            for c in self.state.in_flight()
        )

    async def _reconcile(self) -> list[Command | _Unpause]:
        """Dialling records whose call is gone, with no result, become failed attempts (after
        ``dial_timeout_s``); those whose channel is up are left to finish."""
        if not self.state.in_flight():
            return []
        try:
            items = await self.client.listing(status_action(VAR_CALLBACK_ID))
        except AmiError as exc:
            log.warning("callbacks: cannot list live channels (%s); reconciling later", exc)
            return []
        self.counters.reconciles += 1
        # Every event Asterisk sent before this listing is already on the events queue (the socket
        # callback enqueues in stream order, then completes the listing). Apply them first: a call
        # that ended just before the listing has its result there, and reading "no channel" without
        # it would count a failed attempt and dial the customer again.
        await self._run(self._take_queued())
        live = live_callback_channels(items)
        agents = {c.id: c for c in self.state.in_flight()}
        commands: list[Command | _Unpause] = list(sched.reconcile(self.state, self.clock(), set(live)))
        for command in list(commands):
            if isinstance(command, sched.Save) and command.callback.id in agents:
                before = agents[command.callback.id]
                if before.agent:
                    commands.append(_Unpause(before.tenant, before.queue, before.agent))
        return commands

    async def _poll_store(self) -> list[Command | _Unpause]:
        """Changes made outside the worker: callbacks booked through REST or the wallboard join
        the line; callbacks cancelled through the API leave it (a dial in flight is hung up)."""
        since = datetime.now(UTC) - timedelta(seconds=POLL_OVERLAP_S)
        try:
            rows = await self.store.updated_since(self._polled_at)
        except Exception as exc:  # a database blip: the next poll tries again
            log.warning("callbacks: polling the store failed: %s", exc)
            return []
        self._polled_at = since
        commands: list[Command | _Unpause] = []
        for cb in rows:
            mine = self.state.callbacks.get(cb.id)
            if mine is None:
                if cb.is_open and self.state.open_for(cb.tenant, cb.queue, cb.number) is None:
                    self.state.put(cb)
            elif mine.is_open and not cb.is_open:
                if mine.status is Status.DIALLING and mine.originate_id:
                    commands.append(sched.Hangup(mine, mine.originate_id))
                self.state.put(cb)
        return commands

    async def _load_policies(self) -> None:
        try:
            self.infos = await load_queue_infos(self.sessions)
        except Exception as exc:
            if not self.infos:
                raise
            log.warning("callbacks: re-reading queue settings failed (%s); keeping the last ones", exc)
            return
        self.state.policies = self._policies()
        for key, info in self.infos.items():
            self.pacing.configure(key, info.service_level_s, info.policy.short_abandon_s)

    def _policies(self) -> dict[QueueKey, Any]:
        return {key: info.policy for key, info in self.infos.items()}

    # ----------------------------------------------------------------- expected wait, summaries

    def expected_wait(self, key: QueueKey) -> float | None:
        estimator = self.estimators.setdefault(key, WaitEstimator())
        return expected_wait_now(self.engine.state, key, estimator, self.state.callbacks.values())

    async def _refresh_globals(self) -> None:
        now = self.clock()
        full = now - self._refresh.last_full >= self.options.refresh_s or now < self._refresh.last_full
        if full:
            self._refresh.last_full = now
        for key, info in sorted(self.infos.items()):
            ewt = self.expected_wait(key)
            offer = info.policy.offer and ewt is not None and ewt >= info.policy.offer_after_s
            values = {
                ewt_variable(*key): "" if ewt is None else str(round(ewt)),
                offer_variable(*key): "1" if offer else "0",
            }
            for variable, value in values.items():
                if not full and self._refresh.sent.get(variable) == value:
                    continue
                try:
                    await self.client.action(setvar_action(variable, value))
                except AmiError as exc:
                    log.warning("callbacks: Setvar %s failed: %s", variable, exc)
                    self._refresh.sent.pop(variable, None)
                    continue
                self.counters.setvars += 1
                self._refresh.sent[variable] = value
        if self.summary_sink is not None:
            deltas = self._summary_deltas(now)
            if deltas:
                await self.summary_sink(deltas)

    def _summary_deltas(self, now: float) -> list[Delta]:
        deltas: list[Delta] = []
        for key, info in sorted(self.infos.items()):
            data = summary(self.state.callbacks.values(), key, now, info.timezone)
            if self._refresh.summaries.get(key) != data:
                self._refresh.summaries[key] = data
                deltas.append(Delta("callbacks.summary", key[0], f"{key[0]}-{key[1]}", now, data))
        return deltas


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True, slots=True)
class _Unpause:
    tenant: str
    queue: str
    agent: str


def _dial_result(dialstatus: str) -> AttemptResult:
    return result_from_dialstatus(dialstatus)


def _request_id(key: QueueKey, uniqueid: str) -> str:
    """The same call's booking delivered twice is one callback (ids from Asterisk's Uniqueid)."""
    if not uniqueid:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_ID_NAMESPACE, f"{key[0]}/{key[1]}/{uniqueid}"))


def summary(callbacks: Iterable[Callback], key: QueueKey, now: float, timezone: str) -> dict[str, Any]:
    """The ``callbacks.summary`` delta's data for one queue (contract: pending, in progress,
    overdue, completed and on time today, the next few in line)."""
    zone = ZoneInfo(timezone)
    midnight = (
        datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    )
    mine = [c for c in callbacks if (c.tenant, c.queue) == key]
    completed = [c for c in mine if c.status is Status.COMPLETED and (c.closed_at or 0) >= midnight]
    on_time = sum(1 for c in completed if c.on_time)
    waiting = sorted(
        (c for c in mine if c.status in (Status.PENDING, Status.OVERDUE)), key=lambda c: (c.tier, c.place_at)
    )
    return {
        "pending": sum(1 for c in mine if c.status is Status.PENDING),
        "in_progress": sum(1 for c in mine if c.status is Status.DIALLING),
        "overdue": sum(1 for c in mine if c.status is Status.OVERDUE),
        "completed_today": len(completed),
        "on_time_today": on_time,
        "on_time_pct": round(100.0 * on_time / len(completed), 1) if completed else None,
        "next": [
            {
                "id": c.id,
                "number": c.number,
                "status": c.status.value,
                "due_by": c.due_by,
                "place_at": c.place_at,
            }
            for c in waiting[:5]
        ],
    }
