"""``pbx-core bench callbacks``: callers lost with and without callbacks, on the same traffic.

A seeded discrete-event model of one queue over one business day. Every caller is drawn once
(arrival, patience, handle time, whether they accept a callback offer, whether they answer each
callback attempt), and the same callers are played twice:

  without_callbacks   callers wait in line until answered or out of patience
  with_callbacks      the queue offers a callback when the honest expected wait passes its
                      threshold (``callback_offer_after_s``), and calls back callers who hung up
                      after ``short_abandon_s``; every callback keeps its place in line

The callback decisions (who is dialled when, on which agent, retries, deadlines, opening hours),
the promised window (``core.promise``: from the line ahead at booking, as the bridge computes it),
the expected wait and the offer rule are the real ``pbx_core.callbacks`` core, driven the way the
shell drives it: ``decide`` whenever an agent frees up, a caller arrives or ``next_wakeup`` comes
due. Agents serve whoever is first in the virtual line; a callback holds its agent from the
moment it is dialled (agent first), through the customer's ringing, to the end of the call.

Traffic: Poisson arrivals at ``--load`` x agent capacity (agents / mean AHT) from opening for
``--peak-minutes``, then ``--after-load`` until closing; exponential handle times; exponential
patience. Callbacks still open at closing time count as not completed.

Pacing of fill work (callbacks to callers who hung up; ``policy.fill_allowance``): one at a time,
only on an agent left over after every live caller and every callback in line, with
``--fill-reserve`` agents still free, while the queue's rolling SL (``--sl-window``) is at least
``--sl-target`` + ``--fill-margin`` or an agent has idled ``--fill-idle`` s, and the recent offered
load is at most ``--fill-max-load`` of the agents. ``--seeds N`` reports N days: one lucky day
proves nothing.

KPIs (DESIGN.md), over live calls: SL = answered within T / (answered + abandoned - short
abandons), as the engine counts them (a caller who left the queue for a callback is an "other
exit", in neither term); ASA = mean wait of answered calls. Callers lost = callers (short
abandons excluded) who never reached an agent that day: not answered live and no callback
completed. Callback on-time % = callbacks completed by their promised due-by / callbacks booked,
leaving out those promised for the next day (shown as "next day"; their callers count as lost).

Targets, on every seed: lost >= 50% fewer, live SL <= 5 points lower, on time >= 95%. Wait
announcements (``core.announce``): what each caller who had to wait was told on joining, ours and
Asterisk's announce-holdtime on the same callers, against the wait they then had: the share
within +-30% (or +-30 s) and the median error; target >= 80% and better than Asterisk's.
"hindsight %": the best any announcement going by the caller's place in line could have done that
day, the one value per place picked after the fact (``announce.hindsight_within_pct``): where it
is under 80%, no estimate from the line can reach the target; the rest is chance.
``--loads`` adds the trade-off over peak loads.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pbx_core.callbacks import (
    CallbackRequest,
    Dial,
    HoursSpec,
    QueueLoad,
    QueuePolicy,
    RollingLoad,
    RollingServiceLevel,
    SchedulerState,
    Status,
    WaitEstimator,
    callback_for_abandon,
    current_close,
    decide,
    line,
    live_place,
    next_wakeup,
    on_result,
    position,
    request,
    should_offer,
)
from pbx_core.callbacks.core.announce import (
    Accuracy,
    accuracy,
    asterisk_announcement_s,
    asterisk_holdtime,
    forecast_wait,
    hindsight_within_pct,
    spoken_s,
)
from pbx_core.callbacks.core.estimator import RollingAbandonRate
from pbx_core.callbacks.core.live import FILL_RATE_WINDOW_S, callbacks_in_line, count_ahead
from pbx_core.callbacks.core.model import AttemptResult, Source
from pbx_core.callbacks.core.policy import promised_fill_rate, tier
from pbx_core.callbacks.core.promise import PromiseRules
from pbx_core.provisioning.schemas import QueueIn

TENANT, QUEUE = "bench", "support"
KEY = (TENANT, QUEUE)
TIMEZONE = "Europe/Amsterdam"
DAY = "2025-03-03"  # a Monday
TARGET_LOST_REDUCTION = 0.5
TARGET_SL_DROP = 5.0
TARGET_ON_TIME_PCT = 95.0
TARGET_ANNOUNCED_WITHIN_PCT = 80.0
LOADS = (1.0, 1.05, 1.10, 1.15, 1.20)
_QUEUE_DEFAULTS = QueueIn()
TICK_S = 5.0


@dataclass(slots=True)
class Caller:
    idx: int
    arrival: float
    patience: float
    handle: float
    accepts_offer: bool
    has_number: bool
    rng_seed: int
    # outcome of the play
    answered_at: float | None = None
    abandoned_at: float | None = None
    left_for_callback_at: float | None = None
    callback_id: str | None = None
    # what the caller was told on joining (seconds; None: nothing): ours, and Asterisk's own
    told: float | None = None
    told_by_asterisk: float | None = None
    heard: bool = False  # waited at joining (a caller answered at once hears nothing)
    place: int = 0  # place in line at joining (live callers and callbacks ahead, plus one)

    def draw_attempt(self, n: int, p_answer: float, p_busy: float) -> tuple[AttemptResult, float]:
        """Attempt ``n`` (0-based) on this customer: its result and ring seconds. Drawn from the
        caller's own seed so both plays (and any order of events) see the same customer."""
        rng = random.Random(self.rng_seed * 64 + n)
        u = rng.random()
        if u < p_answer:
            return "answered", rng.uniform(5.0, 20.0)
        if u < p_answer + p_busy:
            return "busy", 3.0
        return "no_answer", 30.0


