"""The simulated PBX's queue world and the AMI event streams its changes produce.

Each method is one step of a queue call as Asterisk 22 reports it (see the fixtures):
  arrive:   channel noise, QueueCallerJoin
  ring:     agent Local channel noise, AgentCalled, DialBegin
  answer:   DialEnd, QueueCallerLeave, AgentConnect, bridge noise, QueueMemberStatus (in call)
  complete: QueueMemberStatus (free), AgentComplete, hangups, bridge teardown
  abandon:  ring legs hung up, QueueCallerAbandon, QueueCallerLeave, hangups
  no answer: AgentRingNoAnswer, agent legs hung up (optionally an autopause)
  callback: the caller presses 1 at the offer: QueueCallerLeave (no Abandon: an exit by key is
            not an abandon), the exit context's dialplan, UserEvent PbxCallbackRequest, hangups
Global variables set over AMI (``Setvar`` without a Channel) live in ``globals``; the callback
offer reads ``PBX_OFFER_{slug}_{queue}`` there, as the rendered dialplan does.
The world keeps ground-truth counters per queue with DESIGN.md's KPI definitions, so a test can
hold the engine's result against what really happened. Time comes only from ``self.clock``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import frames as F
from .clock import SimClock
from .frames import Chan, Headers, encode

DEFAULT_SHORT_ABANDON_S = 5
CALLBACK_EVENT = "PbxCallbackRequest"


@dataclass
class SimMember:
    interface: str
    name: str
    state_interface: str = ""
    membership: str = "dynamic"
    penalty: int = 0
    calls_taken: int = 0
    status: int = 1  # AST_DEVICE_NOT_INUSE
    paused: bool = False
    reason: str = ""
    last_pause: int = 0
    login_time: int = 0  # 0: stamped from the world's clock when added
    in_call: bool = False
    last_call: int = 0
    wrapup_s: int = 0
    ringinuse: bool = True


@dataclass
class SimCaller:
    uniqueid: str
    channel: str
    number: str
    name: str
    joined_at: float
    uniqueid2: str = ""  # the ;2 half of the Local pair
    original_position: int = 0


@dataclass
class SimQueue:
    name: str
    strategy: str = "rrmemory"
    service_level: int = 30
    members: dict[str, SimMember] = field(default_factory=dict)
    callers: list[SimCaller] = field(default_factory=list)
    wrapup_s: int = 0
    ring_timeout_s: int = 15
    # Gone from queues.conf while callers were in it: they finish, nothing else finds it.
    dead: bool = False


@dataclass
class QueueTruth:
    """What really happened in a queue, counted as DESIGN.md defines the KPIs."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    answered_within_sl: int = 0
    other_exits: int = 0
    callback_requests: int = 0  # callers who left by pressing 1 at the offer (also other_exits)
    ring_no_answer: int = 0
    completed: int = 0
    answered_wait_s: int = 0
    talk_s: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class SimRing:
    """One agent leg being rung for a caller (a Local channel pair towards the agent)."""

    queue: str
    caller: SimCaller
    member: SimMember
    leg1: Chan  # the dialled side: AgentCalled's DestChannel
    leg2: Chan | None  # the Local ;2 half running the agent's dialplan
    started: float
    answered_at: float = 0.0
    bridge_id: str = ""


class Driver(Protocol):
    """Whatever moves callers along (the traffic generator); told about Originate'd callers."""

    def caller_joined(self, queue: str, caller: SimCaller, patience_s: float | None) -> None: ...


Tap = Callable[[bytes], None]


def _local_parts(interface: str) -> tuple[str, str] | None:
    """``Local/t1-201@agents/n`` -> ("t1-201", "agents")."""
    if not interface.startswith("Local/"):
        return None
    body = interface[len("Local/") :].split("/", 1)[0]
    exten, _, context = body.partition("@")
    return exten, context or "default"


