"""The AMI events the callbacks core reads, as typed values. Pure: headers in, values out.

The dialplan's UserEvents (``PbxCallbackRequest`` when a caller books, ``PbxCallbackResult`` when
a callback call ends) and ``OriginateResponse`` (the agent leg's outcome) arrive on the bridge's
one AMI session between the queue events, in Asterisk's order; the engine task hands them to the
callbacks core at their place in the stream (see :mod:`.service`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...domain.events import parse_timestamp

USER_EVENT = "UserEvent"
ORIGINATE_RESPONSE = "OriginateResponse"
AGENT_COMPLETE = "AgentComplete"  # also applied by the engine; the core reads its talk time
# Events the AMI session must deliver besides the queue events when callbacks run.
CALLBACK_EVENTS = frozenset({USER_EVENT, ORIGINATE_RESPONSE})
# Frames the engine hands to the callbacks core, at their place among the deltas.
WATCHED_EVENTS = CALLBACK_EVENTS | {AGENT_COMPLETE}
REQUEST_EVENT = "PbxCallbackRequest"
RESULT_EVENT = "PbxCallbackResult"
# The UserEvents that are ours (AmiOptions.user_events): any other UserEvent never reaches us.
CALLBACK_USER_EVENTS = frozenset({REQUEST_EVENT, RESULT_EVENT})
# The QueuePause reason of an agent reserved for a callback: they are working the line.
PAUSE_REASON = "callback"


@dataclass(frozen=True, slots=True)
class RequestEvent:
    tenant: str
    queue: str
    number: str
    source: str
    joined_at: float | None
    uniqueid: str
    ts: float
    # The window the caller heard (from the PBX_CBQ_ quote global) and whether it was the later
    # slot they chose; None when the dialplan had no quote to say.
    window_from: float | None = None
    window_to: float | None = None
    later: bool = False


@dataclass(frozen=True, slots=True)
class ResultEvent:
    callback_id: str
    originate_id: str
    dialstatus: str
    ts: float


@dataclass(frozen=True, slots=True)
class OriginateEvent:
    originate_id: str
    success: bool
    reason: str
    uniqueid: str
    ts: float


CallbackEvent = RequestEvent | ResultEvent | OriginateEvent


def _ts(frame: Mapping[str, str], fallback: float) -> float:
    stamped = parse_timestamp(frame.get("Timestamp"))  # None if missing, malformed or absurd
    return fallback if stamped is None else stamped


def _last(frame: Mapping[str, str], key: str) -> str:
    """A body header of a UserEvent; a key that repeats a channel header (``Uniqueid``) arrives
    twice, joined by a newline: the body's value is the last."""
    return frame.get(key, "").split("\n")[-1].strip()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def parse_event(frame: Mapping[str, str], fallback_ts: float) -> CallbackEvent | None:
    """A callback-related frame as a typed event; None for anything else (other UserEvents too)."""
    name = frame.get("Event")
    ts = _ts(frame, fallback_ts)
    if name == ORIGINATE_RESPONSE:
        action_id = frame.get("ActionID", "")
        if not action_id:
            return None
        return OriginateEvent(
            action_id,
            frame.get("Response", "").lower() == "success",
            frame.get("Reason", ""),
            frame.get("Uniqueid", ""),
            ts,
        )
    if name != USER_EVENT:
        return None
    kind = frame.get("UserEvent", "")
    if kind == REQUEST_EVENT:
        return RequestEvent(
            tenant=_last(frame, "Tenant"),
            queue=_last(frame, "Queue"),
            number=_last(frame, "Number"),
            source=_last(frame, "Source"),
            joined_at=_float(_last(frame, "JoinedAt")),
            uniqueid=_last(frame, "Uniqueid"),
            ts=ts,
            window_from=_float(_last(frame, "WindowFrom")),
            window_to=_float(_last(frame, "WindowTo")),
            later=_last(frame, "Later") == "1",
        )
    if kind == RESULT_EVENT:
        callback_id = _last(frame, "CallbackId")
        originate_id = _last(frame, "OriginateId")
        if not callback_id or not originate_id:
            return None
        return ResultEvent(callback_id, originate_id, _last(frame, "DialStatus"), ts)
    return None