def make_callers(args: argparse.Namespace, opens: float, closes: float) -> list[Caller]:
    rng = random.Random(args.seed)
    capacity = args.agents / args.aht  # calls per second the agents can handle
    callers: list[Caller] = []
    t = opens
    peak_end = opens + 60.0 * args.peak_minutes
    while True:
        rate = capacity * (args.load if t < peak_end else args.after_load)
        if rate <= 0:
            break
        t += rng.expovariate(rate)
        if t >= closes:
            break
        callers.append(
            Caller(
                idx=len(callers),
                arrival=t,
                patience=rng.expovariate(1.0 / args.patience),
                handle=rng.expovariate(1.0 / args.aht),
                accepts_offer=rng.random() < args.accept,
                has_number=rng.random() < args.with_number,
                rng_seed=rng.getrandbits(32),
            )
        )
    return callers


@dataclass(slots=True)
class Outcome:
    lost: int = 0
    short_abandoned: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    answered_wait_s: float = 0.0
    left_for_callback: int = 0
    callbacks: int = 0
    callbacks_completed: int = 0
    callbacks_on_time: int = 0
    # Still open at closing with a promise that runs into the next day: neither on time nor
    # late yet (and their callers count as lost: not served that day).
    callbacks_not_yet_due: int = 0
    callbacks_by_status: dict[str, int] = field(default_factory=dict)
    announced: Accuracy | None = None  # our wait announcements against the waits callers had
    asterisk: Accuracy | None = None  # Asterisk's announce-holdtime on the same callers
    hindsight_pct: float | None = None  # the best any announcement by place in line could do

    def kpis(self) -> dict[str, Any]:
        counted = self.answered + self.abandoned - self.short_abandoned
        return {
            "lost": self.lost,
            "sl_pct": round(100.0 * self.answered_within_sl / counted, 1) if counted else None,
            "asa_s": round(self.answered_wait_s / self.answered, 1) if self.answered else None,
            "callback_on_time_pct": (
                round(100.0 * self.callbacks_on_time / due, 1)
                if (due := self.callbacks - self.callbacks_not_yet_due)
                else None
            ),
            "answered": self.answered,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "left_for_callback": self.left_for_callback,
            "callbacks": self.callbacks,
            "callbacks_completed": self.callbacks_completed,
            "callbacks_not_yet_due": self.callbacks_not_yet_due,
            "callbacks_by_status": dict(sorted(self.callbacks_by_status.items())),
            "announced": None if self.announced is None else self.announced.as_dict(),
            "asterisk_announced": None if self.asterisk is None else self.asterisk.as_dict(),
            "hindsight_within_pct": self.hindsight_pct,
        }


