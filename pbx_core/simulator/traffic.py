"""Seeded call-centre traffic for the simulated PBX: a discrete-event simulation over ``World``.

- Arrivals: a Poisson process per queue, thinned by a daily profile (morning and afternoon
  peaks, a lunch dip, quiet nights) in the tenants' timezone. ``rate`` is calls per hour per
  queue at the peak.
- Callers have a patience; when it runs out while waiting they hang up (abandon). A share of
  them hang up within seconds (short abandons).
- Members are rung one at a time (rrmemory / leastrecent / random; ringall queues are hunted
  like leastrecent). A member may not answer: AgentRingNoAnswer after the queue's ring timeout,
  sometimes followed by an autopause ("Auto-Pause") that the agent clears later.
- Answered calls have a talk time, then the member's wrap-up time.
- Agents take pauses with reasons (lunch around noon; break, training, meeting, admin).
- Callback offer: while the queue's global ``PBX_OFFER_{slug}_{queue}`` is 1 (the callback worker
  sets it with AMI Setvar), a waiting caller hears the offer a few seconds after joining and then
  every ``callback_offer_every_s``; a share (``callback_accept_share``, drawn once per caller)
  presses 1 and leaves with a callback request instead of waiting on (``World.callback_request``).
  These draws use their own random stream, so traffic without an open offer is unchanged.

Same seed, same config, same start time: the same sequence of events, byte for byte, because
everything runs off one ``random.Random`` and a heap ordered by (time, sequence number).
Ground truth is counted by the world (``world.truth``).

Modes: ``advance(seconds)`` steps virtual time instantly (tests, benchmarks); ``run()`` follows
the world's clock in real time, scaled by the clock's speed (demo, ``pbx-core simulate``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from .clock import SimClock
from .world import SimCaller, SimMember, SimQueue, SimRing, World

QUEUE_NAMES = ("support", "sales", "billing", "service", "orders", "info", "returns", "helpdesk")
FIRST_NAMES = (
    "Jan", "Piet", "Kees", "Anna", "Sanne", "Daan", "Emma", "Lotte", "Bram", "Zoë", "Sem",
    "Fleur", "Noah", "Julia", "Thijs", "Eva", "Mohamed", "Fatima", "Sophie", "Lucas",
)  # fmt: skip
LAST_NAMES = (
    "Jansen", "de Vries", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
    "Özdemir-Müller", "Bos", "Vos", "Peters", "Hendriks", "van Dijk", "El Amrani", "Dekker",
)  # fmt: skip
# Relative call volume per local hour (peak = 1.0): morning and afternoon peaks, lunch dip.
DAILY_PROFILE = (
    0.03, 0.02, 0.02, 0.02, 0.02, 0.03, 0.08, 0.30,  # 00-07
    0.70, 0.95, 1.00, 0.85, 0.55, 0.70, 0.95, 0.90,  # 08-15
    0.70, 0.45, 0.25, 0.15, 0.10, 0.07, 0.05, 0.04,  # 16-23
)  # fmt: skip
# reason -> (min, max) minutes
PAUSE_REASONS: dict[str, tuple[float, float]] = {
    "lunch": (20, 40),
    "break": (5, 15),
    "training": (30, 60),
    "meeting": (15, 45),
    "admin": (5, 20),
}
AUTOPAUSE_REASON = "Auto-Pause"


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    tenants: int = 3
    queues: int = 2  # per tenant
    agents: int = 4  # per queue
    rate: float = 40.0  # calls per hour per queue at the daily peak
    seed: int = 1
    profile: str = "daily"  # or "flat": the peak rate around the clock
    timezone: str = "Europe/Amsterdam"
    mean_patience_s: float = 90.0
    short_patience_share: float = 0.08  # callers who hang up within a few seconds
    answer_share: float = 0.88  # rings that are answered; the rest ring out (AgentRingNoAnswer)
    autopause_share: float = 0.4  # ring-no-answers that autopause the member
    dump_share: float = 0.01  # answers where the agent hangs up straight away (AgentDump)
    mean_talk_s: float = 150.0
    wrapup_s: int = 15
    ring_timeout_s: int = 15
    retry_s: int = 2
    pauses_per_agent_hour: float = 0.35
    service_level_s: int = 30
    callback_accept_share: float = 0.5  # callers who press 1 when they hear an open callback offer
    callback_offer_every_s: float = 60.0  # the queue's periodic announcement (the offer) interval

    def __post_init__(self) -> None:
        if self.tenants < 1 or self.queues < 1 or self.agents < 0:
            raise ValueError("need at least 1 tenant and 1 queue, and 0 or more agents")
        if self.rate < 0:
            raise ValueError("rate must be >= 0")
        if self.profile not in ("daily", "flat"):
            raise ValueError("profile must be 'daily' or 'flat'")
        if not 0.0 <= self.callback_accept_share <= 1.0:
            raise ValueError("callback_accept_share must be between 0 and 1")
        if self.callback_offer_every_s <= 0:
            raise ValueError("callback_offer_every_s must be > 0 seconds")


def tenant_slugs(n: int) -> list[str]:
    """``t1``, ``t2``, ...: valid DESIGN.md slugs, matching the recordings' ``t1-support``."""
    return [f"t{i}" for i in range(1, n + 1)]


