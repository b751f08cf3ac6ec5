"""The callbacks' share of the engine task: what one PBX's callbacks do with its event stream.

Pure, like ``apply``: no I/O, no clock (time comes in), no locks. The bridge's engine task owns
both the live queue state and this service, and after every batch hands it, in stream order,
the batch's deltas and the frames and inputs it watches (:meth:`CallbackService.step`):

- the engine's deltas: who joined, was answered, abandoned (pacing, abandoned-caller callbacks,
  a caller who got through live no longer needs their callback);
- the dialplan's UserEvents (a booking, a callback call's result) and ``OriginateResponse`` (the
  agent leg's outcome), at their place among the queue events of the same AMI session;
- the shell's inputs (:data:`Input`): what the database holds (restore, bookings and cancels made
  through the API, a save it refused), the outcome of an action (an Originate Asterisk refused),
  and a reconcile listing. The shell puts them on the engine's queue, so they too take their
  place in the stream: a reconcile listing is applied after every event Asterisk sent before it.

It returns the commands the shell carries out (:data:`Command`, in order) and the deltas it adds
to the stream (the per-queue ``callbacks.summary``), which reach the bus with the engine's own.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ...domain.queue_state import AVAILABLE, Delta, LiveState
from . import scheduler as sched
from .estimator import WaitEstimator
from .events import (
    AGENT_COMPLETE,
    ORIGINATE_RESPONSE,
    REQUEST_EVENT,
    RESULT_EVENT,
    USER_EVENT,
    OriginateEvent,
    RequestEvent,
    ResultEvent,
    parse_event,
)
from .live import Pacing, line_ahead, queue_loads, split_queue, staffed_agents
from .model import SOURCES, WAITING, AttemptResult, Callback, Status, normalise_number, result_from_dialstatus
from .policy import (
    QueueInfo,
    QueuePolicy,
    callback_for_abandon,
    fill_reserve_agents,
    promised_fill_rate,
    tier,
)
from .promise import LineAhead, Window, heard_window
from .scheduler import CallbackRequest, QueueKey, QueueLoad

log = logging.getLogger(__name__)

# After a failed agent leg (declined, no device) that agent gets no callback for this long.
AGENT_COOLDOWN_S = 60.0
# "Today" is over in every timezone 26 hours after a callback closed.
FORGET_CLOSED_AFTER_S = 26 * 3600
# Inputs that arrive before the first restore wait for it; past this many the oldest go.
MAX_BACKLOG = 100_000
NUMBERS_MAX = 500  # callbacks per queue in a summary's "numbers" (the wallboard keeps 500 abandons)
_ID_NAMESPACE = uuid.UUID("1f7c0e52-5a4e-4c1b-9d3e-6b2f3c7a9e01")


# --------------------------------------------------------------------------- commands out


@dataclass(frozen=True, slots=True)
class Unpause:
    """Give an agent reserved for a callback back to the queue (QueuePause false)."""

    tenant: str
    queue: str
    agent: str


Command = sched.Save | sched.Dial | sched.Hangup | Unpause


# --------------------------------------------------------------------------- inputs in
# Each carries the shell's ``epoch``: after the shell restarts from the database, inputs of its
# previous run still on the queue are dropped instead of applied to the new state.


@dataclass(frozen=True, slots=True)
class Restored:
    """The database's open callbacks (and today's closed ones, for the counts) and the queues'
    policies: the state the service starts from. Nothing is decided before it."""

    epoch: int
    callbacks: tuple[Callback, ...]
    closed: tuple[Callback, ...]
    infos: Mapping[QueueKey, QueueInfo]


@dataclass(frozen=True, slots=True)
class PoliciesLoaded:
    epoch: int
    infos: Mapping[QueueKey, QueueInfo]
    at: float


@dataclass(frozen=True, slots=True)
class StoreChanged:
    """Rows written outside the engine (REST and wallboard bookings, API cancels)."""

    epoch: int
    callbacks: tuple[Callback, ...]


@dataclass(frozen=True, slots=True)
class Reconciled:
    """Which callback ids are on a live channel (an AMI ``Status`` listing, applied after every
    event Asterisk sent before it), and for dials without a channel, the dialplan's marker
    (originate id -> value; None: not there; absent: the lookup failed)."""

    epoch: int
    live: frozenset[str]
    at: float
    markers: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DialFailed:
    """The shell could not place an attempt (QueuePause or Originate refused)."""

    epoch: int
    callback_id: str
    originate_id: str
    result: AttemptResult
    at: float
    unpause: bool


@dataclass(frozen=True, slots=True)
class StoredWins:
    """A save the database refused: the stored record (closed through the API meanwhile) wins."""

    epoch: int
    callback: Callback


@dataclass(frozen=True, slots=True)
class Forgotten:
    """A booking that duplicates one stored at the same moment: the stored one wins."""

    epoch: int
    callback: Callback


Input = Restored | PoliciesLoaded | StoreChanged | Reconciled | DialFailed | StoredWins | Forgotten
INPUTS = (Restored, PoliciesLoaded, StoreChanged, Reconciled, DialFailed, StoredWins, Forgotten)

Frame = Mapping[str, str]
Mark = tuple[int, Any]  # (index into the batch's deltas, a watched frame or an Input)


@dataclass(slots=True)
class ServiceCounters:
    results: int = 0  # attempt results applied
    requests: int = 0  # callbacks booked from the dialplan and for abandoned callers
    requests_refused: int = 0
    reconciles: int = 0


@dataclass(slots=True)
class CallbackService:
    """One PBX's callbacks: the scheduler's state plus what it learns from the live stream."""

    state: sched.SchedulerState = field(default_factory=sched.SchedulerState)
    infos: dict[QueueKey, QueueInfo] = field(default_factory=dict)
    estimators: dict[QueueKey, WaitEstimator] = field(default_factory=dict)
    pacing: Pacing = field(default_factory=Pacing)  # each queue's rolling SL and load, for fill work
    counters: ServiceCounters = field(default_factory=ServiceCounters)
    epoch: int = 0
    restored: bool = False
    reconciled: bool = False  # the first listing after the restore is applied: serving
    agent_rested_until: dict[str, float] = field(default_factory=dict)
    summaries: dict[QueueKey, dict[str, Any]] = field(default_factory=dict)
    backlog: list[tuple[Any, float]] = field(default_factory=list)  # inputs before the restore
    _moved: set[QueueKey] = field(default_factory=set)  # queues whose line moved in this batch
    # Restored bookings without a window yet (booked through REST just before a restart):
    # promised once serving (after the first reconcile listing: the live line is known).
    unpromised: set[str] = field(default_factory=set)

    @property
    def ready(self) -> bool:
        return self.restored and self.reconciled

    # ----------------------------------------------------------------- the engine's entry point

    def step(
        self,
        live: LiveState,
        deltas: Sequence[Delta],
        marks: Sequence[Mark],
        now: float,
        ticked: bool,
    ) -> tuple[list[Delta], list[Command]]:
        """One engine batch: its deltas with the watched frames and inputs at their places (each
        mark's index is the number of deltas before it). Returns the summary deltas to publish
        and the commands to carry out."""
        news = False  # an input from the shell (restore, stored changes, a reconcile...)
        if marks:
            commands: list[Command] = []
            start = 0
            for index, item in marks:
                if index > start:
                    commands += self.on_deltas(live, deltas[start:index], now)
                    start = index
                commands += self.take(live, item, now)
                news = news or not isinstance(item, dict)
            if start < len(deltas):
                commands += self.on_deltas(live, deltas[start:] if start else deltas, now)
        elif deltas:
            commands = self.on_deltas(live, deltas, now)
        elif not ticked:
            return [], []  # a read of noise only: nothing changed
        else:
            commands = []
        out: list[Delta] = []
        if self.ready:
            if self.unpromised:  # before anything is dialled: the line is known by now
                commands += self.promise_restored(live, now)
            if ticked:
                self.size_fill_reserves(live)
            if ticked or news:
                commands += self.decide(live, now)
            else:
                moved = self._moved
                for command in commands:  # a booking just made
                    if isinstance(command, sched.Save) and command.callback.status in WAITING:
                        moved.add((command.callback.tenant, command.callback.queue))
                if moved:
                    commands += self.decide(live, now, moved)
            if ticked:
                out = self.summary_deltas(now, live)
        if self._moved:
            self._moved = set()
        return out, commands

    # ----------------------------------------------------------------- inputs

    def take(self, live: LiveState, item: Any, now: float) -> list[Command]:
        """A watched frame or a shell input, at its place in the stream."""
        if not isinstance(item, dict):  # an input from the shell (frames are dicts, or Headers)
            if item.epoch != self.epoch:
                return []  # from the shell's previous run
            if isinstance(item, Restored):
                return self.restore(live, item, now)
            if not self.restored:
                self._hold(item, now)
                return []
            return self._apply_input(live, item, now)
        if not self.restored:
            self._hold(item, now)
            return []
        name = item.get("Event")
        if name == AGENT_COMPLETE:
            self.observe_handled(live, item)
            return []
        if name == ORIGINATE_RESPONSE and not self.state.dialling:
            return []  # not ours: no callback is being dialled (callers originated into queues)
        if name == USER_EVENT and item.get("UserEvent") not in (REQUEST_EVENT, RESULT_EVENT):
            return []  # someone else's UserEvent
        event = parse_event(item, now)
        if isinstance(event, RequestEvent):
            return self.on_request(live, event)
        if isinstance(event, ResultEvent):
            return self.resolve(
                event.callback_id, event.originate_id, result_from_dialstatus(event.dialstatus), event.ts
            )
        if isinstance(event, OriginateEvent):
            return self.on_originate(event)
        return []

    def on_deltas(self, live: LiveState, deltas: Sequence[Delta], now: float) -> list[Command]:
        if not self.restored:
            relevant = [d for d in deltas if d.type in _CALLER_DELTAS]
            if relevant:
                self._hold(relevant, now)
            return []
        # One pass, on the hot path: the pacing's rolling SL and load (as live.Pacing.observe),
        # an abandon that earns a callback, a caller through live whose callback is moot, and the
        # queues whose line moved for a waiting callback (see _LINE_MOVES).
        commands: list[Command] = []
        waiting = self.state.waiting
        moved = self._moved
        queues = self.pacing.queues
        for delta in deltas:
            kind = delta.type
            what = _KINDS.get(kind)
            if what is None or (what is _MOVES and not waiting and kind != "caller.abandoned"):
                continue
            tenant, sep, short = delta.queue.partition("-")
            if not sep or not tenant or not short:
                continue
            key = (tenant, short)
            if what is _MOVES:
                if key in waiting and (kind != "agent.state" or delta.data.get("state") == AVAILABLE):
                    moved.add(key)
                if kind != "caller.abandoned":
                    continue
            pacing = queues.get(key) or self.pacing.queue(key)
            if kind == "caller.joined":
                pacing.load.arrived(delta.ts)
                pacing.hour_load.arrived(delta.ts)
            elif kind == "caller.answered":
                held = float(delta.data.get("hold_s") or 0)
                pacing.sl.answered(delta.ts, held)
                pacing.abandons.ended(delta.ts, held, abandoned=False)
                number = delta.data.get("number")
                if number and self.state.open_by_key:
                    commands.extend(sched.on_live_answer(self.state, *key, str(number), delta.ts))
            else:
                waited = float(delta.data.get("waited_s") or 0)
                pacing.sl.abandoned(delta.ts, waited)
                pacing.abandons.ended(delta.ts, waited, abandoned=True)
                commands.extend(self.on_abandon(live, key, delta))
        return commands

    def _hold(self, item: Any, now: float) -> None:
        if len(self.backlog) >= MAX_BACKLOG:
            del self.backlog[0]
            log.warning("callbacks: not restored yet; dropping the oldest held event")
        self.backlog.append((item, now))

    def restore(self, live: LiveState, restored: Restored, now: float) -> list[Command]:
        """Start from the database; then apply what arrived meanwhile, in order."""
        self.infos = dict(restored.infos)
        self.state = sched.restore(restored.callbacks, self.policies())
        for callback in restored.closed:
            if not callback.is_open and callback.id not in self.state.callbacks:
                self.state.put(callback)
        self._configure_pacing()
        self.unpromised = {
            c.id for c in restored.callbacks if c.promised_from is None and c.status is Status.PENDING
        }
        self.restored = True
        log.info(
            "callbacks: restored %d open callbacks (and %d closed in the last day)",
            len(restored.callbacks), len(self.state.callbacks) - len(restored.callbacks),
        )
        commands: list[Command] = []
        backlog, self.backlog = self.backlog, []
        for item, at in backlog:
            if isinstance(item, list):
                commands += self.on_deltas(live, item, at)
            else:
                commands += self.take(live, item, at)
        return commands

    def _apply_input(self, live: LiveState, item: Input, now: float) -> list[Command]:
        if isinstance(item, Reconciled):
            self.reconciled = True
            return self.reconcile(item.live, item.at, item.markers)
        if isinstance(item, StoreChanged):
            return self.merge_stored(live, item.callbacks, now)
        if isinstance(item, DialFailed):
            before = self.state.callbacks.get(item.callback_id)
            commands: list[Command] = list(
                sched.on_result(self.state, item.callback_id, item.originate_id, item.result, item.at)
            )
            if commands and item.unpause and before is not None and before.agent:
                commands.append(Unpause(before.tenant, before.queue, before.agent))
            return commands
        if isinstance(item, StoredWins):
            self.state.put(item.callback)
            return []
        if isinstance(item, Forgotten):
            mine = self.state.callbacks.get(item.callback.id)
            if mine is not None and mine.is_open:
                self.state.drop(mine.id)
            return []
        if isinstance(item, PoliciesLoaded):
            self.infos = dict(item.infos)
            self.state.policies = self.policies()
            self._configure_pacing()
            self.forget_closed(item.at)
            return []
        return []

    # ----------------------------------------------------------------- bookings

    def on_abandon(self, live: LiveState, key: QueueKey, delta: Delta) -> list[Command]:
        policy = self.state.policy(*key)
        number = str(delta.data.get("number") or "")
        waited = float(delta.data.get("waited_s") or 0)
        if not number or not callback_for_abandon(policy, waited) or key not in self.infos:
            return []
        req = CallbackRequest(
            id=request_id(key, str(delta.data.get("uniqueid") or "")),
            tenant=key[0],
            queue=key[1],
            number=number,
            source="abandoned",
            requested_at=delta.ts,
        )
        return self.request(live, req)

    def on_request(self, live: LiveState, event: RequestEvent) -> list[Command]:
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
            id=request_id(key, event.uniqueid),
            tenant=event.tenant,
            queue=event.queue,
            number=event.number,
            source=event.source,  # type: ignore[arg-type]  # checked above
            requested_at=event.ts,
            joined_at=event.joined_at if event.source == "queue_offer" else None,
            # What the caller heard is the promise; without it (no quote yet) one is computed.
            window=heard_window(event.window_from, event.window_to, event.later, event.ts),
        )
        return self.request(live, req)

    def request(self, live: LiveState | None, req: CallbackRequest) -> list[Command]:
        """Book (with its promise computed from the line ahead of it now, unless it comes with
        the window the caller heard)."""
        assert req.source in SOURCES
        if req.window is None and req.line is None and live is not None:
            req = dataclasses.replace(req, line=self.line_for(live, req))
        try:
            _callback, commands = sched.request(self.state, req)
        except ValueError as exc:
            self.counters.requests_refused += 1
            log.warning("callbacks: booking refused: %s", exc)
            return []
        self.counters.requests += bool(commands)
        return list(commands)

    def line_for(self, live: LiveState, req: CallbackRequest) -> LineAhead:
        key = (req.tenant, req.queue)
        level = tier(self.state.policy(*key), req.source)
        place_at = req.joined_at if req.source == "queue_offer" else None
        q = live.queues.get(f"{req.tenant}-{req.queue}")
        rate = self._fill_rate(key, q, req.requested_at)
        aht = self.estimator(key).aht_s
        return line_ahead(q, self.waiting(key), aht, place_at=place_at, tier=level, fill_rate=rate)

    def waiting(self, key: QueueKey) -> list[Callback]:
        callbacks = self.state.callbacks
        return [callbacks[cb_id] for cb_id in self.state.waiting.get(key, ())]

    def quote(self, live: LiveState, key: QueueKey, now: float) -> Window | None:
        """The window a callback booked now (in line, at the back) would be promised."""
        if key not in self.infos:
            return None
        line = line_ahead(live.queues.get(f"{key[0]}-{key[1]}"), self.waiting(key), self.estimator(key).aht_s)
        try:
            return sched.quote(self.state.policy(*key), now, line, 0)
        except ValueError:
            return None

    # ----------------------------------------------------------------- attempts

    def on_originate(self, event: OriginateEvent) -> list[Command]:
        if event.success:
            return []  # the agent answered; the customer leg's result follows as a UserEvent
        # The originate id is "{callback id}:{attempt}" (scheduler.decide): its callback at once.
        callback = self.state.callbacks.get(event.originate_id.rpartition(":")[0])
        if callback is None or callback.originate_id != event.originate_id:
            callback = next((c for c in self.state.in_flight() if c.originate_id == event.originate_id), None)
        if callback is None:
            return []
        return self.resolve(callback.id, event.originate_id, "agent_unavailable", event.ts)

    def resolve(self, callback_id: str, originate_id: str, result: AttemptResult, at: float) -> list[Command]:
        before = self.state.callbacks.get(callback_id)
        commands: list[Command] = list(sched.on_result(self.state, callback_id, originate_id, result, at))
        if commands and before is not None and before.agent:
            if result == "agent_unavailable":
                # An agent who declined (or whose phone is gone) still looks idle to the queue:
                # without a rest they would be rung again at once, in a loop.
                self.agent_rested_until[before.agent] = at + AGENT_COOLDOWN_S
            self.counters.results += 1
            commands.append(Unpause(before.tenant, before.queue, before.agent))
        return commands

    def reconcile(
        self, live_ids: frozenset[str], at: float, markers: Mapping[str, str | None] | None = None
    ) -> list[Command]:
        """Dialling records whose call is gone with no result: the dialplan's marker says what
        became of them (scheduler.reconcile: nothing that may have reached the customer is dialled
        again); those whose channel is up are left to finish."""
        self.counters.reconciles += 1
        before = {c.id: c for c in self.state.in_flight()}
        commands: list[Command] = list(sched.reconcile(self.state, at, live_ids, markers))
        for command in list(commands):
            if isinstance(command, sched.Save) and command.callback.id in before:
                self.counters.results += 1  # an attempt's outcome, found by the reconcile
                was = before[command.callback.id]
                if was.agent:
                    commands.append(Unpause(was.tenant, was.queue, was.agent))
        return commands

    def merge_stored(self, live: LiveState, rows: Iterable[Callback], now: float) -> list[Command]:
        """Changes made outside the engine: callbacks booked through REST or the wallboard join
        the line, promised a window from the line ahead of them now; callbacks cancelled through
        the API leave it (a dial in flight is hung up)."""
        commands: list[Command] = []
        for cb in rows:
            mine = self.state.callbacks.get(cb.id)
            if mine is None:
                if cb.is_open and self.state.open_for(cb.tenant, cb.queue, cb.number) is None:
                    self.state.put(cb)
                    if cb.promised_from is None and cb.status is Status.PENDING:
                        commands += self.promise_booked(live, cb, now)
            elif mine.is_open and not cb.is_open:
                if mine.status is Status.DIALLING and mine.originate_id:
                    commands.append(sched.Hangup(mine, mine.originate_id))
                self.state.put(cb)
        return commands

    def promise_booked(self, live: LiveState, cb: Callback, now: float) -> list[Command]:
        """A window for a callback booked outside the engine (REST, the wallboard), from the line
        ahead of it as it is now: it goes to the back of the line, like any booking now."""
        key = (cb.tenant, cb.queue)
        if key not in self.infos:
            return []
        policy = self.state.policy(*key)
        req = CallbackRequest(cb.id, cb.tenant, cb.queue, cb.number, cb.source, max(now, cb.requested_at))
        others = [c for c in self.waiting(key) if c.id != cb.id]
        q = live.queues.get(f"{cb.tenant}-{cb.queue}")
        rate = self._fill_rate(key, q, now)
        line = line_ahead(q, others, self.estimator(key).aht_s, tier=cb.tier, fill_rate=rate)
        try:
            window = sched.quote(policy, req.requested_at, line, cb.tier)
        except ValueError:
            return []
        promised = cb.evolve(promised_from=window.start, due_by=window.end)
        self.state.put(promised)
        return [sched.Save(promised, "promised")]

    def promise_restored(self, live: LiveState, now: float) -> list[Command]:
        commands: list[Command] = []
        for cb_id in sorted(self.unpromised):
            cb = self.state.callbacks.get(cb_id)
            if cb is not None and cb.status is Status.PENDING and cb.promised_from is None:
                commands += self.promise_booked(live, cb, now)
        self.unpromised.clear()
        return commands

    def _fill_rate(self, key: QueueKey, q: Any, now: float) -> float:
        aht = self.estimator(key).aht_s
        pacing = self.pacing.queue(key)
        load = pacing.hour_load.share(now, aht, staffed_agents(q)) if q is not None else None
        return promised_fill_rate(self.state.policy(*key), pacing.fill_rate(now), load)

    def lost_dials(self, now: float) -> list[Callback]:
        """Dials past ``dial_timeout_s`` without a result: a reconcile may be needed."""
        return [
            c for c in self.state.in_flight()
            if c.dialled_at is not None
            and now - c.dialled_at >= self.state.policy(c.tenant, c.queue).dial_timeout_s
        ]

    def lost_dials_possible(self, now: float) -> bool:
        return bool(self.lost_dials(now))

    # ----------------------------------------------------------------- deciding

    def decide(self, live: LiveState, now: float, only: Iterable[QueueKey] | None = None) -> list[Command]:
        """Deadlines, then the callbacks whose turn it is on the free agents of their queues
        (``only``: of these queues; default every queue where a callback waits)."""
        keys = self.state.waiting if only is None else only
        loads = queue_loads(live, keys, now, self.pacing, self.estimators) if keys else {}
        loads = self._without_resting_agents(loads, now)
        commands: list[Command] = list(sched.decide(self.state, now, loads, deadlines=only is None))
        for command in commands:
            if isinstance(command, sched.Dial) and command.callback.tier > 0:
                key = (command.callback.tenant, command.callback.queue)
                self.pacing.queue(key).fills.arrived(now)
        return commands

    def _without_resting_agents(
        self, loads: dict[QueueKey, QueueLoad], now: float
    ) -> dict[QueueKey, QueueLoad]:
        rested = self.agent_rested_until
        for agent in [a for a, until in rested.items() if until <= now]:
            del rested[agent]
        if not rested:
            return loads
        return {
            key: dataclasses.replace(load, free_agents=[a for a in load.free_agents if a not in rested])
            for key, load in loads.items()
        }

    def size_fill_reserves(self, live: LiveState) -> None:
        """The fill reserve follows the agents staffed right now, not the provisioned members: a
        reserve of 3 on a queue 3 agents work at night would starve its fill work."""
        for key, info in self.infos.items():
            q = live.queues.get(f"{key[0]}-{key[1]}")
            reserve = fill_reserve_agents(staffed_agents(q) if q is not None else info.members)
            policy = self.state.policies.get(key)
            if policy is not None and policy.fill_reserve_agents != reserve:
                self.state.policies[key] = dataclasses.replace(policy, fill_reserve_agents=reserve)

    def observe_handled(self, live: LiveState, frame: Frame) -> None:
        """An AgentComplete: one handled call's talk + wrap-up for the queue's recent AHT."""
        key = split_queue(frame.get("Queue", ""))
        if key is None:
            return
        try:
            talk = float(frame.get("TalkTime", "") or 0)
        except ValueError:
            return
        q = live.queues.get(frame.get("Queue", ""))
        member = q.members.get(frame.get("Interface", "")) if q is not None else None
        wrapup = 0
        if q is not None:
            own = member.wrapup_s if member is not None else 0
            wrapup = q.settings.wrapup_s if q.settings.wrapup_s is not None else own
        self.estimator(key).observe(talk + wrapup)

    def estimator(self, key: QueueKey) -> WaitEstimator:
        found = self.estimators.get(key)
        if found is None:
            found = self.estimators[key] = WaitEstimator()
        return found

    # ----------------------------------------------------------------- housekeeping

    def policies(self) -> dict[QueueKey, QueuePolicy]:
        return {key: info.policy for key, info in self.infos.items()}

    def _configure_pacing(self) -> None:
        for key, info in self.infos.items():
            self.pacing.configure(key, info.service_level_s, info.policy.short_abandon_s)

    def forget_closed(self, now: float) -> int:
        """Drop callbacks closed more than a day ago from memory (SQL keeps them and their
        history): the summaries only count today's, and a bridge runs for months."""
        horizon = now - FORGET_CLOSED_AFTER_S
        old = [
            cid for cid, c in self.state.callbacks.items()
            if not c.is_open and c.closed_at is not None and c.closed_at < horizon
        ]
        for cid in old:
            self.state.drop(cid)
        return len(old)

    def summary_deltas(self, now: float, live: LiveState | None = None) -> list[Delta]:
        """A ``callbacks.summary`` delta for each queue whose counts changed."""
        deltas: list[Delta] = []
        by_queue: dict[QueueKey, list[Callback]] = {}
        for callback in self.state.callbacks.values():
            by_queue.setdefault((callback.tenant, callback.queue), []).append(callback)
        for key, info in sorted(self.infos.items()):
            data = summary(by_queue.get(key, ()), key, now, info.timezone, info.policy)
            window = self.quote(live, key, now) if live is not None else None
            data["quote"] = None if window is None else {"from": window.start, "to": window.end}
            if self.summaries.get(key) != data:
                self.summaries[key] = data
                deltas.append(Delta("callbacks.summary", key[0], f"{key[0]}-{key[1]}", now, data))
        return deltas


_CALLER_DELTAS = frozenset({"caller.joined", "caller.answered", "caller.abandoned"})
# What can give a waiting callback its turn outside a tick: an agent becoming available, a live
# caller ahead of it leaving the line, a resync. A batch without ticks or news decides only for
# the queues where that happened (the hot path stays cheap; the tick decides for all).
_MOVES = "moves"
_KINDS: dict[str, str] = {
    "caller.joined": "caller",
    "caller.answered": "caller",
    "caller.abandoned": _MOVES,
    "caller.left": _MOVES,
    "queue.resynced": _MOVES,
    "agent.state": _MOVES,
}


def request_id(key: QueueKey, uniqueid: str) -> str:
    """The same call's booking delivered twice is one callback (ids from Asterisk's Uniqueid)."""
    if not uniqueid:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_ID_NAMESPACE, f"{key[0]}/{key[1]}/{uniqueid}"))