class Simulation:
    """One play of the callers through one queue. Event kinds, in heap order by time:
    arrive, announce (position + expected wait, maybe an offer), patience (abandon), done (agent
    finishes), ring (a callback attempt's result), wake (scheduler's next_wakeup)."""

    def __init__(
        self,
        args: argparse.Namespace,
        callers: list[Caller],
        callbacks_on: bool,
        hours: HoursSpec,
        closes: float,
    ) -> None:
        self.args = args
        self.callers = callers
        self.callbacks_on = callbacks_on
        self.closes = closes
        self.policy = QueuePolicy(
            hours=hours,
            offer=callbacks_on and args.offer,
            offer_after_s=float(args.offer_after),
            abandoned_callbacks=callbacks_on and args.abandon_callbacks,
            short_abandon_s=float(args.short_abandon),
            due_within_s=60.0 * args.due_minutes,
            max_attempts=args.max_attempts,
            retry_base_s=float(args.retry_s),
            fill_reserve_agents=args.fill_reserve,
            sl_target_pct=args.sl_target,
            fill_sl_margin_pct=args.fill_margin,
            fill_idle_s=args.fill_idle,
            fill_spacing_s=args.fill_spacing,
            fill_max_load=args.fill_max_load,
            promise=PromiseRules(
                early=args.promise_early,
                late=args.promise_late,
                fill_late=args.promise_fill_late,
                slack_s=args.promise_slack,
                min_width_s=args.promise_min_width,
                fill_share=args.fill_share,
                urgent_before_s=args.urgent_before,
            ),
        )
        self.recent_load = RollingLoad(window_s=args.sl_window)
        self.recent_fills = RollingLoad(window_s=FILL_RATE_WINDOW_S)  # fill dials, for promises
        self.hour_load = RollingLoad(window_s=FILL_RATE_WINDOW_S)  # ... and the load they count on
        self.abandon_rate = RollingAbandonRate(window_s=args.sl_window)
        self.asterisk_holdtime: int | None = None  # app_queue's exponential average
        self.recent_sl = RollingServiceLevel(
            service_level_s=float(args.sl), short_abandon_s=float(args.short_abandon), window_s=args.sl_window
        )
        self.state = SchedulerState(policies={KEY: self.policy})
        self.estimator = WaitEstimator()
        self.idle: list[str] = [f"Local/agent{i}@agents" for i in range(args.agents)]
        start = callers[0].arrival if callers else closes
        self.idle_since: dict[str, float] = dict.fromkeys(self.idle, start)  # free agent -> since when
        self.waiting: dict[int, Caller] = {}  # live callers in line, by idx
        self.by_callback: dict[str, Caller] = {}
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = itertools.count()
        self.wakes: set[float] = set()

    def push(self, at: float, kind: str, payload: Any = None) -> None:
        heapq.heappush(self.events, (at, next(self.seq), kind, payload))

    # --- the line ------------------------------------------------------------------------------

    def dispatch(self, now: float) -> None:
        """The scheduler picks the callbacks whose turn it is; the rest of the free agents take the
        live callers at the head of the line (Asterisk's own queue order)."""
        live = sorted(self.waiting.values(), key=lambda c: c.arrival)
        load = QueueLoad(
            free_agents=tuple(self.idle),
            live_waiting=tuple(c.arrival for c in live),
            recent_sl_pct=self.recent_sl.pct(now),
            idle_since=self.idle_since,
            recent_load=self.recent_load.share(now, self.estimator.aht_s, self.args.agents),
        )
        for command in decide(self.state, now, {KEY: load}):
            if isinstance(command, Dial):
                if command.callback.tier > 0:
                    self.recent_fills.arrived(now)
                self.take(command.agent)
                caller = self.by_callback[command.callback.id]
                result, ring = caller.draw_attempt(
                    command.callback.attempts, self.args.p_answer, self.args.p_busy
                )
                self.push(
                    now + self.args.agent_ring + ring,
                    "ring",
                    (command.callback.id, command.originate_id, result, command.agent),
                )
        for caller in live:
            if not self.idle:
                break
            agent = self.idle[0]
            self.take(agent)
            del self.waiting[caller.idx]
            caller.answered_at = now
            self.recent_sl.answered(now, now - caller.arrival)
            self.abandon_rate.ended(now, now - caller.arrival, abandoned=False)
            self.asterisk_holdtime = asterisk_holdtime(self.asterisk_holdtime, now - caller.arrival)
            self.push(now + caller.handle, "done", (agent, caller.handle))
        wake = next_wakeup(self.state, now)
        if wake is not None and wake not in self.wakes and wake <= self.closes:
            self.wakes.add(wake)
            self.push(wake, "wake")

    def take(self, agent: str) -> None:
        self.idle.remove(agent)
        del self.idle_since[agent]

    def free(self, agent: str, now: float) -> None:
        self.idle.append(agent)
        self.idle_since[agent] = now

    def tick(self, now: float, _: Any) -> None:
        """The worker decides every second; the model every ``TICK_S`` while fill work waits, since
        the pacing (rolling SL, idle time, spacing) changes with time alone."""
        if len(self.idle) > self.policy.fill_reserve_agents and not self.waiting:
            self.dispatch(now)  # otherwise no fill callback could go out anyway
        if now + TICK_S <= self.closes:
            self.push(now + TICK_S, "tick")

    def book(self, caller: Caller, source: str, now: float) -> None:
        kind: Source = "queue_offer" if source == "queue_offer" else "abandoned"
        # The promise, as the bridge computes it at booking: from the line ahead of the callback.
        waiting = [self.state.callbacks[i] for i in self.state.waiting.get(KEY, ())]
        line = count_ahead(
            (c.arrival for c in self.waiting.values()),
            self.args.agents,
            waiting,
            self.estimator.aht_s,
            place_at=caller.arrival if kind == "queue_offer" else None,
            tier=tier(self.policy, kind),
            fill_rate=promised_fill_rate(
                self.policy,
                self.recent_fills.count(now) / self.recent_fills.window_s,
                self.hour_load.share(now, self.estimator.aht_s, self.args.agents),
            ),
        )
        req = CallbackRequest(
            id=f"cb{caller.idx}",
            tenant=TENANT,
            queue=QUEUE,
            number=f"+3120{caller.idx:07d}",
            source=kind,
            requested_at=now,
            joined_at=caller.arrival,
            line=line,
        )
        callback, _ = request(self.state, req)
        caller.callback_id = callback.id
        self.by_callback[callback.id] = caller

    # --- events --------------------------------------------------------------------------------

    def announce(self, caller: Caller, now: float) -> None:
        if caller.idx not in self.waiting:
            return
        places = line(
            (live_place(str(c.idx), c.arrival) for c in self.waiting.values()),
            (c for c in self.state.callbacks.values() if c.status in (Status.PENDING, Status.OVERDUE)),
        )
        where = position(places, str(caller.idx))
        expected = self.estimator.expected_wait(where or 1, self.args.agents)
        if caller.accepts_offer and caller.has_number and should_offer(self.policy, expected):
            del self.waiting[caller.idx]
            caller.left_for_callback_at = now
            self.book(caller, "queue_offer", now)
            self.dispatch(now)
            return
        self.push(now + self.args.announce_every, "announce", caller)

    def run(self) -> Outcome:
        for caller in self.callers:
            self.push(caller.arrival, "arrive", caller)
        handlers: dict[str, Callable[[float, Any], None]] = {
            "arrive": self.on_arrive,
            "announce": lambda now, c: self.announce(c, now),
            "patience": self.on_patience,
            "done": self.on_done,
            "ring": self.on_ring,
            "wake": lambda now, _: self.dispatch(now),
            "tick": self.tick,
        }
        if self.callbacks_on:
            self.push(self.callers[0].arrival if self.callers else self.closes, "tick")
        while self.events:
            now, _, kind, payload = heapq.heappop(self.events)
            handlers[kind](now, payload)
        return self.outcome()

    def on_arrive(self, now: float, caller: Caller) -> None:
        self.recent_load.arrived(now)
        self.hour_load.arrived(now)
        self.waiting[caller.idx] = caller
        self.push(now + caller.patience, "patience", caller)
        self.dispatch(now)
        if caller.idx in self.waiting:
            self.tell_expected_wait(caller, now)
            self.announce(caller, now)

    def tell_expected_wait(self, caller: Caller, now: float) -> None:
        """On joining: what the dialplan says (our estimate from the line ahead), and what
        Asterisk's announce-holdtime would say, measured against the wait the caller then has."""
        in_line = callbacks_in_line(self.state.callbacks.values(), now)  # as the bridge counts them
        position = len(self.waiting) + in_line  # the caller is the last of the live ones
        forecast = forecast_wait(
            position,
            self.args.agents,
            self.estimator.aht_s,
            self.abandon_rate.rate(now),
            callbacks_ahead=in_line,
        )
        caller.heard = True
        caller.told = spoken_s(forecast)
        caller.told_by_asterisk = asterisk_announcement_s(self.asterisk_holdtime)
        caller.place = position

    def on_patience(self, now: float, caller: Caller) -> None:
        if caller.idx not in self.waiting:
            return
        del self.waiting[caller.idx]
        caller.abandoned_at = now
        waited = now - caller.arrival
        self.abandon_rate.ended(now, waited, abandoned=True)
        self.recent_sl.abandoned(now, waited)
        if caller.has_number and callback_for_abandon(self.policy, waited):
            self.book(caller, "abandoned", now)
            self.dispatch(now)

    def on_done(self, now: float, payload: tuple[str, float]) -> None:
        agent, handle = payload
        self.estimator.observe(handle)
        self.free(agent, now)
        self.dispatch(now)

    def on_ring(self, now: float, payload: tuple[str, str, AttemptResult, str]) -> None:
        callback_id, originate_id, result, agent = payload
        on_result(self.state, callback_id, originate_id, result, now)
        if result == "answered":
            caller = self.by_callback[callback_id]
            self.push(now + caller.handle, "done", (agent, caller.handle))
        else:
            self.free(agent, now)
            self.dispatch(now)

    # --- results -------------------------------------------------------------------------------

    def outcome(self) -> Outcome:
        out = Outcome()
        heard = [c for c in self.callers if c.heard and c.answered_at is not None]
        out.announced = accuracy((c.told, c.answered_at - c.arrival) for c in heard if c.answered_at)
        out.hindsight_pct = hindsight_within_pct(
            (c.place, c.answered_at - c.arrival) for c in heard if c.answered_at
        )
        out.asterisk = accuracy(
            (c.told_by_asterisk, c.answered_at - c.arrival) for c in heard if c.answered_at
        )
        for caller in self.callers:
            callback = self.state.callbacks.get(caller.callback_id) if caller.callback_id else None
            served_by_callback = callback is not None and callback.status is Status.COMPLETED
            if caller.answered_at is not None:
                out.answered += 1
                wait = caller.answered_at - caller.arrival
                out.answered_wait_s += wait
                out.answered_within_sl += wait <= self.args.sl
            elif caller.abandoned_at is not None:
                out.abandoned += 1
                if caller.abandoned_at - caller.arrival < self.args.short_abandon:
                    out.short_abandoned += 1
                    continue  # a short abandon is not a lost caller (DESIGN.md)
            elif caller.left_for_callback_at is not None:
                out.left_for_callback += 1
            if caller.answered_at is None and not served_by_callback:
                out.lost += 1
        for callback in self.state.callbacks.values():
            out.callbacks += 1
            out.callbacks_by_status[callback.status.value] = (
                out.callbacks_by_status.get(callback.status.value, 0) + 1
            )
            out.callbacks_completed += callback.status is Status.COMPLETED
            out.callbacks_on_time += callback.on_time
            out.callbacks_not_yet_due += callback.is_open and callback.due_by > self.closes
        return out


