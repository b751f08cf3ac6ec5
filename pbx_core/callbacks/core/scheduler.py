"""The callback scheduler's pure decisions.

Like the live queue state, this is a functional core: every function takes the state, the time
and what happened, changes the state and returns the commands the shell must carry out. No
clock, no I/O, no randomness inside.

Commands, in the order returned:

- :class:`Save` -- persist this record (every change of a callback is one).
- :class:`Dial` -- persist the record (now ``dialling``), *then* originate: agent first, and when
  the agent answers the dialplan dials the customer. The callback id and the originate id travel
  as channel variables and the originate id is also the ActionID and ChannelId, so every event of
  the call resolves to its record, and a restarted scheduler recognises a call it already placed.
- :class:`Hangup` -- a dialling callback was cancelled: hang up the channel carrying its id.

The rules:

- place in line: a callback is dialled only when it is among the first ``free agents`` places
  of the virtual line (``queue_order``); live callers who joined earlier are served first;
- pacing: each dial reserves one free agent, so callbacks in flight never exceed the free agents
  and no customer is dialled without an agent already on the line for them; fill callbacks
  (behind everyone in line) go out only on spare capacity: a reserve of agents stays free, the
  queue's rolling SL is above target with margin (or an agent has idled a while), one at a time
  (``policy.fill_allowance``);
- business hours: nothing is dialled while the queue's schedule is closed;
- de-duplication: one open callback per (tenant, queue, number);
- retries: no answer / busy / failed -> back to waiting after a back-off, up to ``max_attempts``;
  then the last result is the final outcome;
- deadlines: a waiting callback past its due-by is ``overdue`` (still served, reported late);
  past due-by + ``expire_after_s`` it is ``expired``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .hours import is_open, next_opening
from .model import (
    MARKER_KEPT_S,
    MARKER_STARTED,
    SOURCES,
    WAITING,
    AttemptResult,
    Callback,
    Source,
    Status,
    normalise_number,
    result_from_dialstatus,
)
from .numbers import callback_number
from .policy import QueuePolicy, backoff_s, due_by, fill_allowance, tier
from .promise import LineAhead, Window, promise
from .queue_order import callbacks_first_in_line

QueueKey = tuple[str, str]  # (tenant, queue)
MIN_RETRY_GAP_S = 120.0  # a customer who did not answer is not rung again sooner than this

_FINAL_FOR: dict[AttemptResult, Status] = {
    "no_answer": Status.NO_ANSWER,
    "busy": Status.BUSY,
    "failed": Status.FAILED,
}


@dataclass(frozen=True, slots=True)
class Save:
    callback: Callback
    change: str  # created, overdue, dialling, retry, requeued, completed, ..., restored


@dataclass(frozen=True, slots=True)
class Dial:
    callback: Callback  # already ``dialling`` with ``agent`` and ``originate_id`` set
    agent: str
    originate_id: str


@dataclass(frozen=True, slots=True)
class Hangup:
    callback: Callback
    originate_id: str


Command = Save | Dial | Hangup


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """What the live state says about one queue right now."""

    free_agents: Sequence[str] = ()  # interfaces of agents idle and ready for a call
    live_waiting: Sequence[float] = ()  # join times of live callers still waiting
    # The queue's rolling service level (estimator.RollingServiceLevel); None: no call ended in
    # the window. Paces fill callbacks (policy.fill_allowance).
    recent_sl_pct: float | None = None
    # Since when each free agent has been idle (agent interface -> epoch seconds), if known.
    idle_since: Mapping[str, float] = field(default_factory=dict)
    # Recent offered load / staffed agents (estimator.RollingLoad); None: unknown.
    recent_load: float | None = None


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    id: str  # chosen by the shell (unique); the scheduler never invents identities
    tenant: str
    queue: str
    number: str
    source: Source
    requested_at: float
    joined_at: float | None = None  # queue offers: when the caller joined the queue
    # The promise: ``window`` as given (what the caller heard, or a later slot they chose), else
    # computed from ``line`` (what is ahead of it now); with neither, the queue's due_within_s.
    window: Window | None = None
    line: LineAhead | None = None


@dataclass(slots=True)
class SchedulerState:
    policies: dict[QueueKey, QueuePolicy] = field(default_factory=dict)
    # Every callback it knows: the open ones and the day's closed ones (for the counts).
    callbacks: dict[str, Callback] = field(default_factory=dict)
    # The open ones, one per (tenant, queue, number): what every decision iterates, so the cost
    # of a decision follows the open callbacks, not the day's closed ones.
    open_by_key: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # Indexes kept by put/drop, so a decision costs what it concerns, not every open callback:
    # the waiting callbacks of each queue, and the callbacks being dialled.
    waiting: dict[QueueKey, set[str]] = field(default_factory=dict)
    dialling: set[str] = field(default_factory=set)
    # When each queue last dialled a fill callback (pacing: fill_spacing_s).
    last_fill_dial: dict[QueueKey, float] = field(default_factory=dict)

    def policy(self, tenant: str, queue: str) -> QueuePolicy:
        return self.policies.get((tenant, queue)) or QueuePolicy()

    def put(self, callback: Callback) -> None:
        old = self.callbacks.get(callback.id)
        if old is not None:
            self._unindex(old)
            if old.key != callback.key and self.open_by_key.get(old.key) == old.id:
                del self.open_by_key[old.key]
        self.callbacks[callback.id] = callback
        if callback.status in WAITING:
            self.waiting.setdefault((callback.tenant, callback.queue), set()).add(callback.id)
        elif callback.status is Status.DIALLING:
            self.dialling.add(callback.id)
        if callback.is_open:
            self.open_by_key[callback.key] = callback.id
        elif self.open_by_key.get(callback.key) == callback.id:
            del self.open_by_key[callback.key]
        if callback.tier > 0 and callback.dialled_at is not None:
            key = (callback.tenant, callback.queue)
            last = self.last_fill_dial.get(key)
            self.last_fill_dial[key] = callback.dialled_at if last is None else max(last, callback.dialled_at)

    def drop(self, callback_id: str) -> None:
        """Forget a callback entirely (e.g. a closed one from another day)."""
        old = self.callbacks.pop(callback_id, None)
        if old is None:
            return
        self._unindex(old)
        if self.open_by_key.get(old.key) == callback_id:
            del self.open_by_key[old.key]

    def _unindex(self, callback: Callback) -> None:
        if callback.status in WAITING:
            key = (callback.tenant, callback.queue)
            ids = self.waiting.get(key)
            if ids is not None:
                ids.discard(callback.id)
                if not ids:
                    del self.waiting[key]
        elif callback.status is Status.DIALLING:
            self.dialling.discard(callback.id)

    def open_for(self, tenant: str, queue: str, number: str) -> Callback | None:
        cb_id = self.open_by_key.get((tenant, queue, normalise_number(number)))
        return None if cb_id is None else self.callbacks[cb_id]

    def open_callbacks(self) -> list[Callback]:
        """Pending, overdue and dialling callbacks, in no particular order."""
        callbacks = self.callbacks
        return [callbacks[cb_id] for cb_id in self.open_by_key.values()]

    def in_flight(self) -> list[Callback]:
        callbacks = self.callbacks
        return [callbacks[cb_id] for cb_id in self.dialling]


def _save(state: SchedulerState, callback: Callback, change: str) -> Save:
    state.put(callback)
    return Save(callback, change)


def _waiting_status(callback: Callback, now: float) -> Status:
    return Status.OVERDUE if now > callback.due_by else Status.PENDING


# --- requests -----------------------------------------------------------------------------------


def request(state: SchedulerState, req: CallbackRequest) -> tuple[Callback, list[Command]]:
    """Book a callback, or return the open one for the same number and queue (no commands then).

    A queue offer keeps the caller's join time as their place in line; every other source takes
    its place at the request. While the queue is closed the callback waits for the next opening.
    """
    if req.source not in SOURCES:
        raise ValueError(f"callback source must be one of {', '.join(SOURCES)}, not {req.source!r}")
    callback_number(req.number)  # InvalidNumber (a ValueError): the one rule for every way in
    if req.id in state.callbacks:
        return state.callbacks[req.id], []  # the same request delivered twice
    existing = state.open_for(req.tenant, req.queue, req.number)
    if existing is not None:
        return existing, []
    policy = state.policy(req.tenant, req.queue)
    opens = next_opening(policy.hours, req.requested_at)
    if opens is None:
        raise ValueError(f"queue {req.tenant}-{req.queue} has no opening time in its business hours")
    place = req.joined_at if req.source == "queue_offer" and req.joined_at is not None else req.requested_at
    level = tier(policy, req.source)
    window = req.window or quote(policy, req.requested_at, req.line, level)
    callback = Callback(
        id=req.id,
        tenant=req.tenant,
        queue=req.queue,
        number=req.number,
        source=req.source,
        requested_at=req.requested_at,
        place_at=min(place, req.requested_at),
        due_by=window.end,
        tier=level,
        not_before=max(opens, window.start) if window.later else opens,
        promised_from=window.start,
    )
    return callback, [_save(state, callback, "created")]


def quote(policy: QueuePolicy, at: float, line: LineAhead | None, level: int = 0) -> Window:
    """The window a callback booked at ``at`` is promised (``line``: what is ahead of it; None:
    unknown, the queue's fixed ``due_within_s`` from the request or the next opening)."""
    if line is None:
        opens = next_opening(policy.hours, at)
        if opens is None:
            raise ValueError("the queue's business hours never open")
        return Window(opens, due_by(policy, at))
    return promise(policy.promise, policy.hours, at, line, level, fallback_s=policy.due_within_s)


def is_urgent(callback: Callback, policy: QueuePolicy, now: float) -> bool:
    """A waiting callback near (or past) its promise: a fill callback then goes out past the
    pacing's gates (not past the reserve). ``urgent_before_s`` 0 turns this off."""
    before = policy.promise.urgent_before_s
    return before > 0 and callback.due_by - now <= before


def cancel(state: SchedulerState, callback_id: str, at: float) -> list[Command]:
    """Withdraw an open callback (customer, supervisor, REST). A dial in flight is hung up."""
    callback = state.callbacks.get(callback_id)
    if callback is None or not callback.is_open:
        return []
    commands: list[Command] = []
    if callback.status is Status.DIALLING and callback.originate_id is not None:
        commands.append(Hangup(callback, callback.originate_id))
    closed = callback.evolve(status=Status.CANCELLED, closed_at=at, agent=None)
    return [_save(state, closed, "cancelled"), *commands]


def on_live_answer(state: SchedulerState, tenant: str, queue: str, number: str, at: float) -> list[Command]:
    """The customer called again and reached an agent live: their waiting callback is moot."""
    callback = state.open_for(tenant, queue, number)
    if callback is None or callback.status not in WAITING:
        return []
    return cancel(state, callback.id, at)


# --- the scheduling decision --------------------------------------------------------------------


def _deadlines(state: SchedulerState, now: float) -> list[Command]:
    commands: list[Command] = []
    for callback in state.open_callbacks():
        if callback.status not in WAITING:
            continue
        policy = state.policy(callback.tenant, callback.queue)
        if now > callback.due_by + policy.expire_after_s:
            expired = callback.evolve(status=Status.EXPIRED, closed_at=now)
            commands.append(_save(state, expired, "expired"))
        elif callback.status is Status.PENDING and now > callback.due_by:
            commands.append(_save(state, callback.evolve(status=Status.OVERDUE), "overdue"))
    return commands


def decide(
    state: SchedulerState, now: float, loads: Mapping[QueueKey, QueueLoad], *, deadlines: bool = True
) -> list[Command]:
    """Mark deadlines, then dial the callbacks whose turn it is on the free agents of each open
    queue in ``loads``. ``deadlines=False``: only the dialling (a queue's line moved; the
    deadlines are marked on the next full decision)."""
    commands = _deadlines(state, now) if deadlines else []
    callbacks = state.callbacks
    reserved = {agent for cb_id in state.dialling if (agent := callbacks[cb_id].agent) is not None}
    last_fill = state.last_fill_dial
    for key in sorted(loads):
        ids = state.waiting.get(key)
        ready = [c for cb_id in ids if (c := callbacks[cb_id]).not_before <= now] if ids else None
        if not ready or not is_open(state.policy(*key).hours, now):
            continue
        load, policy = loads[key], state.policy(*key)
        free = [a for a in dict.fromkeys(load.free_agents) if a not in reserved]
        idle = [now - load.idle_since[a] for a in free if a in load.idle_since]
        allowance = fill_allowance(
            policy, now, load.recent_sl_pct, max(idle, default=None), last_fill.get(key), load.recent_load
        )
        # Fill callbacks near their promise go out whatever the pacing's SL and load gates say,
        # still only on agents no one in line waits for, with the reserve kept free for live
        # callers (the live-caller protection): the promise is kept where the line allows it.
        urgent = sum(1 for c in ready if c.tier > 0 and is_urgent(c, policy, now))
        turn = callbacks_first_in_line(
            load.live_waiting, ready, len(free), policy.fill_reserve_agents, max_fill=max(allowance, urgent)
        )
        free.sort(key=lambda a: load.idle_since.get(a, now))  # the agent idle longest first
        for callback, agent in zip(turn, free, strict=False):
            dials = callback.attempts_dialled + 1
            originate_id = f"{callback.id}:{dials}"
            dialling = callback.evolve(
                status=Status.DIALLING,
                agent=agent,
                originate_id=originate_id,
                dialled_at=now,
                attempts_dialled=dials,
            )
            state.put(dialling)
            reserved.add(agent)
            commands.append(Dial(dialling, agent, originate_id))
    return commands


def next_wakeup(state: SchedulerState, now: float) -> float | None:
    """The earliest future time at which :func:`decide` could act without any new event: a retry
    or opening time coming due, or a deadline passing. The shell sleeps until then (or an event)."""
    times: list[float] = []
    for callback in state.open_callbacks():
        if callback.status not in WAITING:
            continue
        policy = state.policy(callback.tenant, callback.queue)
        for t in (callback.not_before, callback.due_by, callback.due_by + policy.expire_after_s):
            if t > now:
                times.append(t)
        if callback.not_before <= now and not is_open(policy.hours, now):
            opens = next_opening(policy.hours, now)
            if opens is not None:
                times.append(opens)
    return min(times, default=None)


# --- results of attempts ------------------------------------------------------------------------


def on_result(
    state: SchedulerState, callback_id: str, originate_id: str, result: AttemptResult, at: float
) -> list[Command]:
    """Resolve the attempt ``originate_id`` of a callback. Events of an older attempt, repeats and
    unknown ids change nothing, so replaying events after a restart is safe."""
    callback = state.callbacks.get(callback_id)
    if callback is None or callback.status is not Status.DIALLING or callback.originate_id != originate_id:
        return []
    if result == "answered":
        # The answered attempt is an attempt on the customer too (it reached them).
        attempts = callback.attempts + 1
        done = callback.evolve(
            status=Status.COMPLETED, attempts=attempts, closed_at=at, agent=None, last_result=result
        )
        return [_save(state, done, "completed")]
    if result == "unknown":
        # It may have reached the customer: never dialled again; a person looks at it.
        attempts = callback.attempts + 1
        unsure = callback.evolve(
            status=Status.UNCONFIRMED, attempts=attempts, closed_at=at, agent=None, last_result=result
        )
        return [_save(state, unsure, "unconfirmed")]
    if result == "agent_unavailable":
        # Not the customer's doing: back in line at the same place, no attempt used.
        back = callback.evolve(
            status=_waiting_status(callback, at),
            agent=None,
            originate_id=None,
            not_before=at,
            last_result=result,
        )
        return [_save(state, back, "requeued")]
    policy = state.policy(callback.tenant, callback.queue)
    attempts = callback.attempts + 1
    if attempts >= policy.max_attempts:
        final = callback.evolve(
            status=_FINAL_FOR[result], attempts=attempts, closed_at=at, agent=None, last_result=result
        )
        return [_save(state, final, final.status.value)]
    retry_at = at + backoff_s(policy, attempts)
    if callback.due_by > at:
        # Keep the promise: when the back-off would miss the window, try again inside it (but
        # never ring a customer who did not answer again at once).
        retry_at = min(retry_at, max(at + MIN_RETRY_GAP_S, callback.due_by - policy.promise.slack_s))
    retry = callback.evolve(
        status=_waiting_status(callback, at),
        attempts=attempts,
        agent=None,
        originate_id=None,
        not_before=retry_at,
        last_result=result,
    )
    return [_save(state, retry, "retry")]


# --- restart ------------------------------------------------------------------------------------


def restore(records: Iterable[Callback], policies: Mapping[QueueKey, QueuePolicy]) -> SchedulerState:
    """Rebuild the state from persisted records. Callbacks that were ``dialling`` stay dialling
    with their agent reserved: they are never dialled again until :func:`reconcile` or an event
    resolves them."""
    state = SchedulerState(policies=dict(policies))
    for callback in sorted(records, key=lambda c: c.requested_at):
        state.put(callback)
    return state


def reconcile(
    state: SchedulerState,
    now: float,
    live_callback_ids: Collection[str],
    markers: Mapping[str, str | None] | None = None,
) -> list[Command]:
    """After a restart (and after applying the events missed): what became of each ``dialling``
    callback whose result never arrived. One whose call is still up (its id on a live channel)
    is left alone. For the others ``markers`` (originate id -> the dialplan's AstDB marker;
    None: looked up, not there; absent: the lookup failed) decides, and nothing that may have
    reached the customer is dialled again:

    - a DIALSTATUS: the attempt's result, as if its UserEvent had arrived (at once);
    - ``started``: the agent answered and the customer may have been called: unconfirmed;
    - none (and young enough to have one): the agent leg never answered, the customer was never
      dialled: back in line without using an attempt;
    - lookup failed, or too old to tell: unconfirmed.

    All but the first wait until ``dial_timeout_s`` after the dial: the call may still be
    coming up.
    """
    commands: list[Command] = []
    looked_up = markers or {}
    for callback in state.in_flight():
        oid = callback.originate_id
        if callback.id in live_callback_ids or oid is None:
            continue
        marker = looked_up.get(oid)
        final = marker is not None and marker != MARKER_STARTED
        policy = state.policy(callback.tenant, callback.queue)
        young = callback.dialled_at is not None and now - callback.dialled_at < policy.dial_timeout_s
        if young and not final:
            continue
        result = lost_dial_result(looked_up, oid, callback.dialled_at, now)
        commands.extend(on_result(state, callback.id, oid, result, now))
    return commands


def lost_dial_result(
    markers: Mapping[str, str | None], originate_id: str, dialled_at: float | None, now: float
) -> AttemptResult:
    """What a dial whose result was missed came to, from the dialplan's marker (see reconcile)."""
    if originate_id not in markers:
        return "unknown"
    marker = markers[originate_id]
    if marker is None:
        young = dialled_at is not None and now - dialled_at <= MARKER_KEPT_S
        return "agent_unavailable" if young else "unknown"
    if marker == MARKER_STARTED:
        return "unknown"
    return result_from_dialstatus(marker)
