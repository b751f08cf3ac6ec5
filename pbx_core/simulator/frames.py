"""AMI event shapes, copied field for field (names and order) from the recorded Asterisk 22 streams.

Every builder returns a header list; :func:`encode` turns it into wire bytes. The unit tests
compare each shape with the fixtures, so a change here that drifts from Asterisk fails loudly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Headers = list[tuple[str, str]]

_STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
_CAUSE_TXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "No user responding"}
CALLING_PRES = "0 (Presentation Allowed, Not Screened)"


def encode(headers: Iterable[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("utf-8") + b"\r\n"


def ts_text(ts: float) -> str:
    return f"{ts:.6f}"


def _cid(value: str) -> str:
    return value or "<unknown>"


# ast_escape_c (Asterisk's main/utils.c): each of these becomes a backslash and a letter.
_C_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "?": "\\?",
}


def escape_c(value: str) -> str:
    """What Asterisk 22 does to a caller or connected-line name in every event it builds from a
    channel snapshot (``ast_manager_build_channel_state_string``): ``Ruud van \\'t Hof``."""
    return "".join(_C_ESCAPES.get(ch, ch) for ch in value)


@dataclass(slots=True)
class Chan:
    """One side of a Local channel pair, as its channel headers describe it."""

    channel: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: int = 0
    number: str = ""
    name: str = ""
    connected_number: str = ""
    connected_name: str = ""


def chan_fields(c: Chan, prefix: str = "") -> Headers:
    p = prefix
    return [
        (f"{p}Channel", c.channel),
        (f"{p}ChannelState", str(c.state)),
        (f"{p}ChannelStateDesc", _STATE_DESC.get(c.state, "Unknown")),
        (f"{p}CallerIDNum", _cid(c.number)),
        (f"{p}CallerIDName", _cid(escape_c(c.name))),  # names escaped, numbers not
        (f"{p}ConnectedLineNum", _cid(c.connected_number)),
        (f"{p}ConnectedLineName", _cid(escape_c(c.connected_name))),
        (f"{p}Language", "en"),
        (f"{p}AccountCode", ""),
        (f"{p}Context", c.context),
        (f"{p}Exten", c.exten),
        (f"{p}Priority", str(c.priority)),
        (f"{p}Uniqueid", c.uniqueid),
        (f"{p}Linkedid", c.linkedid),
    ]


def _head(event: str, privilege: str, ts: float) -> Headers:
    return [("Event", event), ("Privilege", privilege), ("Timestamp", ts_text(ts))]


# --------------------------------------------------------------------------- session


def fully_booted(uptime: int, last_reload: int) -> Headers:
    return [
        ("Event", "FullyBooted"),
        ("Privilege", "system,all"),
        ("Uptime", str(uptime)),
        ("LastReload", str(last_reload)),
        ("Status", "Fully Booted"),
    ]


def successful_auth(ts: float, account: str, session_id: str, local: str, remote: str, tv: str) -> Headers:
    return [
        *_head("SuccessfulAuth", "security,all", ts),
        ("EventTV", tv),
        ("Severity", "Informational"),
        ("Service", "AMI"),
        ("EventVersion", "1"),
        ("AccountID", account),
        ("SessionID", session_id),
        ("LocalAddress", local),
        ("RemoteAddress", remote),
        ("UsingPassword", "0"),
        ("SessionTV", tv),
    ]


# --------------------------------------------------------------------------- channel noise


def newchannel(ts: float, c: Chan) -> Headers:
    return [*_head("Newchannel", "call,all", ts), *chan_fields(c)]


def newstate(ts: float, c: Chan) -> Headers:
    return [*_head("Newstate", "call,all", ts), *chan_fields(c)]


def newexten(ts: float, c: Chan, application: str, app_data: str) -> Headers:
    return [
        *_head("Newexten", "dialplan,all", ts),
        *chan_fields(c),
        ("Extension", c.exten),
        ("Application", application),
        ("AppData", app_data),
    ]


def varset(ts: float, c: Chan | None, variable: str, value: str) -> Headers:
    if c is None:  # a global variable
        return [
            *_head("VarSet", "dialplan,all", ts),
            ("Channel", "none"),
            ("Uniqueid", "none"),
            ("Variable", variable),
            ("Value", value),
        ]
    return [*_head("VarSet", "dialplan,all", ts), *chan_fields(c), ("Variable", variable), ("Value", value)]