def _at(hhmm: str) -> float:
    return datetime.fromisoformat(f"{DAY}T{hhmm}").replace(tzinfo=ZoneInfo(TIMEZONE)).timestamp()


def run(args: argparse.Namespace) -> dict[str, Any]:
    hours = HoursSpec.build(TIMEZONE, [(["mon", "tue", "wed", "thu", "fri"], args.open, args.close)])
    opens = _at(args.open)
    closes = current_close(hours, opens)
    assert closes is not None
    results: dict[str, Any] = {}
    for name, on in (("without_callbacks", False), ("with_callbacks", True)):
        callers = make_callers(args, opens, closes)  # the same seed: the same callers in both plays
        results[name] = Simulation(args, callers, on, hours, closes).run().kpis()
    without, with_ = results["without_callbacks"], results["with_callbacks"]
    reduction = 1.0 - with_["lost"] / without["lost"] if without["lost"] else None
    sl_drop = (
        without["sl_pct"] - with_["sl_pct"]
        if without["sl_pct"] is not None and with_["sl_pct"] is not None
        else None
    )
    results["params"] = {
        "seed": args.seed,
        "agents": args.agents,
        "aht_s": args.aht,
        "load": args.load,
        "peak_minutes": args.peak_minutes,
        "after_load": args.after_load,
        "open": args.open,
        "close": args.close,
        "patience_s": args.patience,
        "accept": args.accept,
        "offer_after_s": args.offer_after,
        "abandon_callbacks": args.abandon_callbacks,
        "sl_s": args.sl,
        "short_abandon_s": args.short_abandon,
        "due_minutes": args.due_minutes,
        "fill_reserve": args.fill_reserve,
        "fill_min_sl_pct": args.sl_target + args.fill_margin,
        "fill_idle_s": args.fill_idle,
        "max_attempts": args.max_attempts,
        "offered_callers": len(callers),
    }
    results["comparison"] = {
        "lost_reduction_pct": None if reduction is None else round(100.0 * reduction, 1),
        "sl_drop_points": None if sl_drop is None else round(sl_drop, 1),
        "target_lost_reduction_pct": 100.0 * TARGET_LOST_REDUCTION,
        "target_max_sl_drop_points": TARGET_SL_DROP,
        "lost_target_met": reduction is not None and reduction >= TARGET_LOST_REDUCTION,
        "sl_target_met": sl_drop is not None and sl_drop <= TARGET_SL_DROP,
        "target_on_time_pct": TARGET_ON_TIME_PCT,
        "on_time_target_met": (with_["callback_on_time_pct"] or 0.0) >= TARGET_ON_TIME_PCT,
    }
    ours, asterisk = with_["announced"], with_["asterisk_announced"]
    results["announcements"] = {
        "ours_within_pct": ours["within_pct"],
        "ours_median_error_s": ours["median_error_s"],
        "asterisk_within_pct": asterisk["within_pct"],
        "asterisk_median_error_s": asterisk["median_error_s"],
        "target_within_pct": TARGET_ANNOUNCED_WITHIN_PCT,
        "target_met": (ours["within_pct"] or 0.0) >= TARGET_ANNOUNCED_WITHIN_PCT,
        "beats_asterisk": (ours["within_pct"] or 0.0) > (asterisk["within_pct"] or 0.0),
        "hindsight_within_pct": with_["hindsight_within_pct"],
    }
    return results