class World:
    """Queues, members and waiting callers, plus the event streams that describe their changes."""

    def __init__(self, *, clock: SimClock | None = None) -> None:
        self.clock = clock or SimClock()
        self.queues: dict[str, SimQueue] = {}
        self.truth: dict[str, QueueTruth] = {}
        self.short_abandon_s = DEFAULT_SHORT_ABANDON_S
        self.noise = True  # channel/dialplan events around the queue events, as a real Asterisk sends
        self.taps: list[Tap] = []  # every published event frame, before any per-session filter
        self.driver: Driver | None = None
        self.rings: dict[str, SimRing] = {}  # leg1 channel -> ring
        self.globals: dict[str, str] = {}  # Asterisk's global channel variables
        self._uid = itertools.count(1)
        self._tag = itertools.count(0x100)
        self._last_stamp = 0.0

    # ----------------------------------------------------------------- time and output

    def now(self) -> float:
        return self.clock.now()

    def _stamp(self) -> float:
        """Strictly increasing event times, like Asterisk's microsecond timestamps."""
        t = max(self.clock.now(), self._last_stamp + 1e-6)
        self._last_stamp = t
        return t

    def _publish(self, *events: Headers) -> None:
        for headers in events:
            data = encode(headers)
            for tap in self.taps:
                tap(data)
            self._deliver(data, headers[0][1])

    def _deliver(self, data: bytes, event: str) -> None:
        """Send one event to connected clients; the AMI server overrides this."""

    def _new_uid(self) -> str:
        return f"{int(self.clock.now())}.{next(self._uid)}"

    def truth_of(self, queue: str) -> QueueTruth:
        return self.truth.setdefault(queue, QueueTruth())

    def truth_dict(self) -> dict[str, dict[str, int]]:
        return {q: t.as_dict() for q, t in sorted(self.truth.items())}

    # ----------------------------------------------------------------- members

    def queue(self, name: str, strategy: str = "rrmemory", service_level: int = 30) -> SimQueue:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = SimQueue(name, strategy, service_level)
            self.truth_of(name)
        return q

    def member_event(self, kind: str, queue: str, m: SimMember) -> Headers:
        return [("Event", kind), *member_fields(queue, m, self._stamp())]

    def add_member(self, queue: str, m: SimMember, *, emit: bool = True) -> SimMember:
        if not m.login_time:
            m.login_time = int(self.now())
        self.queue(queue).members[m.interface] = m
        if emit:
            self._publish(self.member_event("QueueMemberAdded", queue, m))
        return m

    def pause_member(
        self, queue: str, interface: str, paused: bool, reason: str = "", *, emit: bool = True
    ) -> None:
        m = self.queues[queue].members[interface]
        m.paused, m.reason = paused, (reason if paused else "")
        if paused:
            m.last_pause = int(self.now())
        if emit:
            ts = self._stamp()
            pause_device = f"Queue:{queue}_pause_{interface}"
            self._publish(
                F.device_state(ts, pause_device, "INUSE" if paused else "NOT_INUSE"),
                self.member_event("QueueMemberPause", queue, m),
            )

    def remove_member(self, queue: str, interface: str, *, emit: bool = True) -> None:
        m = self.queues[queue].members.pop(interface)
        if emit:
            self._publish(self.member_event("QueueMemberRemoved", queue, m))

    def set_member_status(self, queue: str, m: SimMember, status: int, in_call: bool) -> None:
        m.status, m.in_call = status, in_call
        self._publish(self.member_event("QueueMemberStatus", queue, m))

    # ----------------------------------------------------------------- callers: the simple API

    def join(
        self, queue: str, number: str, name: str = "", *, waited_s: float = 0.0, emit: bool = True
    ) -> SimCaller:
        """A caller in the queue, announced with QueueCallerJoin only (no channel noise)."""
        c = self._new_caller(number, name, self.now() - waited_s)
        self._enqueue(queue, c, emit=emit, noise=False)
        return c

    def leave(self, queue: str, uniqueid: str, *, abandon: bool = False, emit: bool = True) -> None:
        """The caller leaves: Abandon then Leave when it hung up, Leave alone otherwise."""
        q = self.queues[queue]
        position, c = next((i, c) for i, c in enumerate(q.callers, 1) if c.uniqueid == uniqueid)
        q.callers.remove(c)
        truth = self.truth_of(queue)
        hold = int(self.now() - c.joined_at)
        if abandon:
            truth.abandoned += 1
            truth.short_abandoned += hold < self.short_abandon_s
        else:
            truth.other_exits += 1
        if emit:
            chan = self.caller_chan(c)
            events = []
            if abandon:
                events.append(
                    F.queue_caller_abandon(
                        self._stamp(), chan, queue, position, c.original_position or position, hold
                    )
                )
            events.append(F.queue_caller_leave(self._stamp(), chan, queue, position, len(q.callers)))
            self._publish(*events)

    # ----------------------------------------------------------------- callers: full call flows

    def caller_chan(self, c: SimCaller) -> Chan:
        return Chan(
            c.channel, c.uniqueid, c.uniqueid, "callers", "in", 3, 6, c.number, c.name, c.number, c.name
        )

    def _patience_chan(self, c: SimCaller, priority: int = 2) -> Chan:
        channel = c.channel[:-1] + "2" if c.channel.endswith(";1") else c.channel
        return Chan(
            channel,
            c.uniqueid2 or c.uniqueid,
            c.uniqueid,
            "patience",
            "wait",
            priority,
            6,
            c.number,
            c.name,
            c.number,
            c.name,
        )

    def _new_caller(self, number: str, name: str, joined_at: float) -> SimCaller:
        tag = next(self._tag)
        uid1, uid2 = self._new_uid(), self._new_uid()
        return SimCaller(uid1, f"Local/wait@patience-{tag:08x};1", number, name, joined_at, uid2)

    def _enqueue(self, queue: str, c: SimCaller, *, emit: bool, noise: bool) -> None:
        q = self.queue(queue)
        q.callers.append(c)
        c.original_position = len(q.callers)
        self.truth_of(queue).offered += 1
        if not emit:
            return
        chan = self.caller_chan(c)
        events: list[Headers] = []
        if noise:
            events.append(
                F.newexten(self._stamp(), chan, "Queue", f"{queue},,,,120"),
            )
            for var in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "QUEUEWAIT"):
                events.append(F.varset(self._stamp(), chan, var, ""))
            if len(q.callers) == 1:
                events.append(F.device_state(self._stamp(), f"Queue:{queue}", "RINGING"))
        events.append(F.queue_caller_join(self._stamp(), chan, queue, len(q.callers), len(q.callers)))
        if noise:
            events.append(F.device_state(self._stamp(), "Local/wait@patience", "INUSE"))
        self._publish(*events)

    def arrive(
        self,
        queue: str,
        number: str,
        name: str = "",
        *,
        patience_s: float | None = None,
        originate_id: str | None = None,
    ) -> SimCaller:
        """A call comes in through ``Local/wait@patience`` (as in the recordings) and joins.

        ``originate_id`` is set when an AMI Originate (Async) placed it: an OriginateResponse with
        that ActionID goes out once the channel is up, as Asterisk sends it.
        """
        c = self._new_caller(number, name, self.now())
        if self.noise or originate_id is not None:
            one = Chan(c.channel, c.uniqueid, c.uniqueid, "patience", "wait", 1, 0)
            two = Chan(c.channel[:-1] + "2", c.uniqueid2, c.uniqueid, "patience", "wait", 1, 4)
            ev: list[Headers] = [F.newchannel(self._stamp(), one), F.newchannel(self._stamp(), two)]
            if self.noise:
                ev.append(F.newexten(self._stamp(), one, "AppDial2", "(Outgoing Line)"))
                if patience_s is not None:
                    ev.append(F.varset(self._stamp(), one, "PATIENCE", str(int(patience_s))))
                ev.append(F.varset(self._stamp(), one, "QNAME", queue))
            for ch in (one, two):
                ch.number, ch.name = number, name
                ch.connected_number, ch.connected_name = number, name
            if self.noise:
                ev += [F.newcallerid(self._stamp(), one), F.newconnectedline(self._stamp(), one)]
                ev.append(F.local_bridge(self._stamp(), one, two))
                ev.append(F.dial_begin(self._stamp(), None, one, "wait@patience"))
            one.state = two.state = 6
            if self.noise:
                ev += [F.newstate(self._stamp(), two), F.newstate(self._stamp(), one)]
                ev.append(F.dial_end(self._stamp(), None, one, "ANSWER"))
            if originate_id is not None:
                ev.append(
                    F.originate_response(self._stamp(), originate_id, "Success", one, "callers", "in", 4)
                )
            if self.noise:
                chan = self.caller_chan(c)
                chan.priority = 1
                ev.append(F.newexten(self._stamp(), chan, "NoOp", f"caller {number} -> {queue}"))
            self._publish(*ev)
        self._enqueue(queue, c, emit=True, noise=self.noise)
        return c

    def ring(self, queue: str, c: SimCaller, m: SimMember) -> SimRing:
        """Queue() dials the member: AgentCalled and the dial, with the agent's Local channels."""
        tag = next(self._tag)
        caller = self.caller_chan(c)
        parts = _local_parts(m.interface)
        if parts is not None:
            exten, context = parts
            name1 = f"Local/{exten}@{context}-{tag:08x};1"
            leg1 = Chan(
                name1, self._new_uid(), c.uniqueid, context, "in", 1, 0, c.number, c.name, c.number, c.name
            )
            leg2: Chan | None = Chan(
                name1[:-1] + "2",
                self._new_uid(),
                c.uniqueid,
                context,
                exten,
                1,
                4,
                c.number,
                c.name,
                c.number,
                c.name,
            )
        else:
            leg1 = Chan(
                f"{m.interface}-{tag:08x}",
                self._new_uid(),
                c.uniqueid,
                "agents",
                "in",
                1,
                0,
                c.number,
                c.name,
                c.number,
                c.name,
            )
            leg2 = None
        r = SimRing(queue, c, m, leg1, leg2, self.now())
        self.rings[leg1.channel] = r
        ev: list[Headers] = []
        if self.noise:
            ev.append(F.newchannel(self._stamp(), leg1))
            if leg2 is not None:
                ev.append(F.newchannel(self._stamp(), leg2))
                ev.append(F.local_bridge(self._stamp(), leg1, leg2))
        ev.append(F.agent_called(self._stamp(), caller, leg1, queue, m.interface, m.name))
        if self.noise:
            dial = m.interface[len("Local/") :] if parts is not None else m.interface
            ev.append(F.dial_begin(self._stamp(), caller, leg1, dial))
        self._publish(*ev)
        return r

    def _hangup_leg(self, r: SimRing, cause: int) -> list[Headers]:
        """The agent's legs go away (not answered, or the call ended)."""
        self.rings.pop(r.leg1.channel, None)
        ev: list[Headers] = []
        if r.leg2 is not None and self.noise:
            ev.append(F.hangup_request(self._stamp(), r.leg2, cause))
        ev.append(F.hangup(self._stamp(), r.leg1, cause))
        if r.leg2 is not None:
            ev.append(F.soft_hangup_request(self._stamp(), r.leg2, 16))
            ev.append(F.hangup(self._stamp(), r.leg2, cause))
        if self.noise:
            dev = r.member.interface.removesuffix("/n")
            ev.append(F.device_state(self._stamp(), dev, "NOT_INUSE"))
        return ev

    def ring_no_answer(self, r: SimRing, *, autopause: bool = False) -> None:
        truth = self.truth_of(r.queue)
        truth.ring_no_answer += 1
        caller = self.caller_chan(r.caller)
        ring_ms = int((self.now() - r.started) * 1000)
        ev = [
            F.agent_ring_no_answer(
                self._stamp(), caller, r.leg1, r.queue, r.member.interface, r.member.name, ring_ms
            )
        ]
        if self.noise:
            ev.append(F.dial_end(self._stamp(), caller, r.leg1, "NOANSWER"))
        ev += self._hangup_leg(r, 0)
        self._publish(*ev)
        if autopause and r.member.interface in self.queues[r.queue].members:
            self.pause_member(r.queue, r.member.interface, True, "Auto-Pause")

    def cancel_ring(self, r: SimRing) -> None:
        """Another leg answered, or the caller left: this leg is hung up without an event of its own."""
        caller = self.caller_chan(r.caller)
        ev = [F.dial_end(self._stamp(), caller, r.leg1, "CANCEL")] if self.noise else []
        self._publish(*ev, *self._hangup_leg(r, 0))

    def dump(self, r: SimRing) -> None:
        """The agent picked up and hung up straight away: AgentDump; the caller waits on."""
        caller = self.caller_chan(r.caller)
        ev = [F.agent_dump(self._stamp(), caller, r.leg1, r.queue, r.member.interface, r.member.name)]
        self._publish(*ev, *self._hangup_leg(r, 16))

    def answer(self, r: SimRing) -> None:
        """The member answers: Leave (before Connect, as Asterisk does), AgentConnect, the bridge."""
        q = self.queues[r.queue]
        c = r.caller
        position = next(i for i, x in enumerate(q.callers, 1) if x is c)
        q.callers.remove(c)
        now = self.now()
        hold, ring_s = int(now - c.joined_at), int(now - r.started)
        truth = self.truth_of(r.queue)
        truth.answered += 1
        truth.answered_wait_s += hold
        truth.answered_within_sl += hold <= q.service_level
        r.answered_at = now
        r.leg1.state = 6
        if r.leg2 is not None:
            r.leg2.state = 6
        caller = self.caller_chan(c)
        m = r.member
        ev: list[Headers] = []
        if self.noise:
            if r.leg2 is not None:
                ev += [F.newstate(self._stamp(), r.leg2), F.newstate(self._stamp(), r.leg1)]
            ev.append(F.dial_end(self._stamp(), caller, r.leg1, "ANSWER"))
            if not q.callers:
                ev.append(F.device_state(self._stamp(), f"Queue:{r.queue}", "NOT_INUSE"))
        ev.append(F.queue_caller_leave(self._stamp(), caller, r.queue, position, len(q.callers)))
        if self.noise:
            ev.append(F.varset(self._stamp(), caller, "QUEUEPOSITION", str(position)))
            ev.append(F.varset(self._stamp(), caller, "QUEUEWAIT", str(hold)))
        ev.append(F.agent_connect(self._stamp(), caller, r.leg1, r.queue, m.interface, m.name, hold, ring_s))
        r.bridge_id = f"{next(self._tag):08x}-5094-4bc9-9922-{int(now):012x}"
        if self.noise:
            ev.append(F.bridge_create(self._stamp(), r.bridge_id))
            ev.append(F.bridge_enter(self._stamp(), r.bridge_id, 1, r.leg1))
            ev.append(F.device_state(self._stamp(), m.interface.removesuffix("/n"), "INUSE"))
            ev.append(F.bridge_enter(self._stamp(), r.bridge_id, 2, caller))
            ev.append(F.varset(self._stamp(), r.leg1, "BRIDGEPEER", caller.channel))
            ev.append(F.varset(self._stamp(), caller, "BRIDGEPEER", r.leg1.channel))
        self._publish(*ev)
        if m.interface in q.members:
            self.set_member_status(r.queue, m, 2, True)
        else:
            m.status, m.in_call = 2, True
        if self.noise:
            self._publish(F.device_state(self._stamp(), m.state_interface or m.interface, "INUSE"))

    def complete(self, r: SimRing, *, reason: str = "agent") -> None:
        """The call ends: member free again, AgentComplete, hangups, the bridge torn down."""
        now = self.now()
        m, c = r.member, r.caller
        hold, talk = int(r.answered_at - c.joined_at), int(now - r.answered_at)
        truth = self.truth_of(r.queue)
        truth.completed += 1
        truth.talk_s += talk
        m.calls_taken += 1
        m.last_call = int(now)
        if m.interface in self.queues[r.queue].members:
            self.set_member_status(r.queue, m, 1, False)
        else:
            m.status, m.in_call = 1, False
        caller = self.caller_chan(c)
        ev: list[Headers] = []
        if self.noise:
            ev.append(F.device_state(self._stamp(), m.state_interface or m.interface, "NOT_INUSE"))
        ev.append(
            F.agent_complete(self._stamp(), caller, r.leg1, r.queue, m.interface, m.name, hold, talk, reason)
        )
        self.rings.pop(r.leg1.channel, None)
        if r.leg2 is not None:
            ev.append(F.hangup(self._stamp(), r.leg2, 16))
        if self.noise:
            ev.append(F.bridge_leave(self._stamp(), r.bridge_id, 1, r.leg1))
        ev.append(F.hangup(self._stamp(), r.leg1, 16))
        if self.noise:
            ev.append(F.bridge_leave(self._stamp(), r.bridge_id, 0, caller))
            ev.append(F.bridge_destroy(self._stamp(), r.bridge_id))
            ev.append(F.varset(self._stamp(), caller, "ANSWEREDTIME", str(talk)))
            ev.append(F.soft_hangup_request(self._stamp(), caller, 16))
        ev.append(F.hangup(self._stamp(), caller, 16))
        ev.append(F.hangup(self._stamp(), self._patience_chan(c), 16))
        if self.noise:
            ev.append(F.device_state(self._stamp(), "Local/wait@patience", "NOT_INUSE"))
        self._publish(*ev)

    def abandon(self, queue: str, c: SimCaller, rings: Sequence[SimRing] = ()) -> int:
        """The caller hangs up while waiting; legs ringing for it are hung up first. Returns the wait."""
        q = self.queues[queue]
        position = next(i for i, x in enumerate(q.callers, 1) if x is c)
        q.callers.remove(c)
        hold = int(self.now() - c.joined_at)
        truth = self.truth_of(queue)
        truth.abandoned += 1
        truth.short_abandoned += hold < self.short_abandon_s
        caller = self.caller_chan(c)
        patience = self._patience_chan(c, 3)
        ev: list[Headers] = []
        if self.noise:
            ev.append(F.soft_hangup_request(self._stamp(), patience, 16))
            ev.append(F.hangup_request(self._stamp(), caller, 16))
        ev.append(F.hangup(self._stamp(), patience, 16))
        for r in rings:
            if self.noise:
                ev.append(F.dial_end(self._stamp(), caller, r.leg1, "CANCEL"))
            ev += self._hangup_leg(r, 0)
        if self.noise:
            ev.append(F.varset(self._stamp(), caller, "ABANDONED", "TRUE"))
        ev.append(
            F.queue_caller_abandon(
                self._stamp(), caller, queue, position, c.original_position or position, hold
            )
        )
        if self.noise and not q.callers:
            ev.append(F.device_state(self._stamp(), f"Queue:{queue}", "NOT_INUSE"))
        ev.append(F.queue_caller_leave(self._stamp(), caller, queue, position, len(q.callers)))
        if self.noise:
            ev.append(F.soft_hangup_request(self._stamp(), caller, 16))
        ev.append(F.hangup(self._stamp(), caller, 16))
        self._publish(*ev)
        return hold

    def global_varset(self, variable: str, value: str) -> None:
        """Pure noise, as in the recordings' set-up phase."""
        self._publish(F.varset(self._stamp(), None, variable, value))

    # ----------------------------------------------------------------- globals and the callback offer

    def set_global(self, variable: str, value: str) -> None:
        """A global variable (AMI ``Setvar`` without a Channel). An empty value removes it, as
        Asterisk does; the VarSet event (``Channel: none``) goes out either way."""
        if value:
            self.globals[variable] = value
        else:
            self.globals.pop(variable, None)
        if self.noise:
            self.global_varset(variable, value)

    def offer_open(self, queue: str) -> bool:
        """Whether the queue's dialplan offers a callback now: ``PBX_OFFER_{slug}_{queue}`` = 1."""
        return self.globals.get(offer_variable(queue), "").strip() == "1"

    def callback_request(self, queue: str, c: SimCaller, number: str, rings: Sequence[SimRing] = ()) -> None:
        """The caller pressed 1 at the offer: Queue() ends with an exit by key (QueueCallerLeave,
        no QueueCallerAbandon), the dialplan goes on in ``{slug}-queue-{name}-exit`` exten 1,
        confirms the number, sends ``UserEvent(PbxCallbackRequest,...)`` and hangs up."""
        q = self.queues[queue]
        position = next(i for i, x in enumerate(q.callers, 1) if x is c)
        q.callers.remove(c)
        truth = self.truth_of(queue)
        truth.other_exits += 1
        truth.callback_requests += 1
        caller = self.caller_chan(c)
        slug, short = split_queue(queue)
        ev: list[Headers] = []
        for r in rings:
            if self.noise:
                ev.append(F.dial_end(self._stamp(), caller, r.leg1, "CANCEL"))
            ev += self._hangup_leg(r, 0)
        if self.noise and not q.callers:
            ev.append(F.device_state(self._stamp(), f"Queue:{queue}", "NOT_INUSE"))
        ev.append(F.queue_caller_leave(self._stamp(), caller, queue, position, len(q.callers)))
        caller.context, caller.exten = f"{slug}-queue-{short}-exit", "1"
        body = [
            ("Tenant", slug),
            ("Queue", short),
            ("Number", number),
            ("Source", "queue_offer"),
            ("JoinedAt", str(int(c.joined_at))),  # ${PBX_JOINED}, set from ${EPOCH} before Queue()
            ("Uniqueid", c.uniqueid),
        ]
        for priority, (app, data) in enumerate(_booking_steps(c.number, number, body), 1):
            caller.priority = priority
            if self.noise:
                ev.append(F.newexten(self._stamp(), caller, app, data))
            if app == "UserEvent":
                ev.append(F.user_event(self._stamp(), caller, CALLBACK_EVENT, body))
        if self.noise:
            ev.append(F.soft_hangup_request(self._stamp(), caller, 16))
        ev.append(F.hangup(self._stamp(), caller, 16))
        ev.append(F.hangup(self._stamp(), self._patience_chan(c), 16))
        if self.noise:
            ev.append(F.device_state(self._stamp(), "Local/wait@patience", "NOT_INUSE"))
        self._publish(*ev)

    def find_channel(self, channel: str) -> Chan | None:
        """A live channel by name (a waiting caller, or an agent leg being rung or talking)."""
        for q in self.queues.values():
            for c in q.callers:
                if c.channel == channel:
                    return self.caller_chan(c)
        for r in self.rings.values():
            for leg in (r.leg1, r.leg2):
                if leg is not None and leg.channel == channel:
                    return leg
        return None

    def snapshot(self) -> dict[str, Any]:
        """The world as plain data (tests compare it with QueueStatus and the engine)."""
        now = self.now()
        return {
            q.name: {
                "members": {
                    m.interface: {"paused": m.paused, "reason": m.reason, "in_call": m.in_call}
                    for m in q.members.values()
                },
                "callers": [(c.uniqueid, c.number, int(now - c.joined_at)) for c in q.callers],
            }
            for q in self.queues.values()
        }