def queue_names(slug: str, n: int) -> list[str]:
    names = [QUEUE_NAMES[i] if i < len(QUEUE_NAMES) else f"queue{i + 1}" for i in range(n)]
    return [f"{slug}-{name}" for name in names]


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def profile_weight(ts: float, timezone: str) -> float:
    """Relative call volume at ``ts``, interpolated between the hourly points."""
    local = datetime.fromtimestamp(ts, _zone(timezone))
    hour = local.hour + local.minute / 60 + local.second / 3600
    lo = math.floor(hour) % 24
    frac = hour - math.floor(hour)
    return DAILY_PROFILE[lo] * (1 - frac) + DAILY_PROFILE[(lo + 1) % 24] * frac


@dataclass
class _Agent:
    queue: str
    interface: str
    ringing: bool = False
    on_call: bool = False
    wrapup_until: float = 0.0
    pending_pause: tuple[str, float] | None = None


@dataclass
class _Call:
    queue: str
    caller: SimCaller
    ring: SimRing | None = None
    token: int = 0
    not_before: float = 0.0
    done: bool = False
    takes_callback: bool = False  # presses 1 when offered a callback


@dataclass(order=True)
class _Job:
    t: float
    seq: int
    fn: Callable[[], None] = field(compare=False)


class Traffic:
    """Drives ``world`` with seeded traffic. Call :meth:`setup` once (it adds queues and agents)."""

    def __init__(self, world: World, config: TrafficConfig | None = None) -> None:
        self.world = world
        self.config = config or TrafficConfig()
        self.rng = random.Random(self.config.seed)
        # The callback offer's draws: a stream of their own keeps every other draw unchanged.
        self.callback_rng = random.Random(f"callbacks-{self.config.seed}")
        self.t = world.now()  # the time of the job being run
        self.arrivals = True
        self.jobs_run = 0
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._agents: dict[tuple[str, str], _Agent] = {}
        self._calls: dict[str, _Call] = {}  # caller uniqueid -> its call, waiting or talking
        self._rr: dict[str, int] = {}  # rrmemory position per queue
        self.queue_names: list[str] = []
        world.driver = self

    # ----------------------------------------------------------------- set-up

    def setup(self) -> None:
        cfg = self.config
        for slug in tenant_slugs(cfg.tenants):
            ext = itertools.count(201)
            for qi, qname in enumerate(queue_names(slug, cfg.queues)):
                strategy = ("rrmemory", "leastrecent", "ringall")[qi % 3]
                q = self.world.queue(qname, strategy, cfg.service_level_s)
                q.wrapup_s, q.ring_timeout_s = cfg.wrapup_s, cfg.ring_timeout_s
                self.queue_names.append(qname)
                for _ in range(cfg.agents):
                    n = next(ext)
                    name = f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"
                    member = SimMember(
                        # The interfaces pbx-core's provisioning gives queue members, so an apply
                        # from the demo's API finds the simulated agents already in place.
                        f"Local/{n}@{slug}-agents/n",
                        name,
                        f"hint:{n}@{slug}-internal",
                        membership="dynamic",
                        wrapup_s=cfg.wrapup_s,
                    )
                    self.world.add_member(qname, member)
                    self._agents[(qname, member.interface)] = _Agent(qname, member.interface)
                    self._schedule_pause(qname, member.interface)
                self._schedule_arrival(qname, self.t)

    # ----------------------------------------------------------------- running

    def _at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, _Job(t, next(self._seq), fn))

    @property
    def next_time(self) -> float | None:
        return self._heap[0].t if self._heap else None

    def _run_due(self, until: float, limit: int | None = None) -> int:
        n = 0
        clock = self.world.clock
        while self._heap and self._heap[0].t <= until:
            job = heapq.heappop(self._heap)
            clock.advance_to(job.t)
            self.t = job.t
            job.fn()
            n += 1
            if limit is not None and n >= limit:
                break
        self.jobs_run += n
        return n

    def advance(self, seconds: float) -> None:
        """Virtual time: run everything due in the next ``seconds`` instantly."""
        end = self.world.now() + seconds
        self._run_due(end)
        self.world.clock.advance_to(end)
        self.t = max(self.t, end)

    async def advance_async(self, seconds: float, *, batch: int = 200) -> None:
        """Like :meth:`advance`, letting connected clients read as it goes (back-pressure)."""
        end = self.world.now() + seconds
        while self._run_due(end, batch) >= batch:
            await self._flush()
        await self._flush()
        self.world.clock.advance_to(end)
        self.t = max(self.t, end)

    async def run(self, *, batch: int = 200) -> None:
        """Real time, scaled by the clock's speed. Runs until cancelled."""
        clock = self.world.clock
        while True:
            nxt = self.next_time
            if nxt is None:
                await asyncio.sleep(0.5)
                continue
            delay = clock.real_delay(nxt)
            if delay > 0:
                await asyncio.sleep(min(delay, 0.5))
                continue
            self._run_due(clock.now(), batch)
            await self._flush()

    async def _flush(self) -> None:
        drain = getattr(self.world, "drain", None)
        if drain is not None:
            await drain()
        else:
            await asyncio.sleep(0)

    def stop_arrivals(self) -> None:
        self.arrivals = False

    @property
    def busy(self) -> bool:
        """Calls still waiting or talking."""
        return any(c.ring is not None or self._waiting(c) for c in self._calls.values())

    def drain_calls_now(self, *, step_s: float = 60.0, limit_s: float = 24 * 3600) -> float:
        """:meth:`drain_calls` without an event loop (nobody connected)."""
        self.stop_arrivals()
        spent = 0.0
        while self.busy and spent < limit_s:
            self.advance(step_s)
            spent += step_s
        return spent

    async def drain_calls(self, *, step_s: float = 60.0, limit_s: float = 24 * 3600) -> float:
        """Stop new arrivals and step until every call has ended. Returns the virtual seconds."""
        self.stop_arrivals()
        spent = 0.0
        while self.busy and spent < limit_s:
            await self.advance_async(step_s)
            spent += step_s
        return spent

    # ----------------------------------------------------------------- arrivals and callers

    def _schedule_arrival(self, queue: str, after: float) -> None:
        cfg = self.config
        if cfg.rate <= 0:
            return
        lam = cfg.rate / 3600.0
        t = after
        while True:  # thinning: a peak-rate Poisson process, kept with the profile's weight
            t += self.rng.expovariate(lam)
            if cfg.profile == "flat" or self.rng.random() <= profile_weight(t, cfg.timezone):
                break
        self._at(t, lambda: self._arrive(queue))

    def _arrive(self, queue: str) -> None:
        q = self.world.queues.get(queue)
        if not self.arrivals or q is None or q.dead:
            return  # deleted from queues.conf: Queue() cannot join it any more
        number, name = self._caller_id()
        patience = self._patience()
        caller = self.world.arrive(queue, number, name, patience_s=patience)
        self._track(queue, caller, patience)
        self._schedule_arrival(queue, self.t)

    def caller_joined(self, queue: str, caller: SimCaller, patience_s: float | None) -> None:
        """A caller placed by an AMI Originate: drive it like the generated ones."""
        self.t = max(self.t, self.world.now())
        self._track(queue, caller, patience_s if patience_s is not None else self._patience())

    def _track(self, queue: str, caller: SimCaller, patience_s: float) -> None:
        call = _Call(queue, caller)
        self._calls[caller.uniqueid] = call
        self._at(self.t + patience_s, lambda: self._give_up(call))
        cb = self.callback_rng
        call.takes_callback = cb.random() < self.config.callback_accept_share
        if call.takes_callback:
            # The first offer comes once Queue() plays its opening announcement.
            self._at(self.t + cb.uniform(3.0, 8.0), lambda: self._offer(call))
        self._dispatch(queue)

    def _caller_id(self) -> tuple[str, str]:
        rng = self.rng
        if rng.random() < 0.6:
            number = "06" + "".join(str(rng.randrange(10)) for _ in range(8))
        else:
            number = rng.choice(("010", "020", "030", "040", "050", "070")) + "".join(
                str(rng.randrange(10)) for _ in range(7)
            )
        name = "" if rng.random() < 0.1 else f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        return number, name

    def _patience(self) -> float:
        cfg = self.config
        if self.rng.random() < cfg.short_patience_share:
            return self.rng.uniform(1.0, 4.5)
        return 5.0 + self.rng.expovariate(1.0 / max(1.0, cfg.mean_patience_s - 5.0))

    def _waiting(self, call: _Call) -> bool:
        q = self.world.queues.get(call.queue)
        return not call.done and q is not None and any(c is call.caller for c in q.callers)

    def _give_up(self, call: _Call) -> None:
        if not self._waiting(call):
            if call.ring is None:
                self._calls.pop(call.caller.uniqueid, None)  # answered and gone, or removed by hand
            return
        ring = call.ring
        self._end_ring(call)
        self.world.abandon(call.queue, call.caller, [ring] if ring is not None else [])
        call.done = True
        self._calls.pop(call.caller.uniqueid, None)
        self._dispatch(call.queue)

    def _offer(self, call: _Call) -> None:
        """An offer moment for a caller who takes callbacks: press 1 if the offer is open now.

        No announcement plays while the caller's agent is being rung (app_queue skips them then),
        so a ringing caller waits for the next moment."""
        if not self._waiting(call):
            return
        if call.ring is None and self.world.offer_open(call.queue):
            caller = call.caller
            cid = "".join(ch for ch in caller.number if ch.isdigit() or ch == "+")
            number = cid if len(cid) >= 3 else self._typed_number()  # the dialplan asks below 3
            call.done = True
            self._calls.pop(caller.uniqueid, None)
            self.world.callback_request(call.queue, caller, number)
            self._dispatch(call.queue)
            return
        self._at(self.t + self.config.callback_offer_every_s, lambda: self._offer(call))

    def _typed_number(self) -> str:
        """No caller ID: the caller types a number at the dialplan's Read()."""
        return "06" + "".join(str(self.callback_rng.randrange(10)) for _ in range(8))

    # ----------------------------------------------------------------- hunting

    def _agent(self, queue: str, interface: str) -> _Agent:
        key = (queue, interface)
        a = self._agents.get(key)
        if a is None:  # a member added over AMI (QueueAdd): it takes calls too
            a = self._agents[key] = _Agent(queue, interface)
        return a

    def _free(self, q: SimQueue, m: SimMember) -> bool:
        a = self._agent(q.name, m.interface)
        return (
            not m.paused
            and not m.in_call
            and not a.ringing
            and not a.on_call
            and a.wrapup_until <= self.t
            and m.status not in (4, 5)  # invalid, unavailable
        )

    def _pick(self, q: SimQueue) -> SimMember | None:
        members = list(q.members.values())
        free = [m for m in members if self._free(q, m)]
        if not free:
            return None
        if q.strategy == "random":
            return self.rng.choice(free)
        if q.strategy == "rrmemory":
            start = self._rr.get(q.name, -1)
            order = sorted(free, key=lambda m: (members.index(m) <= start, members.index(m)))
            chosen = order[0]
            self._rr[q.name] = members.index(chosen)
            return chosen
        return min(free, key=lambda m: (m.last_call, members.index(m)))  # leastrecent, ringall

    def _dispatch(self, queue: str) -> None:
        q = self.world.queues.get(queue)
        if q is None:
            return
        for caller in list(q.callers):
            call = self._calls.get(caller.uniqueid)
            if call is None or call.done or call.ring is not None or call.not_before > self.t:
                continue
            member = self._pick(q)
            if member is None:
                return
            self._ring(call, member)

    def _ring(self, call: _Call, m: SimMember) -> None:
        cfg = self.config
        call.ring = self.world.ring(call.queue, call.caller, m)
        call.token += 1
        token = call.token
        self._agent(call.queue, m.interface).ringing = True
        if self.rng.random() < cfg.answer_share:
            self._at(self.t + self.rng.uniform(1.0, 8.0), lambda: self._answer(call, token))
        else:
            timeout = self.world.queues[call.queue].ring_timeout_s
            self._at(self.t + timeout, lambda: self._no_answer(call, token))

    def _end_ring(self, call: _Call) -> SimRing | None:
        ring, call.ring = call.ring, None
        call.token += 1
        if ring is not None:
            a = self._agent(call.queue, ring.member.interface)
            a.ringing = False
            self._agent_idle(a)
        return ring

    def _answer(self, call: _Call, token: int) -> None:
        if call.token != token or not self._waiting(call) or call.ring is None:
            return
        ring = call.ring
        if self.rng.random() < self.config.dump_share:
            self._end_ring(call)
            self.world.dump(ring)
            call.not_before = self.t + self.config.retry_s
            self._at(call.not_before, lambda: self._dispatch(call.queue))
            return
        call.ring = None
        call.done = True
        a = self._agent(call.queue, ring.member.interface)
        a.ringing, a.on_call = False, True
        self.world.answer(ring)
        talk = max(10.0, self.rng.lognormvariate(math.log(self.config.mean_talk_s) - 0.18, 0.6))
        call.ring = ring  # the call is now talking on this leg
        self._at(self.t + talk, lambda: self._complete(call))

    def _complete(self, call: _Call) -> None:
        ring = call.ring
        if ring is None:
            return
        call.ring = None
        self._calls.pop(call.caller.uniqueid, None)
        self.world.complete(ring, reason="agent" if self.rng.random() < 0.6 else "caller")
        a = self._agent(call.queue, ring.member.interface)
        a.on_call = False
        q = self.world.queues.get(call.queue)
        wrapup = q.wrapup_s if q is not None else 0
        a.wrapup_until = self.t + wrapup
        self._agent_idle(a)
        if wrapup:
            self._at(a.wrapup_until, lambda: self._dispatch(call.queue))
        self._dispatch(call.queue)

    def _no_answer(self, call: _Call, token: int) -> None:
        if call.token != token or not self._waiting(call) or call.ring is None:
            return
        ring = call.ring
        autopause = self.rng.random() < self.config.autopause_share
        self._end_ring(call)
        self.world.ring_no_answer(ring, autopause=autopause)
        if autopause:
            iface = ring.member.interface
            back = self.t + self.rng.uniform(30.0, 180.0)
            self._at(back, lambda: self._unpause(call.queue, iface, AUTOPAUSE_REASON))
        call.not_before = self.t + self.config.retry_s
        self._at(call.not_before, lambda: self._dispatch(call.queue))
        self._dispatch(call.queue)

    # ----------------------------------------------------------------- pauses

    def _schedule_pause(self, queue: str, interface: str) -> None:
        rate = self.config.pauses_per_agent_hour
        if rate <= 0:
            return
        t = self.t + self.rng.expovariate(rate / 3600.0)
        self._at(t, lambda: self._pause_due(queue, interface))

    def _pause_reason(self) -> tuple[str, float]:
        hour = datetime.fromtimestamp(self.t, _zone(self.config.timezone)).hour
        if 11 <= hour < 14 and self.rng.random() < 0.7:
            reason = "lunch"
        else:
            reason = self.rng.choice(("break", "break", "training", "meeting", "admin"))
        lo, hi = PAUSE_REASONS[reason]
        return reason, self.rng.uniform(lo, hi) * 60.0

    def _pause_due(self, queue: str, interface: str) -> None:
        q = self.world.queues.get(queue)
        m = q.members.get(interface) if q is not None else None
        if m is None:
            return  # removed: no more pauses
        a = self._agent(queue, interface)
        reason, duration = self._pause_reason()
        if m.paused:
            self._schedule_pause(queue, interface)  # already paused (autopause): try later
        elif a.ringing or a.on_call:
            a.pending_pause = (reason, duration)  # starts when the call ends
        else:
            self._start_pause(queue, interface, reason, duration)

    def _start_pause(self, queue: str, interface: str, reason: str, duration: float) -> None:
        self.world.pause_member(queue, interface, True, reason)
        self._at(self.t + duration, lambda: self._unpause(queue, interface, reason))

    def _agent_idle(self, a: _Agent) -> None:
        if a.pending_pause is None or a.ringing or a.on_call:
            return
        reason, duration = a.pending_pause
        a.pending_pause = None
        q = self.world.queues.get(a.queue)
        m = q.members.get(a.interface) if q is not None else None
        if m is not None and not m.paused:
            self._start_pause(a.queue, a.interface, reason, duration)
        elif m is not None:
            self._schedule_pause(a.queue, a.interface)

    def _unpause(self, queue: str, interface: str, reason: str) -> None:
        q = self.world.queues.get(queue)
        m = q.members.get(interface) if q is not None else None
        if m is None or not m.paused or m.reason != reason:
            return  # someone else (a supervisor over AMI) changed it meanwhile
        self.world.pause_member(queue, interface, False)
        if reason != AUTOPAUSE_REASON:
            self._schedule_pause(queue, interface)
        self._dispatch(queue)


def synthetic_stream(
    config: TrafficConfig | None = None,
    *,
    start: float,
    seconds: float,
    drain: bool = True,
    noise: bool = True,
) -> tuple[bytes, dict[str, dict[str, int]]]:
    """A seeded raw AMI byte stream (banner + events) and its ground truth, without any socket.

    For benchmarks and replays: the same bytes a client would receive, produced at full speed.
    """
    world = World(clock=SimClock.stepped(start))
    world.noise = noise
    chunks = [b"Asterisk Call Manager/11.0.0\r\n"]
    world.taps.append(chunks.append)
    traffic = Traffic(world, config)
    traffic.setup()
    traffic.advance(seconds)
    if drain:
        traffic.drain_calls_now()
    return b"".join(chunks), world.truth_dict()