def summary(
    callbacks: Iterable[Callback],
    key: QueueKey,
    now: float,
    timezone: str,
    policy: QueuePolicy | None = None,
) -> dict[str, Any]:
    """The ``callbacks.summary`` delta's data for one queue (contract: pending, in progress,
    overdue, at risk of being late, completed / on time / late today, the next few in line with
    their promised windows; the service adds ``quote``, the window a booking now would get)."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    rules = (policy or QueuePolicy()).promise
    mine = [c for c in callbacks if (c.tenant, c.queue) == key]
    completed = [c for c in mine if c.status is Status.COMPLETED and (c.closed_at or 0) >= midnight]
    on_time = sum(1 for c in completed if c.on_time)
    waiting = sorted((c for c in mine if c.status in WAITING), key=lambda c: (c.tier, c.place_at))
    at_risk = [c for c in mine if c.status is Status.PENDING and c.due_by - now <= rules.urgent_before_s]
    return {
        "pending": sum(1 for c in mine if c.status is Status.PENDING),
        "in_progress": sum(1 for c in mine if c.status is Status.DIALLING),
        "overdue": sum(1 for c in mine if c.status is Status.OVERDUE),
        # Not late yet, but near the end of their window: being rushed in line now.
        "at_risk": len(at_risk),
        "completed_today": len(completed),
        "on_time_today": on_time,
        "late_today": len(completed) - on_time,
        "on_time_pct": round(100.0 * on_time / len(completed), 1) if completed else None,
        # Outcome missed while the bridge was down and possibly connected: a person decides.
        "unconfirmed_today": sum(
            1 for c in mine if c.status is Status.UNCONFIRMED and (c.closed_at or 0) >= midnight
        ),
        # What became of each caller's callback today (the newest per number; open ones too):
        # the wallboard's abandoned list shows it next to the caller, instead of a click finding
        # out that there is one already.
        "numbers": {
            normalise_number(c.number): c.status.value
            for c in sorted(
                (c for c in mine if c.is_open or c.requested_at >= midnight), key=lambda c: c.requested_at
            )[-NUMBERS_MAX:]
        },
        "next": [
            {
                "id": c.id,
                "number": c.number,
                "status": c.status.value,
                "due_by": c.due_by,
                "promised_from": c.promised_from,
                "place_at": c.place_at,
                "at_risk": c.status is Status.PENDING and c.due_by - now <= rules.urgent_before_s,
            }
            for c in waiting[:5]
        ],
    }
