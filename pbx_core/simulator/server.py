"""The simulator's AMI server: a real TCP AMI endpoint over the simulated queue world.

Traffic (``pbx_core.simulator.traffic``) and tests both drive it through the world methods
(join, leave, add_member, arrive, ring, answer, ...; see ``world.py``). Tests can also make it
misbehave the ways a real network and a real Asterisk do: refuse a login, go silent on a
half-open socket, cut a frame in half, send garbage or a huge frame (``emit`` sends raw bytes,
unfiltered). Frame shapes (field names, order, reply texts) are copied from the recorded
Asterisk 22 streams in tests/fixtures/asterisk-22/.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..asterisk.files import Section
from ..config import AmiUrl
from . import frames as F
from .asterisk_config import AsteriskConfig
from .clock import SimClock
from .frames import Headers, encode
from .world import (
    QueueTruth,
    SimCaller,
    SimMember,
    SimQueue,
    SimRing,
    World,
    _local_parts,
    compile_filter,
)
from .world import (
    member_fields as _member_fields,
)

__all__ = [
    "BANNER",
    "AmiSession",
    "QueueTruth",
    "SimCaller",
    "SimMember",
    "SimQueue",
    "SimRing",
    "SimulatedAsterisk",
    "encode",
]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def _ts(ts: float | None = None) -> str:
    return f"{time.time() if ts is None else ts:.6f}"


# --------------------------------------------------------------------------- frame helpers
# Kept for tests that build frames by hand; the world builds its own (world.py, frames.py).


def member_fields(queue: str, m: SimMember, ts: float | None = None) -> Headers:
    return _member_fields(queue, m, time.time() if ts is None else ts)


def member_event(kind: str, queue: str, m: SimMember, ts: float | None = None) -> bytes:
    return encode([("Event", kind), *member_fields(queue, m, ts)])


def _caller_chan(c: SimCaller) -> F.Chan:
    return F.Chan(
        c.channel, c.uniqueid, c.uniqueid, "callers", "in", 3, 6, c.number, c.name, c.number, c.name
    )


def caller_join_event(queue: str, c: SimCaller, position: int, count: int) -> bytes:
    return encode(F.queue_caller_join(c.joined_at, _caller_chan(c), queue, position, count))


def caller_leave_event(queue: str, c: SimCaller, position: int, count: int, ts: float | None = None) -> bytes:
    return encode(F.queue_caller_leave(ts or time.time(), _caller_chan(c), queue, position, count))


def caller_abandon_event(queue: str, c: SimCaller, position: int, ts: float | None = None) -> bytes:
    now = ts or time.time()
    chan = _caller_chan(c)
    return encode(F.queue_caller_abandon(now, chan, queue, position, position, int(now - c.joined_at)))


def noise_event(n: int = 0, ts: float | None = None) -> bytes:
    return encode(F.varset(ts or time.time(), None, f"NOISE_{n}", ""))


# --------------------------------------------------------------------------- server


class AmiSession:
    def __init__(self, server: SimulatedAsterisk, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.writer = writer
        self.logged_in = False
        self.actions: list[dict[str, str]] = []
        self.filters: list[tuple[bool, re.Pattern[str]]] = []

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def reply(self, action: dict[str, str], response: str, *extra: tuple[str, str]) -> None:
        headers = [("Response", response)]
        if "ActionID" in action:
            headers.append(("ActionID", action["ActionID"]))
        self.send(encode([*headers, *extra]))

    def wants(self, text: str) -> bool:
        """Asterisk's Filter semantics: any include must match, no exclude may."""
        includes = [rx for inc, rx in self.filters if inc]
        if includes and not any(rx.search(text) for rx in includes):
            return False
        return not any(rx.search(text) for inc, rx in self.filters if not inc)

    def abort(self) -> None:
        transport = self.writer.transport
        transport.abort()


Handler = Callable[[AmiSession, dict[str, str]], None]


@dataclass
class CallbackPlan:
    """How a simulated callback call goes, per customer number (``callback_plans``)."""

    customer: str = "answer"  # the customer leg: answer | noanswer | busy | failed
    agent_answers: bool = True  # False: the agent leg rings out (OriginateResponse Failure)
    agent_ring_s: float = 1.0
    ring_s: float = 3.0  # the customer's phone rings this long before the outcome
    talk_s: float = 60.0


@dataclass
class SimCallbackCall:
    action_id: str
    interface: str
    context: str
    number: str
    variables: dict[str, str]
    plan: CallbackPlan
    started: float = 0.0
    leg1: F.Chan | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


_DIALSTATUS = {"answer": "ANSWER", "noanswer": "NOANSWER", "busy": "BUSY", "failed": "CHANUNAVAIL"}
_CAUSE = {"ANSWER": 16, "NOANSWER": 19, "BUSY": 17, "CHANUNAVAIL": 0}


