"""Typed queue events, normalised from AMI header dicts.

``normalise(frame, fallback_ts)`` turns one AMI frame into one typed event, or None for
anything the queue engine does not use. Time comes from the frame's ``Timestamp`` header; frames
without one (the items of a QueueStatus reply) take ``fallback_ts``, which the shell supplies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from .headers import Headers, Picker

Fields = Mapping[str, str]


# Events are values: nothing mutates one once built. They are not ``frozen`` dataclasses because
# one is built for every AMI event and a frozen one costs about five times as much to construct
# (every field goes through object.__setattr__); ``unsafe_hash`` keeps them hashable as before.

# Asterisk device states (QueueMember* "Status").
DEVICE_UNKNOWN = 0
DEVICE_NOT_INUSE = 1
DEVICE_INUSE = 2
DEVICE_BUSY = 3
DEVICE_INVALID = 4
DEVICE_UNAVAILABLE = 5
DEVICE_RINGING = 6
DEVICE_RINGINUSE = 7
DEVICE_ONHOLD = 8


@dataclass(slots=True, unsafe_hash=True)
class CallerJoined:
    ts: float
    queue: str
    uniqueid: str
    channel: str
    number: str
    name: str
    position: int


@dataclass(slots=True, unsafe_hash=True)
class CallerLeft:
    ts: float
    queue: str
    uniqueid: str
    position: int


@dataclass(slots=True, unsafe_hash=True)
class CallerAbandoned:
    ts: float
    queue: str
    uniqueid: str
    number: str
    name: str
    position: int
    original_position: int
    hold_s: int


@dataclass(slots=True, unsafe_hash=True)
class AgentCalled:
    ts: float
    queue: str
    uniqueid: str
    interface: str
    member_name: str
    dest_channel: str


@dataclass(slots=True, unsafe_hash=True)
class AgentConnected:
    ts: float
    queue: str
    uniqueid: str
    number: str
    name: str
    interface: str
    member_name: str
    hold_s: int
    ring_s: int


@dataclass(slots=True, unsafe_hash=True)
class AgentCompleted:
    ts: float
    queue: str
    uniqueid: str
    interface: str
    member_name: str
    hold_s: int
    talk_s: int
    reason: str


@dataclass(slots=True, unsafe_hash=True)
class AgentRingNoAnswer:
    ts: float
    queue: str
    uniqueid: str
    interface: str
    member_name: str
    ring_ms: int


@dataclass(slots=True, unsafe_hash=True)
class AgentDumped:
    ts: float
    queue: str
    uniqueid: str
    interface: str
    member_name: str


@dataclass(slots=True, unsafe_hash=True)
class MemberInfo:
    """A queue member as every QueueMember* event and the QueueStatus reply describe it."""

    interface: str
    name: str
    state_interface: str = ""
    membership: str = "static"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: bool = False
    status: int = DEVICE_UNKNOWN
    paused: bool = False
    paused_reason: str = ""
    ringinuse: bool = False
    wrapup_s: int = 0


class MemberChange(Enum):
    ADDED = "added"
    REMOVED = "removed"
    PAUSE = "pause"
    STATUS = "status"
    PENALTY = "penalty"
    RINGINUSE = "ringinuse"


@dataclass(slots=True, unsafe_hash=True)
class MemberChanged:
    ts: float
    queue: str
    change: MemberChange
    member: MemberInfo


@dataclass(slots=True, unsafe_hash=True)
class ChannelHungUp:
    ts: float
    uniqueid: str
    channel: str


@dataclass(slots=True, unsafe_hash=True)
class QueueEntryInfo:
    uniqueid: str
    channel: str
    number: str
    name: str
    position: int
    wait_s: int


@dataclass(slots=True, unsafe_hash=True)
class QueueStatusInfo:
    queue: str
    strategy: str
    service_level_s: int
    members: tuple[MemberInfo, ...]
    entries: tuple[QueueEntryInfo, ...]


@dataclass(slots=True, unsafe_hash=True)
class StatusSnapshot:
    """A whole QueueStatus reply, applied as one resync.

    ``requested_ts`` is when the QueueStatus was sent: callers and members that appeared after it
    may be missing from the listing without having left, so the resync never drops them.
    ``complete`` says the listing covered every queue (no Queue filter), so queues that are absent
    have no callers and no logged-in members.
    """

    ts: float
    requested_ts: float
    queues: tuple[QueueStatusInfo, ...]
    complete: bool = True


@dataclass(slots=True, unsafe_hash=True)
class Tick:
    """The passage of time, fed by the shell: expires wrap-up and rolls the day over."""

    ts: float


@dataclass(slots=True, frozen=True)
class TenantRemoved:
    """A tenant was deleted (pbx-core's own API said so, or its bus epoch moved on): its queues
    leave the live state at once, whatever Asterisk still reports until its config is reloaded."""

    ts: float
    tenant: str


QueueEvent = (
    CallerJoined
    | CallerLeft
    | CallerAbandoned
    | AgentCalled
    | AgentConnected
    | AgentCompleted
    | AgentRingNoAnswer
    | AgentDumped
    | MemberChanged
)
Event = QueueEvent | ChannelHungUp | StatusSnapshot | Tick | TenantRemoved


# Event times outside these are not a PBX's clock but damage (a cut or corrupt header): they
# would put a queue in the year 58862, where no calendar day can be computed.
EARLIEST_TS = 946684800.0  # 2000-01-01
LATEST_TS = 7258118400.0  # 2200-01-01


def parse_timestamp(value: str | None) -> float | None:
    """An AMI ``Timestamp`` (epoch seconds) if it is a plausible one, else None."""
    if not value:
        return None
    try:
        ts = float(value)
    except ValueError:
        return None
    return ts if EARLIEST_TS <= ts < LATEST_TS else None  # also refuses nan and inf


def _int(value: str | None, default: int = 0) -> int:
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        try:
            return int(float(value))
        except (ValueError, OverflowError):  # "nan", "inf": no number at all
            return default


MAX_DURATION_S = 10 * 365 * 86400  # a wait, ring or talk time beyond this is damage, not a call


def _duration(value: str | None, unit: int = 1) -> int:
    """A duration header (HoldTime, TalkTime, Wait in s; ``unit=1000`` for AgentRingNoAnswer's
    RingTime in ms): never negative, never absurd, so one corrupt header cannot turn a counter
    negative or a join time into the year -10^12."""
    return min(max(_int(value), 0), MAX_DURATION_S * unit)


def _caller_id(value: str | None) -> str:
    # Asterisk renders a missing caller ID as "<unknown>".
    if not value or value == "<unknown>":
        return ""
    return value


# Asterisk's ast_escape_c (main/utils.c): these characters become a backslash and a letter.
_C_UNESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_C_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _c_unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return _C_UNESCAPES.get(char, match.group(0))  # not Asterisk's: keep it as it came


def unescape_c(value: str) -> str:
    """Undo ``ast_escape_c``: ``Ruud van \\'t Hof`` -> ``Ruud van 't Hof``.

    Asterisk 22 escapes the caller and connected-line *names* of every event built from a channel
    snapshot (``ast_manager_build_channel_state_string``: QueueCallerJoin/Leave/Abandon,
    Agent*, Hangup, the channel part of UserEvent, with or without a ``Dest`` prefix), but not
    the numbers, and not OriginateResponse or the QueueEntry items of QueueStatus, which print
    the raw name. Unescaping the former makes one caller one name, whichever event named them.
    """
    if "\\" not in value:
        return value
    return _C_ESCAPE.sub(_c_unescape, value)


def _channel_name(value: str | None) -> str:
    """A caller/connected-line name from a channel-snapshot event: C-escaped by Asterisk."""
    return unescape_c(_caller_id(value))


def _entry_caller_id(value: str | None) -> str:
    # QueueStatus's QueueEntry prints "unknown" (no angle brackets) for a missing caller ID.
    return "" if value == "unknown" else _caller_id(value)


def member_info(f: Fields) -> MemberInfo:
    """QueueMember* events say Interface/MemberName; QueueStatus items say Location/Name."""
    get = f.get  # bound once: this runs for every member event and every QueueStatus member
    raw = (
        get("Penalty"),
        get("CallsTaken"),
        get("LastCall"),
        get("LastPause"),
        get("LoginTime"),
        get("Status"),
        get("Wrapuptime"),
    )
    try:  # nearly always plain integers, for which `int(v or 0)` is `_int(v)`
        penalty, calls, last_call, last_pause, login, status, wrapup = (
            int(raw[0] or 0),
            int(raw[1] or 0),
            int(raw[2] or 0),
            int(raw[3] or 0),
            int(raw[4] or 0),
            int(raw[5] or 0),
            int(raw[6] or 0),
        )
    except ValueError:
        penalty, calls, last_call, last_pause, login, status, wrapup = map(_int, raw)
    return MemberInfo(
        get("Interface") or get("Location") or "",
        get("MemberName") or get("Name") or "",
        get("StateInterface", ""),
        get("Membership", "static"),
        penalty,
        calls,
        last_call,
        last_pause,
        login,
        get("InCall") == "1",
        status,
        get("Paused") == "1",
        get("PausedReason", ""),
        get("Ringinuse") == "1",
        wrapup,
    )


def queue_entry_info(f: Fields) -> QueueEntryInfo:
    return QueueEntryInfo(
        uniqueid=f.get("Uniqueid", ""),
        channel=f.get("Channel", ""),
        number=_entry_caller_id(f.get("CallerIDNum")),
        name=_entry_caller_id(f.get("CallerIDName")),  # raw: QueueStatus does not escape it
        position=_int(f.get("Position"), 1),
        wait_s=_duration(f.get("Wait")),
    )


def _join(f: Fields, ts: float) -> CallerJoined:
    return CallerJoined(
        ts,
        f["Queue"],
        f["Uniqueid"],
        f.get("Channel", ""),
        _caller_id(f.get("CallerIDNum")),
        _channel_name(f.get("CallerIDName")),
        _int(f.get("Position"), 1),
    )


def _leave(f: Fields, ts: float) -> CallerLeft:
    return CallerLeft(ts, f["Queue"], f["Uniqueid"], _int(f.get("Position"), 1))


def _abandon(f: Fields, ts: float) -> CallerAbandoned:
    return CallerAbandoned(
        ts,
        f["Queue"],
        f["Uniqueid"],
        _caller_id(f.get("CallerIDNum")),
        _channel_name(f.get("CallerIDName")),
        _int(f.get("Position"), 1),
        _int(f.get("OriginalPosition"), 1),
        _duration(f.get("HoldTime")),
    )


def _called(f: Fields, ts: float) -> AgentCalled:
    return AgentCalled(
        ts,
        f["Queue"],
        f.get("Uniqueid", ""),
        f["Interface"],
        f.get("MemberName", ""),
        f.get("DestChannel", ""),
    )


def _connect(f: Fields, ts: float) -> AgentConnected:
    return AgentConnected(
        ts,
        f["Queue"],
        f.get("Uniqueid", ""),
        _caller_id(f.get("CallerIDNum")),
        _channel_name(f.get("CallerIDName")),
        f["Interface"],
        f.get("MemberName", ""),
        _duration(f.get("HoldTime")),
        _duration(f.get("RingTime")),
    )


def _complete(f: Fields, ts: float) -> AgentCompleted:
    return AgentCompleted(
        ts,
        f["Queue"],
        f.get("Uniqueid", ""),
        f["Interface"],
        f.get("MemberName", ""),
        _duration(f.get("HoldTime")),
        _duration(f.get("TalkTime")),
        f.get("Reason", ""),
    )


def _rna(f: Fields, ts: float) -> AgentRingNoAnswer:
    return AgentRingNoAnswer(
        ts,
        f["Queue"],
        f.get("Uniqueid", ""),
        f["Interface"],
        f.get("MemberName", ""),
        _duration(f.get("RingTime"), 1000),
    )


def _dump(f: Fields, ts: float) -> AgentDumped:
    return AgentDumped(ts, f["Queue"], f.get("Uniqueid", ""), f["Interface"], f.get("MemberName", ""))


def _member(change: MemberChange) -> Callable[[Fields, float], MemberChanged | None]:
    def build(f: Fields, ts: float) -> MemberChanged | None:
        info = member_info(f)
        if not info.interface:
            return None
        return MemberChanged(ts, f["Queue"], change, info)

    return build


def _hangup(f: Fields, ts: float) -> ChannelHungUp:
    return ChannelHungUp(ts, f.get("Uniqueid", ""), f.get("Channel", ""))


Builder = Callable[[Fields, float], "Event | None"]

# The headers each builder reads, for picking them out of a frame without parsing the rest.
_CALLER = ("Queue", "Uniqueid", "Channel", "CallerIDNum", "CallerIDName", "Position")
_AGENT = ("Queue", "Uniqueid", "Interface", "MemberName")
_MEMBER = (
    "Queue", "Interface", "Location", "MemberName", "Name", "StateInterface", "Membership",
    "Penalty", "CallsTaken", "LastCall", "LastPause", "LoginTime", "InCall", "Status", "Paused",
    "PausedReason", "Ringinuse", "Wrapuptime",
)  # fmt: skip


def _spec(builder: Builder, *keys: str) -> tuple[Builder, Picker]:
    return builder, Picker("Timestamp", *keys, whole=keys == _MEMBER)


# Each builder takes the frame's headers and its event time (parsed once, in ``normalise``).
_SPECS: dict[str, tuple[Builder, Picker]] = {
    "QueueCallerJoin": _spec(_join, *_CALLER),
    "QueueCallerLeave": _spec(_leave, *_CALLER),
    "QueueCallerAbandon": _spec(_abandon, *_CALLER, "OriginalPosition", "HoldTime"),
    "AgentCalled": _spec(_called, *_AGENT, "DestChannel"),
    "AgentConnect": _spec(_connect, *_AGENT, "CallerIDNum", "CallerIDName", "HoldTime", "RingTime"),
    "AgentComplete": _spec(_complete, *_AGENT, "HoldTime", "TalkTime", "Reason"),
    "AgentRingNoAnswer": _spec(_rna, *_AGENT, "RingTime"),
    "AgentDump": _spec(_dump, *_AGENT),
    "QueueMemberAdded": _spec(_member(MemberChange.ADDED), *_MEMBER),
    "QueueMemberRemoved": _spec(_member(MemberChange.REMOVED), *_MEMBER),
    "QueueMemberPause": _spec(_member(MemberChange.PAUSE), *_MEMBER),
    "QueueMemberPaused": _spec(_member(MemberChange.PAUSE), *_MEMBER),
    "QueueMemberStatus": _spec(_member(MemberChange.STATUS), *_MEMBER),
    "QueueMemberPenalty": _spec(_member(MemberChange.PENALTY), *_MEMBER),
    "QueueMemberRinginuse": _spec(_member(MemberChange.RINGINUSE), *_MEMBER),
    "QueueMemberRinginuseUpdate": _spec(_member(MemberChange.RINGINUSE), *_MEMBER),
    "Hangup": _spec(_hangup, "Uniqueid", "Channel"),
}

HANDLED_EVENTS: frozenset[str] = frozenset(_SPECS)


def normalise(frame: Fields, fallback_ts: float) -> Event | None:
    """One AMI frame → one typed event, or None. Never raises on a frame missing a field.

    A :class:`Headers` frame is read lazily: only the headers its event needs are picked out;
    any other mapping (a QueueStatus item, a test's dict) is read as it is. Both give the same
    event (the fuzz target holds them to it).
    """
    if type(frame) is Headers:
        spec = _SPECS.get(frame.name)
        if spec is None:
            return None
        builder, picker = spec
        picked = frame.pick(picker)
        if picked is None:
            return None
        fields: Fields = picked
    else:
        spec = _SPECS.get(frame.get("Event", ""))
        if spec is None:
            return None
        builder, fields = spec[0], frame
    ts = fallback_ts
    raw = fields.get("Timestamp")
    if raw:  # parse_timestamp, inlined: this runs for every event
        try:
            stamped = float(raw)
        except ValueError:
            stamped = 0.0
        if EARLIEST_TS <= stamped < LATEST_TS:
            ts = stamped
    try:
        return builder(fields, ts)
    except KeyError:
        return None  # a queue event without its Queue/Uniqueid/Interface: nothing to apply


def status_snapshot(
    items: Sequence[Fields], ts: float, requested_ts: float, *, complete: bool = True
) -> StatusSnapshot:
    """Assemble the items of one QueueStatus reply (QueueParams, QueueMember, QueueEntry)."""
    order: list[str] = []
    params: dict[str, Fields] = {}
    members: dict[str, list[MemberInfo]] = {}
    entries: dict[str, list[QueueEntryInfo]] = {}
    for item in items:
        f = item.fields() if type(item) is Headers else item  # read each item's headers once
        kind = f.get("Event")
        queue = f.get("Queue")
        if not queue:
            continue
        if queue not in params:
            order.append(queue)
            params[queue] = {}
        if kind == "QueueParams":
            params[queue] = f
        elif kind == "QueueMember":
            info = member_info(f)
            if info.interface:
                members.setdefault(queue, []).append(info)
        elif kind == "QueueEntry":
            entries.setdefault(queue, []).append(queue_entry_info(f))
    queues = tuple(
        QueueStatusInfo(
            queue=q,
            strategy=params[q].get("Strategy", ""),
            service_level_s=_int(params[q].get("ServiceLevel")),
            members=tuple(members.get(q, ())),
            entries=tuple(sorted(entries.get(q, ()), key=lambda e: e.position)),
        )
        for q in order
    )
    return StatusSnapshot(ts=ts, requested_ts=requested_ts, queues=queues, complete=complete)