def render(result: dict[str, Any]) -> str:
    p, c = result["params"], result["comparison"]
    lines = [
        f"callbacks bench: seed {p['seed']}, {p['agents']} agents, AHT {p['aht_s']:g} s, "
        f"load {p['load']:.0%} for {p['peak_minutes']} min then {p['after_load']:.0%} until {p['close']}, "
        f"{p['offered_callers']} callers, patience {p['patience_s']:g} s, accept {p['accept']:.0%}",
        "",
        f"{'':<20} {'lost':>6} {'SL %':>7} {'ASA s':>7} {'on-time %':>10} {'answered':>9} {'abandoned':>10} "
        f"{'callbacks':>10} {'completed':>10}",
    ]
    for name in ("without_callbacks", "with_callbacks"):
        r = result[name]
        on_time = "-" if r["callback_on_time_pct"] is None else f"{r['callback_on_time_pct']:.1f}"
        lines.append(
            f"{name:<20} {r['lost']:>6} {r['sl_pct'] or 0:>7.1f} {r['asa_s'] or 0:>7.1f} {on_time:>10} "
            f"{r['answered']:>9} {r['abandoned']:>10} {r['callbacks']:>10} {r['callbacks_completed']:>10}"
        )
    lines.append("")
    lines.append(
        f"lost callers: {c['lost_reduction_pct']}% fewer with callbacks "
        f"(target >= {c['target_lost_reduction_pct']:g}%): {'meets' if c['lost_target_met'] else 'misses'}"
    )
    lines.append(
        f"live SL: {c['sl_drop_points']} points lower with callbacks "
        f"(target <= {c['target_max_sl_drop_points']:g}): {'meets' if c['sl_target_met'] else 'misses'}"
    )
    on_time = result["with_callbacks"]["callback_on_time_pct"]
    lines.append(
        f"callbacks on time: {on_time}% of those due today (target >= {TARGET_ON_TIME_PCT:g}%): "
        f"{'meets' if c['on_time_target_met'] else 'misses'}; promised for the next day: "
        f"{result['with_callbacks']['callbacks_not_yet_due']}"
    )
    lines.append(f"callback outcomes: {result['with_callbacks']['callbacks_by_status']}")
    a = result["announcements"]
    lines.append(
        f"wait announcements: {a['ours_within_pct']}% within +-30% / +-30 s (median error "
        f"{a['ours_median_error_s']} s); Asterisk's announce-holdtime on the same callers "
        f"{a['asterisk_within_pct']}% (median error {a['asterisk_median_error_s']} s)"
    )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.agents < 1 or args.aht <= 0 or args.patience <= 0:
        print("bench callbacks: --agents, --aht and --patience must be positive", file=sys.stderr)
        return 2
    result = run(args)
    if args.json:
        keys = ("lost", "sl_pct", "asa_s", "callback_on_time_pct")
        print(
            json.dumps(
                {name: {k: result[name][k] for k in keys} for name in ("without_callbacks", "with_callbacks")}
            )
        )
    else:
        print(render(result))
        if args.seeds > 1:
            print()
            more = (run(_with_seed(args, args.seed + i)) for i in range(1, args.seeds))
            print(render_seeds([result, *more]))
        if args.loads:
            print()
            print(
                f"over load ({args.peak_minutes:g} min at the load, then {args.after_load:.0%}), "
                f"seeds {args.seed}..{args.seed + max(args.seeds, 1) - 1}:"
            )
            by_load = {
                load: [run(_with(args, seed=args.seed + i, load=load)) for i in range(max(args.seeds, 1))]
                for load in args.loads
            }
            print(render_loads(by_load))
    return 0