class SimulatedAsterisk(World):
    """``async with SimulatedAsterisk() as ast: client = AmiClient(ast.url, ...)``.

    ``clock`` defaults to wall-clock time; pass ``SimClock.stepped(t0)`` for virtual time.
    """

    def __init__(
        self,
        *,
        username: str = "pbx",
        secret: str = "s3cret",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimClock | None = None,
        config_dir: Path | None = None,
    ) -> None:
        """``config_dir``: a directory playing /etc/asterisk. Its pjsip/queues/extensions/voicemail
        files are loaded at start and on ``module reload`` (AMI ``Command``/``Reload``)."""
        super().__init__(clock=clock)
        self.username = username
        self.secret = secret
        self.host = host
        self.sessions: list[AmiSession] = []
        self.logins = 0
        self.answer_pings = True
        self.allow_filter = True
        self.ignore: set[str] = set()  # action names never answered
        # manager.conf's ``read`` of the logged-in user: events of other classes (by their
        # Privilege header) are not delivered, as Asterisk does. None: every class.
        self.read_classes: set[str] | None = None
        self.handlers: dict[str, Handler] = {}  # action name (lowercase) -> override
        self.port = port
        self._server: asyncio.Server | None = None
        self._booted_at = time.time()
        self.config = AsteriskConfig(config_dir, on_queues=self._queues_loaded)
        self._config_queues: set[str] = set()
        # Callback originates (context ``{slug}-callback``): how each customer number's call goes,
        # and the calls in progress by their agent channel (for ``Status``/``Hangup``).
        self.callback_plans: dict[str, CallbackPlan] = {}
        self.default_callback_plan = CallbackPlan()
        self.callback_calls: dict[str, SimCallbackCall] = {}
        # Asterisk's database (AstDB), "/family/key" -> value: the callback dialplan's markers.
        self.astdb: dict[str, str] = {}

    @property
    def url(self) -> AmiUrl:
        return AmiUrl(self.username, self.secret, self.host, self.port)

    def wrong_url(self) -> AmiUrl:
        return AmiUrl(self.username, "wrong", self.host, self.port)

    @property
    def url_text(self) -> str:
        """The URL with its secret, for ``PBX_AMI_URL`` (``AmiUrl`` never prints the secret)."""
        return f"ami://{self.username}:{self.secret}@{self.host}:{self.port}"

    async def __aenter__(self) -> SimulatedAsterisk:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self.config.root is not None:
            self.config.load_all()
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for s in self.sessions:
            s.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def live(self) -> list[AmiSession]:
        return [s for s in self.sessions if s.logged_in and not s.writer.is_closing()]

    def emit(self, *frames: bytes) -> None:
        """Send event bytes to every logged-in session (raw: may be garbage or half a frame)."""
        for s in self.live:
            for f in frames:
                s.send(f)

    def drop(self) -> None:
        """Abort every connection (a network cut, an Asterisk restart)."""
        for s in self.live:
            s.abort()

    async def drain(self) -> None:
        """Wait until every client has taken what was sent (back-pressure for fast traffic)."""
        for s in self.live:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await s.writer.drain()

    def _deliver(self, data: bytes, event: str) -> None:
        if self.read_classes is not None and not _readable(data, self.read_classes):
            return
        text: str | None = None
        for s in self.live:
            if s.filters:
                if text is None:
                    text = data.decode("utf-8")
                if not s.wants(text):
                    continue
            s.send(data)

    # ----------------------------------------------------------------- AMI

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AmiSession(self, writer)
        self.sessions.append(session)
        writer.write(BANNER)
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action = _parse_action(raw)
                session.actions.append(action)
                if not self._handle(session, action):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _handle(self, s: AmiSession, a: dict[str, str]) -> bool:
        """Answer one action; False closes the connection."""
        name = a.get("Action", "").lower()
        if name in {n.lower() for n in self.ignore}:
            return True
        if name in self.handlers:
            self.handlers[name](s, a)
            return True
        if name == "login":
            if a.get("Username") == self.username and a.get("Secret") == self.secret:
                s.logged_in = True
                self.logins += 1
                s.reply(a, "Success", ("Message", "Authentication accepted"))
                self._welcome(s)
                return True
            s.reply(a, "Error", ("Message", "Authentication failed"))
            return False  # Asterisk hangs up after a failed login
        if not s.logged_in:
            s.reply(a, "Error", ("Message", "Authentication Required"))
            return True
        if name == "ping":
            if self.answer_pings:
                s.reply(a, "Success", ("Ping", "Pong"), ("Timestamp", _ts(self.now())))
        elif name == "logoff":
            s.reply(a, "Goodbye", ("Message", "Thanks for all the fish."))
            return False
        elif name == "filter":
            compiled = compile_filter(a.get("Filter", ""))
            if not self.allow_filter:
                s.reply(a, "Error", ("Message", "Permission denied"))
            elif a.get("Operation", "Add").lower() != "add" or compiled is None:
                s.reply(a, "Error", ("Message", "Filter Not Added"))
            else:
                s.filters.append(compiled)
                s.reply(a, "Success", ("Message", "Filter Added"))
        elif name == "originate":
            self._originate(s, a)
        elif name == "queuestatus":
            self._queue_status(s, a)
        elif name == "queuesummary":
            self._queue_summary(s, a)
        elif name in ("queueadd", "queuepause", "queueremove", "queuepenalty"):
            self._member_action(s, name, a)
        elif name == "command":
            self._command(s, a)
        elif name == "reload":
            self._reload_action(s, a)
        elif name == "status":
            self._status(s, a)
        elif name == "hangup":
            self._hangup_action(s, a)
        elif name == "setvar":
            self._setvar(s, a)
        elif name == "getvar":
            self._getvar(s, a)
        elif name == "dbget":
            self._dbget(s, a)
        else:
            s.reply(
                a,
                "Error",
                (
                    "Message",
                    f"Invalid/unknown command: {a.get('Action')}. "
                    "Use Action: ListCommands to show available commands.",
                ),
            )
        return True

    def _welcome(self, s: AmiSession) -> None:
        """What Asterisk 22 sends right after a successful login (see the fixtures)."""
        uptime = max(0, int(time.time() - self._booted_at))
        s.send(encode(F.fully_booted(uptime, uptime)))
        now = self.now()
        tv = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        peer = s.writer.get_extra_info("peername") or ("127.0.0.1", 0)
        local = f"IPV4/TCP/{self.host}/{self.port}"
        remote = f"IPV4/TCP/{peer[0]}/{peer[1]}"
        s.send(encode(F.successful_auth(now, self.username, f"0x{id(s):x}", local, remote, tv)))

    def _originate(self, s: AmiSession, a: dict[str, str]) -> None:
        """Originate a call. ``Variable: QNAME=<queue>`` (or ``Exten: <queue>``) puts the answered
        channel into that queue, as the recordings' dialplan does; ``PATIENCE=<s>`` sets how long
        the caller waits before hanging up when a driver (the traffic generator) is attached."""
        channel = a.get("Channel", "")
        if not channel:
            s.reply(a, "Error", ("Message", "Channel not specified"))
            return
        variables = dict(v.split("=", 1) for v in a.get("Variable", "").split(",") if "=" in v)
        variables = {k.lstrip("_"): v for k, v in variables.items()}
        if a.get("Context", "").endswith("-callback"):
            self._originate_callback(s, a, variables)
            return
        queue = variables.get("QNAME") or a.get("Exten", "")
        cid = a.get("CallerID", "")
        match = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', cid)
        name, number = (match.group(1), match.group(2)) if match else ("", cid.strip())
        async_ = a.get("Async", "").lower() in ("true", "yes", "1")
        s.reply(a, "Success", ("Message", "Originate successfully queued"))
        if queue not in self.queues:
            # Not a queue call (e.g. a callback leg): the channel comes up and the far end hangs up.
            uid = self._new_uid()
            chan = F.Chan(
                f"{channel}-{next(self._tag):08x};1",
                uid,
                uid,
                a.get("Context", ""),
                a.get("Exten", ""),
                1,
                6,
                number,
                name,
                number,
                name,
            )
            ev = [F.newchannel(self._stamp(), chan)]
            if async_:
                ev.append(
                    F.originate_response(
                        self._stamp(), a.get("ActionID", ""), "Success", chan, chan.context, chan.exten, 4
                    )
                )
            ev.append(F.hangup(self._stamp(), chan, 16))
            self._publish(*ev)
            return
        patience = variables.get("PATIENCE")
        patience_s = float(patience) if patience and patience.replace(".", "", 1).isdigit() else None
        caller = self.arrive(
            queue, number, name, patience_s=patience_s, originate_id=a.get("ActionID", "") if async_ else None
        )
        if self.driver is not None:
            self.driver.caller_joined(queue, caller, patience_s)

    def _getvar(self, s: AmiSession, a: dict[str, str]) -> None:
        """AMI ``Getvar`` of a global (no Channel), as manager.c answers it: Variable and Value."""
        variable = a.get("Variable", "").strip()
        if not variable:
            s.reply(a, "Error", ("Message", "No variable specified"))
            return
        if a.get("Channel", "").strip():
            s.reply(a, "Error", ("Message", "No such channel"))  # channel variables are not kept
            return
        match = re.fullmatch(r"GLOBAL\((.+)\)", variable)
        name = match.group(1) if match else variable
        s.reply(a, "Success", ("Variable", variable), ("Value", self.globals.get(name, "")))

    def db_put(self, family: str, key: str, value: str) -> None:
        """``Set(DB(family/key)=value)`` in the dialplan (func_db: the first '/' ends the family)."""
        self.astdb[f"/{family}/{key}"] = value

    def db_deltree(self, family: str, keytree: str = "") -> None:
        """``DBdeltree(family/keytree)``."""
        prefix = f"/{family}/{keytree}/" if keytree else f"/{family}/"
        for path in [p for p in self.astdb if p.startswith(prefix)]:
            del self.astdb[path]

    def _dbget(self, s: AmiSession, a: dict[str, str]) -> None:
        """AMI ``DBGet`` as main/db.c answers it: an error when the entry is missing, else a
        one-item list (``DBGetResponse`` with Family, Key, Val, then ``DBGetComplete``)."""
        family, key = a.get("Family", ""), a.get("Key", "")
        if not family:
            s.reply(a, "Error", ("Message", "No family specified."))
            return
        if not key:
            s.reply(a, "Error", ("Message", "No key specified."))
            return
        value = self.astdb.get(f"/{family}/{key}")
        if value is None:
            s.reply(a, "Error", ("Message", "Database entry not found"))
            return
        aid = ("ActionID", a.get("ActionID", ""))
        s.reply(a, "Success", ("EventList", "start"), ("Message", "Result will follow"))
        s.send(encode([("Event", "DBGetResponse"), ("Family", family), ("Key", key), ("Val", value), aid]))
        s.send(encode([("Event", "DBGetComplete"), aid, ("EventList", "Complete"), ("ListItems", "1")]))

    def _setvar(self, s: AmiSession, a: dict[str, str]) -> None:
        """AMI ``Setvar`` as manager.c answers it. Without a Channel the variable is global (the
        callback worker's ``PBX_EWT_*``/``PBX_OFFER_*``); ``GLOBAL(NAME)`` means the same."""
        variable = a.get("Variable", "").strip()
        if not variable:
            s.reply(a, "Error", ("Message", "No variable specified"))
            return
        channel = a.get("Channel", "").strip()
        chan = self.find_channel(channel) if channel else None
        if channel and chan is None:
            s.reply(a, "Error", ("Message", "No such channel"))
            return
        # The reply first: Asterisk's VarSet event goes out through stasis, after the ack.
        s.reply(a, "Success", ("Message", "Variable Set"))
        match = re.fullmatch(r"GLOBAL\((.+)\)", variable)
        value = a.get("Value", "")
        if chan is None or match is not None:
            self.set_global(match.group(1) if match else variable, value)
        elif self.noise:
            self._publish(F.varset(self._stamp(), chan, variable, value))

    # ----------------------------------------------------------------- callback originates

    def _originate_callback(self, s: AmiSession, a: dict[str, str], variables: dict[str, str]) -> None:
        """A callback (Originate into ``{slug}-callback``): agent first, then the customer, as the
        rendered dialplan runs it. The call plays out in simulated time in its own task."""
        iface = a.get("Channel", "")
        if _local_parts(iface) is None:
            s.reply(a, "Error", ("Message", "Originate failed"))
            return
        s.reply(a, "Success", ("Message", "Originate successfully queued"))
        number = variables.get("PBX_CALLBACK_NUMBER", "")
        call = SimCallbackCall(
            action_id=a.get("ActionID", ""),
            interface=iface,
            context=a.get("Context", ""),
            number=number,
            variables=variables,
            plan=self.callback_plans.get(number, self.default_callback_plan),
            started=self.now(),
        )
        call.task = asyncio.create_task(self._callback_call(call), name=f"sim-callback {call.action_id}")

    def _callback_members(self, iface: str) -> list[tuple[str, SimMember]]:
        return [(q.name, q.members[iface]) for q in self.queues.values() if iface in q.members]

    def _agent_busy(self, iface: str) -> bool:
        """In a call or being rung (a queue call, or another callback)."""
        if any(m.in_call for _, m in self._callback_members(iface)):
            return True
        if any(r.member.interface == iface for r in self.rings.values()):
            return True
        return any(c.interface == iface for c in self.callback_calls.values())

    def _agent_status(self, iface: str, status: int, in_call: bool) -> None:
        # The member's device state as app_queue reports it in every queue it belongs to. InCall
        # stays set for the whole callback so queue calls pass the agent by (the traffic model).
        for queue, m in self._callback_members(iface):
            self.set_member_status(queue, m, status, in_call)

    async def _until(self, t: float) -> None:
        """Wait for simulated time ``t`` (stepped clocks are moved on by the test)."""
        while self.clock.now() < t:  # noqa: ASYNC110 - SimClock has no change signal to wait on
            await asyncio.sleep(max(0.002, min(0.05, self.clock.real_delay(t))))

    async def _callback_call(self, call: SimCallbackCall) -> None:
        plan = call.plan
        exten, context = _local_parts(call.interface) or ("", "")
        slug = call.context.removesuffix("-callback")
        tag = next(self._tag)
        uid1 = call.action_id or self._new_uid()
        name1 = f"Local/{exten}@{context}-{tag:08x};1"
        cid = (call.number, "Callback")
        call.leg1 = leg1 = F.Chan(name1, uid1, uid1, call.context, "s", 1, 0, *cid, *cid)
        leg2 = F.Chan(name1[:-1] + "2", self._new_uid(), uid1, context, exten, 1, 4, *cid, *cid)
        busy = self._agent_busy(call.interface)
        self.callback_calls[name1] = call
        customer: F.Chan | None = None
        # The dialplan's durable marker (pbx-core's {slug}-callback context): "started" once the
        # agent answered, before the customer is dialled; the customer leg's DIALSTATUS after.
        mark = re.sub(r"[^0-9A-Za-z/_.-]", "", call.variables.get("PBX_CALLBACK_MARK", ""))
        dialstatus = ""  # ${DIALSTATUS}: empty until Dial() has run
        answered = result_sent = False
        try:
            self._publish(F.newchannel(self._stamp(), leg1), F.newchannel(self._stamp(), leg2))
            if not busy and plan.agent_answers:
                self._agent_status(call.interface, 6, True)  # ringing
            await self._until(self.now() + plan.agent_ring_s)
            if busy or not plan.agent_answers:
                del self.callback_calls[name1]
                self._publish(
                    F.hangup(self._stamp(), leg2, 17 if busy else 19),
                    F.hangup(self._stamp(), leg1, 17 if busy else 19),
                    F.originate_response(
                        self._stamp(), call.action_id, "Failure", leg1, call.context, "s", 5 if busy else 3
                    ),
                )
                if not busy:
                    self._agent_status(call.interface, 1, False)
                return
            leg1.state = leg2.state = 6
            answered = True
            if mark:
                self.db_put("pbxcb", mark, "started")
                for days_ago in (3, 4):  # the dialplan's housekeeping: markers of 3-4 days ago go
                    day = datetime.fromtimestamp(self.now() - days_ago * 86400, UTC).strftime("%Y%m%d")
                    self.db_deltree("pbxcb", day)
            self._agent_status(call.interface, 2, True)
            ev: list[Headers] = [F.newstate(self._stamp(), leg2), F.newstate(self._stamp(), leg1)]
            ok = F.originate_response(self._stamp(), call.action_id, "Success", leg1, call.context, "s", 4)
            ev.append(ok)
            if self.noise:
                for var, value in call.variables.items():
                    ev.append(F.varset(self._stamp(), leg1, var, value))
                ev.append(F.newexten(self._stamp(), leg1, "Playback", "pbx/callback-announce"))
            leg1.priority = 3
            ev.append(F.newexten(self._stamp(), leg1, "Dial", f"Local/{call.number}@{slug}-outbound,30"))
            self._publish(*ev)
            tag2 = next(self._tag)
            customer = F.Chan(
                f"Local/{call.number}@{slug}-outbound-{tag2:08x};1", self._new_uid(), uid1,
                f"{slug}-outbound", call.number, 1, 0, call.number, "", *cid,
            )
            self._publish(
                F.newchannel(self._stamp(), customer),
                F.dial_begin(self._stamp(), leg1, customer, f"Local/{call.number}@{slug}-outbound"),
            )
            dialstatus = "CANCEL"  # hung up while the customer's phone rings (the h extension)
            await self._until(self.now() + plan.ring_s)
            dialstatus = _DIALSTATUS[plan.customer]
            self._publish(F.dial_end(self._stamp(), leg1, customer, dialstatus))
            if dialstatus == "ANSWER":
                customer.state = 6
                self._publish(F.newstate(self._stamp(), customer))
                await self._until(self.now() + plan.talk_s)
            self._publish(F.hangup(self._stamp(), customer, _CAUSE[dialstatus]))
            customer = None
            leg1.priority = 4
            result_sent = True
            self._callback_result(call, leg1, mark, dialstatus)
        finally:
            # Also when hung up over AMI (the task is cancelled): the channels go, the agent is free;
            # an agent leg that had answered runs the h extension, which sends the result.
            if self.callback_calls.pop(name1, None) is not None:
                ev = [F.hangup(self._stamp(), customer, 16)] if customer is not None else []
                self._publish(*ev, F.hangup(self._stamp(), leg2, 16), F.hangup(self._stamp(), leg1, 16))
                if answered and not result_sent:
                    self._callback_result(call, leg1, mark, dialstatus)
                self._agent_status(call.interface, 1, False)

    def _callback_result(self, call: SimCallbackCall, leg1: F.Chan, mark: str, dialstatus: str) -> None:
        """The marker, then ``UserEvent(PbxCallbackResult,...)``: exactly one per attempt."""
        if mark:
            self.db_put("pbxcb", mark, dialstatus or "NONE")
        body = [
            ("CallbackId", call.variables.get("PBX_CALLBACK_ID", "")),
            ("OriginateId", call.variables.get("PBX_ORIGINATE_ID", "")),
            ("DialStatus", dialstatus),
        ]
        self._publish(F.user_event(self._stamp(), leg1, "PbxCallbackResult", body))

    def _status(self, s: AmiSession, a: dict[str, str]) -> None:
        """AMI ``Status``: one ``Status`` event per channel, with ``Variable: NAME=value`` for the
        requested ``Variables`` the channel has. Lists the callback calls' agent channels."""
        wanted = [v.strip() for v in a.get("Variables", "").split(",") if v.strip()]
        aid = ("ActionID", a.get("ActionID", ""))
        s.reply(a, "Success", ("EventList", "start"), ("Message", "Channel status will follow"))
        now = self.now()
        calls = [c for c in self.callback_calls.values() if c.leg1 is not None]
        for c in calls:
            assert c.leg1 is not None
            headers: Headers = [("Event", "Status"), ("Privilege", "Call"), *F.chan_fields(c.leg1)]
            headers += [("Type", "Local"), ("DNID", ""), ("EffectiveConnectedLineNum", c.number)]
            headers += [("EffectiveConnectedLineName", "Callback"), ("TimeToHangup", "0"), ("BridgeID", "")]
            headers += [("Application", "Dial"), ("Data", f"Local/{c.number}")]
            headers += [("Seconds", str(int(now - c.started)))]
            headers += [("Variable", f"{v}={c.variables[v]}") for v in wanted if v in c.variables]
            s.send(encode([*headers, aid]))
        s.send(
            encode(
                [
                    ("Event", "StatusComplete"),
                    aid,
                    ("EventList", "Complete"),
                    ("ListItems", str(len(calls))),
                    ("Items", str(len(calls))),
                ]
            )
        )

    def _hangup_action(self, s: AmiSession, a: dict[str, str]) -> None:
        """AMI ``Hangup`` of a callback call's channel (exact name)."""
        call = self.callback_calls.get(a.get("Channel", ""))
        if call is None or call.task is None:
            s.reply(a, "Error", ("Message", "No such channel"))
            return
        s.reply(a, "Success", ("Message", "Channel Hungup"))
        call.task.cancel()

    def _selected(self, a: dict[str, str]) -> list[SimQueue]:
        wanted = a.get("Queue")
        return [q for q in self.queues.values() if not q.dead and (not wanted or q.name == wanted)]

    def _queue_status(self, s: AmiSession, a: dict[str, str]) -> None:
        aid = ("ActionID", a.get("ActionID", ""))
        s.reply(a, "Success", ("EventList", "start"), ("Message", "Queue status will follow"))
        items = 0
        now = self.now()
        for q in self._selected(a):
            t = self.truth_of(q.name)
            hold, talk = _means(t)
            s.send(
                encode(
                    [
                        ("Event", "QueueParams"),
                        ("Queue", q.name),
                        ("Max", "0"),
                        ("Strategy", q.strategy),
                        ("Calls", str(len(q.callers))),
                        ("Holdtime", str(hold)),
                        ("TalkTime", str(talk)),
                        ("Completed", str(t.completed)),
                        ("Abandoned", str(t.abandoned)),
                        ("ServiceLevel", str(q.service_level)),
                        ("ServicelevelPerf", "0.0"),
                        ("ServicelevelPerf2", "0.0"),
                        ("Weight", "0"),
                        aid,
                    ]
                )
            )
            items += 1
            for m in q.members.values():
                s.send(
                    encode(
                        [
                            ("Event", "QueueMember"),
                            ("Queue", q.name),
                            ("Name", m.name),
                            ("Location", m.interface),
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
                            ("Wrapuptime", str(m.wrapup_s)),
                            aid,
                        ]
                    )
                )
                items += 1
            for pos, c in enumerate(q.callers, 1):
                wait_s = int(now - c.joined_at)
                entry = F.queue_entry(q.name, pos, c.channel, c.uniqueid, c.number, c.name, wait_s, aid[1])
                s.send(encode(entry))
                items += 1
        s.send(
            encode(
                [("Event", "QueueStatusComplete"), aid, ("EventList", "Complete"), ("ListItems", str(items))]
            )
        )

    def _queue_summary(self, s: AmiSession, a: dict[str, str]) -> None:
        aid = ("ActionID", a.get("ActionID", ""))
        s.reply(a, "Success", ("EventList", "start"), ("Message", "Queue summary will follow"))
        queues = self._selected(a)
        now = self.now()
        for q in queues:
            available = sum(1 for m in q.members.values() if not m.paused and m.status == 1)
            longest = max((int(now - c.joined_at) for c in q.callers), default=0)
            hold, talk = _means(self.truth_of(q.name))
            s.send(
                encode(
                    [
                        ("Event", "QueueSummary"),
                        ("Queue", q.name),
                        ("LoggedIn", str(len(q.members))),
                        ("Available", str(available)),
                        ("Callers", str(len(q.callers))),
                        ("HoldTime", str(hold)),
                        ("TalkTime", str(talk)),
                        ("LongestHoldTime", str(longest)),
                        aid,
                    ]
                )
            )
        s.send(
            encode(
                [
                    ("Event", "QueueSummaryComplete"),
                    aid,
                    ("EventList", "Complete"),
                    ("ListItems", str(len(queues))),
                ]
            )
        )

    def _member_action(self, s: AmiSession, name: str, a: dict[str, str]) -> None:
        q = self.queues.get(a.get("Queue", ""))
        if q is not None and q.dead:
            q = None  # unlinked from app_queue's container: not found by name
        iface = a.get("Interface", "")
        if name == "queueadd":
            if q is None:
                s.reply(a, "Error", ("Message", "Unable to add interface to queue: No such queue"))
                return
            if iface in q.members:
                s.reply(a, "Error", ("Message", "Unable to add interface: Already there"))
                return
            s.reply(a, "Success", ("Message", "Added interface to queue"))
            self.add_member(
                q.name,
                SimMember(
                    iface,
                    a.get("MemberName", iface),
                    a.get("StateInterface", ""),
                    penalty=int(a.get("Penalty", "0")),
                ),
            )
        elif name == "queuepenalty":
            penalty = a.get("Penalty", "")
            if q is None or iface not in q.members or not penalty.isdigit():
                s.reply(a, "Error", ("Message", "Invalid interface, queuename or penalty"))
                return
            s.reply(a, "Success", ("Message", "Interface penalty set successfully"))
            m = q.members[iface]
            m.penalty = int(penalty)
            self._publish(self.member_event("QueueMemberPenalty", q.name, m))
        elif name == "queueremove" and q is None:
            s.reply(a, "Error", ("Message", "Unable to remove interface from queue: No such queue"))
        elif q is None or iface not in q.members:
            s.reply(
                a,
                "Error",
                (
                    "Message",
                    "Interface not found"
                    if name == "queuepause"
                    else "Unable to remove interface: Not there",
                ),
            )
        elif name == "queuepause":
            paused = a.get("Paused", "").lower() in ("true", "1", "yes")
            s.reply(a, "Success", ("Message", f"Interface {'paused' if paused else 'unpaused'} successfully"))
            self.pause_member(q.name, iface, paused, a.get("Reason", ""))
        else:
            s.reply(a, "Success", ("Message", "Removed interface from queue"))
            self.remove_member(q.name, iface)


    # ----------------------------------------------------------------- configuration

    def fail_next_reload(self, module: str = "*") -> None:
        """Fault hook: the next reload of ``module`` (``*``: any) fails and loads nothing."""
        self.config.fail_next_reload(module)

    def _queues_loaded(self, sections: dict[str, Section]) -> None:
        """app_queue loaded queues.conf: its queues exist (members and callers of a queue that
        stays are kept, as Asterisk keeps dynamic members). A queue gone from the file is gone at
        once, with no event (apps/app_queue.c ``kill_if_unfound`` unlinks it): no QueueStatus,
        QueueSummary, ``queue show`` or QueueAdd finds it. Callers still in it finish their
        calls (the dead queue lives on for them); it is forgotten when it has none."""
        for name, sec in sections.items():
            q = self.queue(name)
            q.dead = False
            q.strategy = sec.get("strategy", "ringall") or "ringall"
            sl = sec.get("servicelevel", "0") or "0"
            q.service_level = int(sl) if sl.isdigit() else 0
            timeout = sec.get("timeout", "") or ""
            if timeout.isdigit():
                q.ring_timeout_s = int(timeout)
            wrapup = sec.get("wrapuptime", "") or ""
            if wrapup.isdigit():
                q.wrapup_s = int(wrapup)
        for name in self._config_queues - set(sections):
            if name not in self.queues:
                continue
            if self.queues[name].callers:
                self.queues[name].dead = True
            else:
                del self.queues[name]
        self._config_queues = set(sections)

    def _reload_module(self, module: str) -> str:
        """``module reload X`` (CLI) or the ``Reload`` action: the outcome line, and the ``Reload``
        event main/loader.c publishes after every ast_module_reload (class ``system``)."""
        outcome = self.config.reload(module)
        self._publish(module_reloaded(self._stamp(), module, reload_status(outcome)))
        return outcome

    def _command(self, s: AmiSession, a: dict[str, str]) -> None:
        """The AMI ``Command`` action, shaped as Asterisk 22 answers it: ``Response: Success``
        (``Error`` when the CLI command failed), ``Message: Command output follows``, then one
        ``Output:`` header per line."""
        ok, lines = self._cli(a.get("Command", "").strip())
        s.reply(
            a,
            "Success" if ok else "Error",
            ("Message", "Command output follows"),
            *[("Output", line) for line in lines],
        )

    def _cli(self, command: str) -> tuple[bool, list[str]]:
        words = command.split()
        cfg = self.config
        if words[:2] == ["module", "reload"] and len(words) > 2:
            return True, [self._reload_module(m) for m in words[2:]]
        if words == ["dialplan", "reload"]:
            cfg.reload("pbx_config.so")
            return True, ["Dialplan reloaded."]  # whatever happened, as pbx_config prints it
        if words[:3] == ["pjsip", "show", "endpoints"]:
            like = words[4] if len(words) == 5 and words[3] == "like" else None
            return True, cfg.pjsip_show_endpoints(like)
        if words[:3] == ["pjsip", "show", "endpoint"] and len(words) == 4:
            return True, cfg.pjsip_show_endpoint(words[3])
        if words[:2] == ["queue", "show"] and len(words) <= 3:
            return True, self._queue_show(words[2] if len(words) == 3 else None)
        if words[:2] == ["dialplan", "show"] and len(words) <= 3:
            return cfg.dialplan_show(words[2] if len(words) == 3 else None)
        if words == ["core", "show", "version"]:
            return True, ["Asterisk 22.0.0 (pbx-core simulator)"]
        return False, [
            f"No such command '{command}' (type 'core show help {command}' for other possible commands)"
        ]

    def _queue_show(self, name: str | None) -> list[str]:
        live = {n: q for n, q in self.queues.items() if not q.dead}
        if name is not None and name not in live:
            return [f"No such queue: {name}."]
        queues = [live[name]] if name else [live[n] for n in sorted(live)]
        if not queues:
            return ["No queues."]
        now = self.now()
        out: list[str] = []
        for q in queues:
            t = self.truth_of(q.name)
            hold, talk = _means(t)
            out.append(
                f"{q.name} has {len(q.callers)} calls (max unlimited) in '{q.strategy}' strategy "
                f"({hold}s holdtime, {talk}s talktime), W:0, C:{t.completed}, A:{t.abandoned}, "
                f"SL:0.0%, SL2:0.0% within {q.service_level}s"
            )
            if q.members:
                out.append("   Members: ")
                for m in q.members.values():
                    state = m.state_interface or m.interface
                    status = "In use" if m.in_call else "Not in use"
                    paused = (f" (paused:{m.reason})" if m.reason else " (paused)") if m.paused else ""
                    out.append(
                        f"      {m.name} ({m.interface} from {state}) (ringinuse enabled) ({m.membership})"
                        f"{paused} ({status}) has taken {m.calls_taken or 'no'} calls"
                        f"{'' if m.calls_taken else ' yet'} (login was {int(now - m.login_time)} secs ago)"
                    )
            else:
                out.append("   No Members")
            if q.callers:
                out.append("   Callers: ")
                for pos, c in enumerate(q.callers, 1):
                    waited = int(now - c.joined_at)
                    out.append(f"      {pos}. {c.channel} (wait: {waited // 60}:{waited % 60:02d}, prio: 0)")
            else:
                out.append("   No Callers")
            out.append("")
        return out

    def _reload_action(self, s: AmiSession, a: dict[str, str]) -> None:
        """The AMI ``Reload`` action for one module (without Module: every simulated module)."""
        module = a.get("Module", "").strip()
        if module:
            outcomes = [self._reload_module(module)]
        else:  # ast_module_reload(NULL): every module, one event for "All"
            outcomes = [self.config.reload(m) for m in _RELOADABLE]
            worst = max(reload_status(o) for o in outcomes)
            self._publish(module_reloaded(self._stamp(), "All", worst))
        if any(o.startswith("No such module") for o in outcomes):
            s.reply(a, "Error", ("Message", "No such module"))
        elif all(o.endswith("reloaded successfully.") for o in outcomes):
            s.reply(a, "Success", ("Message", "Module Reloaded"))
        else:
            s.reply(a, "Error", ("Message", "An unknown error occurred"))