def _booking_steps(caller_id: str, number: str, body: Headers) -> list[tuple[str, str]]:
    """The exit context's applications with their expanded AppData (pbx_core.asterisk.dialplan's
    offer_exit): read the caller ID back (or have a number typed), "1" to confirm, the UserEvent,
    the goodbye, Hangup. Channel noise only: nothing reads it but a human."""
    cid = "".join(ch for ch in caller_id if ch.isdigit() or ch == "+")
    joined = dict(body).get("JoinedAt", "")
    steps = [
        ("GotoIf", '$["1"="1"]?book'),
        ("Set", f"PBX_CB_JOINED={joined}"),
        ("Set", f"PBX_CB_NUMBER={cid}"),
        ("Set", "PBX_CB_ROUNDS=0"),
        ("Set", "PBX_CB_ROUNDS=1"),
        ("GotoIf", "$[1>3]?failed"),
        ("GotoIf", f"$[{len(cid)}<3]?ask"),
    ]
    rounds = 1
    if len(cid) < 3:  # no usable caller ID: the caller types the number
        rounds = 2
        steps += [
            ("Read", "PBX_CB_TYPED,pbx-core/callback-enter-number,15,,1,10"),
            ("Set", f"PBX_CB_NUMBER={number}"),
            ("Goto", "confirm"),
            ("Set", f"PBX_CB_ROUNDS={rounds}"),
            ("GotoIf", f"$[{rounds}>3]?failed"),
            ("GotoIf", f"$[{len(number)}<3]?ask"),
        ]
    steps += [
        ("Playback", "pbx-core/callback-number"),
        ("SayDigits", number),
        ("Read", "PBX_CB_KEY,pbx-core/callback-confirm,1,,1,6"),
        ("GotoIf", '$["1"="1"]?request'),
        ("UserEvent", f"{CALLBACK_EVENT}," + ",".join(f"{k}: {v}" for k, v in body)),
        ("Playback", "pbx-core/callback-booked"),
        ("Hangup", ""),
    ]
    return steps