def newcallerid(ts: float, c: Chan) -> Headers:
    return [*_head("NewCallerid", "call,all", ts), *chan_fields(c), ("CID-CallingPres", CALLING_PRES)]


def newconnectedline(ts: float, c: Chan) -> Headers:
    return [*_head("NewConnectedLine", "call,all", ts), *chan_fields(c)]


def local_bridge(ts: float, one: Chan, two: Chan) -> Headers:
    return [
        *_head("LocalBridge", "call,all", ts),
        *chan_fields(one, "LocalOne"),
        *chan_fields(two, "LocalTwo"),
        ("Context", two.context),
        ("Exten", two.exten),
        ("LocalOptimization", "Yes"),
    ]


def dial_begin(ts: float, caller: Chan | None, dest: Chan, dial_string: str) -> Headers:
    own = chan_fields(caller) if caller is not None else []
    return [
        *_head("DialBegin", "call,all", ts),
        *own,
        *chan_fields(dest, "Dest"),
        ("DialString", dial_string),
    ]


def dial_end(ts: float, caller: Chan | None, dest: Chan, status: str) -> Headers:
    own = chan_fields(caller) if caller is not None else []
    return [*_head("DialEnd", "call,all", ts), *own, *chan_fields(dest, "Dest"), ("DialStatus", status)]


def device_state(ts: float, device: str, state: str) -> Headers:
    return [*_head("DeviceStateChange", "call,all", ts), ("Device", device), ("State", state)]


def soft_hangup_request(ts: float, c: Chan, cause: int = 16) -> Headers:
    return [*_head("SoftHangupRequest", "call,all", ts), *chan_fields(c), ("Cause", str(cause))]


def hangup_request(ts: float, c: Chan, cause: int = 16) -> Headers:
    return [*_head("HangupRequest", "call,all", ts), *chan_fields(c), ("Cause", str(cause))]


def hangup(ts: float, c: Chan, cause: int = 16) -> Headers:
    return [
        *_head("Hangup", "call,all", ts),
        *chan_fields(c),
        ("Cause", str(cause)),
        ("Cause-txt", _CAUSE_TXT.get(cause, "Unknown")),
    ]


def _bridge(event: str, ts: float, bridge_id: str, channels: int) -> Headers:
    return [
        *_head(event, "call,all", ts),
        ("BridgeUniqueid", bridge_id),
        ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", "<unknown>"),
        ("BridgeName", "<unknown>"),
        ("BridgeNumChannels", str(channels)),
        ("BridgeVideoSourceMode", "none"),
    ]


def bridge_create(ts: float, bridge_id: str) -> Headers:
    return _bridge("BridgeCreate", ts, bridge_id, 0)


def bridge_destroy(ts: float, bridge_id: str) -> Headers:
    return _bridge("BridgeDestroy", ts, bridge_id, 0)


def bridge_enter(ts: float, bridge_id: str, channels: int, c: Chan) -> Headers:
    return [*_bridge("BridgeEnter", ts, bridge_id, channels), *chan_fields(c)]


def bridge_leave(ts: float, bridge_id: str, channels: int, c: Chan) -> Headers:
    return [*_bridge("BridgeLeave", ts, bridge_id, channels), *chan_fields(c)]


def originate_response(
    ts: float, action_id: str, response: str, c: Chan, context: str, exten: str, reason: int
) -> Headers:
    out = _head("OriginateResponse", "call,all", ts)
    if action_id:
        out.append(("ActionID", action_id))
    return [
        *out,
        ("Response", response),
        ("Channel", c.channel),
        ("Context", context),
        ("Exten", exten),
        ("Reason", str(reason)),
        ("Uniqueid", c.uniqueid),
        ("CallerIDNum", _cid(c.number)),
        ("CallerIDName", _cid(c.name)),  # raw: manager.c prints the name as it is here
    ]


# --------------------------------------------------------------------------- queue events