def _with(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


def _with_seed(args: argparse.Namespace, seed: int) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "seed": seed})


def all_three(result: dict[str, Any]) -> bool:
    c = result["comparison"]
    return bool(c["lost_target_met"] and c["sl_target_met"] and c["on_time_target_met"])


def render_seeds(results: list[dict[str, Any]]) -> str:
    """One line per seed with the three targets (and the announcements): every day counts."""
    lines = [
        f"{'seed':>5} {'lost w/o':>9} {'lost with':>10} {'fewer %':>8} {'SL w/o':>7} {'SL with':>8} "
        f"{'SL drop':>8} {'on-time %':>10} {'next day':>9} {'told ok %':>10} {'Asterisk %':>11} "
        f"{'hindsight %':>12}  targets met"
    ]
    for r in results:
        c, w, cb, a = r["comparison"], r["without_callbacks"], r["with_callbacks"], r["announcements"]
        met = [
            name
            for name, ok in (
                ("lost", c["lost_target_met"]),
                ("SL", c["sl_target_met"]),
                ("on time", c["on_time_target_met"]),
            )
            if ok
        ]
        lines.append(
            f"{r['params']['seed']:>5} {w['lost']:>9} {cb['lost']:>10} {c['lost_reduction_pct']:>8.1f} "
            f"{w['sl_pct']:>7.1f} {cb['sl_pct']:>8.1f} {c['sl_drop_points']:>8.1f} "
            f"{cb['callback_on_time_pct'] or 0:>10.1f} {cb['callbacks_not_yet_due']:>9} "
            f"{a['ours_within_pct'] or 0:>10.1f} {a['asterisk_within_pct'] or 0:>11.1f} "
            f"{a['hindsight_within_pct'] or 0:>12.1f}  " + (", ".join(met) if met else "none")
        )
    lines.append(summary_line(results))
    told = sum(1 for r in results if r["announcements"]["beats_asterisk"])
    hit = sum(1 for r in results if r["announcements"]["target_met"])
    hindsight = [r["announcements"]["hindsight_within_pct"] or 0.0 for r in results]
    lines.append(
        f"wait announcements: better than Asterisk's on {told} of {len(results)} seeds, >= "
        f"{TARGET_ANNOUNCED_WITHIN_PCT:g}% within the band on {hit}; the best any announcement by place in "
        f"line could have done, picked with hindsight: {min(hindsight):.1f}-{max(hindsight):.1f}%"
    )
    return "\n".join(lines)