def split_queue(queue: str) -> tuple[str, str]:
    """``acme-support`` -> ("acme", "support"): the tenant is the prefix before the first hyphen."""
    slug, _, short = queue.partition("-")
    return slug, short


def offer_variable(queue: str) -> str:
    """The global the callback worker keeps fresh: ``PBX_OFFER_{slug}_{queue}``."""
    slug, short = split_queue(queue)
    return f"PBX_OFFER_{slug}_{short}"


def ewt_variable(queue: str) -> str:
    """``PBX_EWT_{slug}_{queue}``: expected wait in seconds of a caller joining now."""
    slug, short = split_queue(queue)
    return f"PBX_EWT_{slug}_{short}"


def member_fields(queue: str, m: SimMember, ts: float) -> Headers:
    """QueueMember* events (Interface/MemberName), as in members.ami and answered.ami."""
    return [
        ("Privilege", "agent,all"),
        ("Timestamp", F.ts_text(ts)),
        ("Queue", queue),
        ("MemberName", m.name),
        ("Interface", m.interface),
        ("StateInterface", m.state_interface or m.interface),
        ("Membership", m.membership),
        ("Penalty", str(m.penalty)),
        ("CallsTaken", str(m.calls_taken)),
        ("LastCall", str(m.last_call)),
        ("LastPause", str(m.last_pause)),
        ("LoginTime", str(m.login_time)),
        ("InCall", "1" if m.in_call else "0"),
        ("Status", str(m.status)),
        ("Paused", "1" if m.paused else "0"),
        ("PausedReason", m.reason),
        ("Ringinuse", "1" if m.ringinuse else "0"),
        ("Wrapuptime", str(m.wrapup_s)),
    ]


def compile_filter(expr: str) -> tuple[bool, re.Pattern[str]] | None:
    """An AMI ``Filter`` (``!`` excludes) as (include, regex); None if it does not compile."""
    include = not expr.startswith("!")
    try:
        return include, re.compile(expr if include else expr[1:])
    except re.error:
        return None