_RELOADABLE = ("res_pjsip.so", "app_voicemail.so", "app_queue.so", "pbx_config.so")


def _readable(data: bytes, classes: set[str]) -> bool:
    """Does a user with these read classes get this event (its ``Privilege: a,b,all`` header)?"""
    start = data.find(b"\r\nPrivilege: ")
    if start < 0:
        return True
    end = data.find(b"\r\n", start + 2)
    granted = data[start + len(b"\r\nPrivilege: ") : end].decode().split(",")
    return any(c in classes for c in granted if c != "all")


def reload_status(outcome: str) -> int:
    """The CLI's outcome line as the ``Reload`` event's Status (enum ast_module_reload_result):
    0 success, 2 module not found, 3 error."""
    if outcome.endswith("reloaded successfully."):
        return 0
    return 2 if outcome.startswith("No such module") else 3


def module_reloaded(ts: float, module: str, status: int) -> Headers:
    """main/loader.c ``publish_reload_message``: Module as it was asked for (``All`` for all)."""
    return [("Event", "Reload"), ("Privilege", "system,all"), ("Timestamp", F.ts_text(ts)),
            ("Module", module), ("Status", str(status))]  # fmt: skip


def _means(t: QueueTruth) -> tuple[int, int]:
    """Mean hold and talk seconds, as QueueParams/QueueSummary report them."""
    return (
        t.answered_wait_s // t.answered if t.answered else 0,
        t.talk_s // t.completed if t.completed else 0,
    )


def _parse_action(raw: bytes) -> dict[str, str]:
    action: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            # Several Variable headers are allowed (Originate): keep them all.
            action[key] = f"{action[key]},{value}" if key == "Variable" and key in action else value
    return action