def summary_line(results: list[dict[str, Any]]) -> str:
    fewer = [r["comparison"]["lost_reduction_pct"] for r in results]
    drop = [r["comparison"]["sl_drop_points"] for r in results]
    on_time = [r["with_callbacks"]["callback_on_time_pct"] or 0.0 for r in results]
    return (
        f"all three targets met on {sum(all_three(r) for r in results)} of {len(results)} seeds; "
        f"worst day: {min(fewer):.1f}% fewer lost, SL {max(drop):.1f} points lower, "
        f"{min(on_time):.1f}% on time"
    )


def render_loads(by_load: dict[float, list[dict[str, Any]]]) -> str:
    """The trade-off over load: per load, the worst seed of each target and the days meeting all;
    "Asterisk %" is its best seed; "min hindsight %" the worst day's bound on announcements."""
    lines = [
        f"{'load':>6} {'all three':>10} {'min fewer %':>12} {'max SL drop':>12} {'min on-time %':>14} "
        f"{'min told ok %':>14} {'Asterisk %':>11} {'min hindsight %':>16}"
    ]
    for load, results in sorted(by_load.items()):
        ann = [r["announcements"] for r in results]
        lines.append(
            f"{load:>6.0%} {sum(all_three(r) for r in results):>7}/{len(results):<2} "
            f"{min(r['comparison']['lost_reduction_pct'] for r in results):>12.1f} "
            f"{max(r['comparison']['sl_drop_points'] for r in results):>12.1f} "
            f"{min(r['with_callbacks']['callback_on_time_pct'] or 0.0 for r in results):>14.1f} "
            f"{min(a['ours_within_pct'] or 0.0 for a in ann):>14.1f} "
            f"{max(a['asterisk_within_pct'] or 0.0 for a in ann):>11.1f} "
            f"{min(a['hindsight_within_pct'] or 0.0 for a in ann):>16.1f}"
        )
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=1, help="the first traffic seed (default 1)")
    p.add_argument(
        "--seeds", type=int, default=1, help="text output: also run seeds --seed..--seed+N-1, mean/min/max"
    )
    p.add_argument("--agents", type=int, default=10, help="agents staffing the queue (default 10)")
    p.add_argument("--aht", type=float, default=240.0, help="mean handle time (talk + wrap-up), seconds")
    p.add_argument("--load", type=float, default=1.10, help="offered load / agent capacity from opening")
    p.add_argument("--peak-minutes", type=float, default=180.0, help="minutes at --load after opening")
    p.add_argument(
        "--after-load", type=float, default=0.85, help="offered load after the peak, until closing"
    )
    p.add_argument("--open", default="08:00", help="opening time (Mon-Fri)")
    p.add_argument("--close", default="18:00", help="closing time")
    p.add_argument(
        "--patience", type=float, default=180.0, help="mean caller patience, seconds (exponential)"
    )
    p.add_argument("--accept", type=float, default=0.5, help="share of callers who accept a callback offer")
    p.add_argument("--with-number", type=float, default=0.95, help="share of callers with a usable number")
    p.add_argument(
        "--offer-after",
        type=float,
        default=float(_QUEUE_DEFAULTS.callback_offer_after_s),
        help="offer when the expected wait exceeds this (QueueIn.callback_offer_after_s)",
    )
    p.add_argument("--announce-every", type=float, default=60.0, help="seconds between announcements")
    p.add_argument(
        "--no-offer", dest="offer", action="store_false", help="with callbacks: make no in-queue offer"
    )
    p.add_argument(
        "--no-abandon-callbacks",
        dest="abandon_callbacks",
        action="store_false",
        help="with callbacks: do not call back callers who hung up",
    )
    p.add_argument("--sl", type=float, default=float(_QUEUE_DEFAULTS.service_level_s), help="SL threshold T")
    p.add_argument(
        "--short-abandon",
        type=float,
        default=float(_QUEUE_DEFAULTS.short_abandon_s),
        help="abandons quicker than this (s) are short abandons: never called back",
    )
    p.add_argument(
        "--due-minutes", type=float, default=60.0, help="callback due-by: within this of the request"
    )
    p.add_argument(
        "--fill-reserve",
        type=int,
        default=3,
        help="agents kept free for live callers when dialling callbacks to callers who hung up",
    )
    p.add_argument("--sl-target", type=float, default=80.0, help="the queue's SL target, %%")
    p.add_argument(
        "--fill-margin",
        type=float,
        default=-15.0,
        help="fill callbacks only while the rolling SL >= target + this",
    )
    p.add_argument("--sl-window", type=float, default=900.0, help="rolling SL window, seconds")
    p.add_argument(
        "--fill-idle", type=float, default=60.0, help="or when an agent has idled this long (0: never)"
    )
    p.add_argument("--fill-spacing", type=float, default=0.0, help="at most one fill dial per this many s")
    p.add_argument(
        "--fill-max-load", type=float, default=1.0, help="fill only while recent load / agents <= this"
    )
    rules = PromiseRules()
    p.add_argument(
        "--promise-early",
        type=float,
        default=rules.early,
        help="promised window opens this share before the expected time",
    )
    p.add_argument(
        "--promise-late",
        type=float,
        default=rules.late,
        help="promised window closes this share after the expected time (plus --promise-slack)",
    )
    p.add_argument(
        "--promise-fill-late",
        type=float,
        default=rules.fill_late,
        help="the same for fill callbacks (callers who hung up)",
    )
    p.add_argument(
        "--promise-slack", type=float, default=rules.slack_s, help="seconds added to the window's end"
    )
    p.add_argument(
        "--promise-min-width", type=float, default=rules.min_width_s, help="narrowest window, seconds"
    )
    p.add_argument(
        "--fill-share",
        type=float,
        default=rules.fill_share,
        help="least share of the agents a promise assumes fill work (callers who hung up) gets",
    )
    p.add_argument(
        "--urgent-before",
        type=float,
        default=rules.urgent_before_s,
        help="fill callbacks this close to their promise go out past the pacing's SL and "
        "load gates, not past the reserve (0: never)",
    )
    p.add_argument("--max-attempts", type=int, default=3, help="dial attempts per callback (default 3)")
    p.add_argument("--retry-s", type=float, default=300.0, help="back-off before the 2nd attempt (doubles)")
    p.add_argument("--p-answer", type=float, default=0.8, help="chance the customer answers an attempt")
    p.add_argument("--p-busy", type=float, default=0.05, help="chance the customer's line is busy")
    p.add_argument("--agent-ring", type=float, default=3.0, help="seconds to reach the agent (agent first)")
    p.add_argument(
        "--loads",
        type=lambda v: [float(x) for x in v.split(",")],
        default=None,
        metavar="L1,L2,...",
        help=f"text output: also the trade-off over these peak loads for the seeds (e.g. "
        f"{','.join(f'{x:g}' for x in LOADS)})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "callbacks",
        help="callers lost, SL, ASA and callback on-time %% with and without callbacks, same traffic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=main)


def parse(argv: list[str]) -> argparse.Namespace:
    """The bench's arguments with defaults, for tests and direct runs."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse(sys.argv[1:])))