def queue_entry(
    queue: str,
    position: int,
    channel: str,
    uniqueid: str,
    number: str,
    name: str,
    wait_s: int,
    action_id: str,
) -> Headers:
    """One caller in a QueueStatus reply. app_queue prints the caller ID raw (not escaped) and
    "unknown" (no angle brackets) when there is none."""
    return [
        ("Event", "QueueEntry"),
        ("Queue", queue),
        ("Position", str(position)),
        ("Channel", channel),
        ("Uniqueid", uniqueid),
        ("CallerIDNum", number or "unknown"),
        ("CallerIDName", name or "unknown"),
        ("ConnectedLineNum", number or "unknown"),
        ("ConnectedLineName", name or "unknown"),
        ("Wait", str(wait_s)),
        ("Priority", "0"),
        ("ActionID", action_id),
    ]


def queue_caller_join(ts: float, c: Chan, queue: str, position: int, count: int) -> Headers:
    return [
        *_head("QueueCallerJoin", "agent,all", ts),
        *chan_fields(c),
        ("Queue", queue),
        ("Position", str(position)),
        ("Count", str(count)),
    ]


def queue_caller_leave(ts: float, c: Chan, queue: str, position: int, count: int) -> Headers:
    return [
        *_head("QueueCallerLeave", "agent,all", ts),
        *chan_fields(c),
        ("Queue", queue),
        ("Position", str(position)),
        ("Count", str(count)),
    ]


def queue_caller_abandon(
    ts: float, c: Chan, queue: str, position: int, original_position: int, hold_s: int
) -> Headers:
    return [
        *_head("QueueCallerAbandon", "agent,all", ts),
        *chan_fields(c),
        ("Queue", queue),
        ("Position", str(position)),
        ("OriginalPosition", str(original_position)),
        ("HoldTime", str(hold_s)),
    ]


def _agent(event: str, ts: float, caller: Chan, dest: Chan, queue: str, iface: str, member: str) -> Headers:
    return [
        *_head(event, "agent,all", ts),
        *chan_fields(caller),
        *chan_fields(dest, "Dest"),
        ("Queue", queue),
        ("Interface", iface),
        ("MemberName", member),
    ]


def agent_called(ts: float, caller: Chan, dest: Chan, queue: str, iface: str, member: str) -> Headers:
    return _agent("AgentCalled", ts, caller, dest, queue, iface, member)


def agent_dump(ts: float, caller: Chan, dest: Chan, queue: str, iface: str, member: str) -> Headers:
    # Not in the recordings; Asterisk documents it with AgentCalled's fields.
    return _agent("AgentDump", ts, caller, dest, queue, iface, member)


def agent_ring_no_answer(
    ts: float, caller: Chan, dest: Chan, queue: str, iface: str, member: str, ring_ms: int
) -> Headers:
    return [*_agent("AgentRingNoAnswer", ts, caller, dest, queue, iface, member), ("RingTime", str(ring_ms))]


def agent_connect(
    ts: float, caller: Chan, dest: Chan, queue: str, iface: str, member: str, hold_s: int, ring_s: int
) -> Headers:
    return [
        *_agent("AgentConnect", ts, caller, dest, queue, iface, member),
        ("HoldTime", str(hold_s)),
        ("RingTime", str(ring_s)),
    ]


def agent_complete(
    ts: float,
    caller: Chan,
    dest: Chan,
    queue: str,
    iface: str,
    member: str,
    hold_s: int,
    talk_s: int,
    reason: str,
) -> Headers:
    return [
        *_agent("AgentComplete", ts, caller, dest, queue, iface, member),
        ("HoldTime", str(hold_s)),
        ("TalkTime", str(talk_s)),
        ("Reason", reason),
    ]


# --------------------------------------------------------------------------- dialplan UserEvent


def user_event(ts: float, c: Chan, name: str, body: Iterable[tuple[str, str]]) -> Headers:
    """``UserEvent(name,Key: value,...)`` from a channel's dialplan, as Asterisk 22 documents the
    AMI event (class USER): the channel's snapshot, ``UserEvent: <name>``, then the body's headers
    in the order written. A body key that repeats a snapshot header (``Uniqueid``) appears twice,
    as Asterisk sends it."""
    return [*_head("UserEvent", "user,all", ts), *chan_fields(c), ("UserEvent", name), *body]
