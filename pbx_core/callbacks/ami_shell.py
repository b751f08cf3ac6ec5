"""The callback worker's AMI vocabulary: the actions it sends and the events it reads. Pure:
headers in, headers or typed values out.

The worker's connection is a plain :class:`~pbx_core.ami.client.AmiClient` with
``AmiOptions(extra_events=CALLBACK_EVENTS, user_events=CALLBACK_USER_EVENTS)``: the UserEvents
(PbxCallbackRequest / PbxCallbackResult from the dialplan, no others) and OriginateResponse
arrive on its ``events`` queue between the queue events, in stream order, so the worker sees an
agent's pause and the originate's outcome in the order Asterisk sent them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..domain.events import parse_timestamp
from .model import VAR_CALLBACK_ID, VAR_ORIGINATE_ID, Callback

USER_EVENT = "UserEvent"
ORIGINATE_RESPONSE = "OriginateResponse"
CALLBACK_EVENTS = frozenset({USER_EVENT, ORIGINATE_RESPONSE})
REQUEST_EVENT = "PbxCallbackRequest"
RESULT_EVENT = "PbxCallbackResult"
# The UserEvents that are ours (AmiOptions.user_events): any other UserEvent never reaches us.
CALLBACK_USER_EVENTS = frozenset({REQUEST_EVENT, RESULT_EVENT})
VAR_CALLBACK_NUMBER = "PBX_CALLBACK_NUMBER"
VAR_QUEUE = "PBX_QUEUE"
PAUSE_REASON = "callback"

_SAFE_NUMBER = re.compile(r"^\+?[0-9]{1,32}$")


# --------------------------------------------------------------------------- actions


def queue_name(tenant: str, queue: str) -> str:
    return f"{tenant}-{queue}"


def originate_action(callback: Callback, agent: str, originate_id: str) -> dict[str, str | list[str]]:
    """Agent first: the agent's member interface is called; once it answers, the
    ``{slug}-callback`` dialplan announces the customer and dials them."""
    if not _SAFE_NUMBER.match(callback.number):
        raise ValueError(f"callback number {callback.number!r} is not a dialable number (digits, leading +)")
    return {
        "Action": "Originate",
        "ActionID": originate_id,
        "ChannelId": originate_id,
        "Channel": agent,
        "Context": f"{callback.tenant}-callback",
        "Exten": "s",
        "Priority": "1",
        "CallerID": f"Callback <{callback.number}>",
        "Async": "true",
        "Variable": [
            f"{VAR_CALLBACK_ID}={callback.id}",
            f"{VAR_ORIGINATE_ID}={originate_id}",
            f"{VAR_CALLBACK_NUMBER}={callback.number}",
            f"{VAR_QUEUE}={callback.queue}",
        ],
    }


def pause_action(tenant: str, queue: str, interface: str, paused: bool) -> dict[str, str]:
    action = {
        "Action": "QueuePause",
        "Queue": queue_name(tenant, queue),
        "Interface": interface,
        "Paused": "true" if paused else "false",
    }
    if paused:
        action["Reason"] = PAUSE_REASON
    return action


def ewt_variable(tenant: str, queue: str) -> str:
    return f"PBX_EWT_{tenant}_{queue}"


def offer_variable(tenant: str, queue: str) -> str:
    return f"PBX_OFFER_{tenant}_{queue}"


def setvar_action(variable: str, value: str) -> dict[str, str]:
    """No Channel header: a global variable (needs only write class ``call``)."""
    return {"Action": "Setvar", "Variable": variable, "Value": value}


def status_action(*variables: str) -> dict[str, str]:
    """Every channel, with the values of ``variables`` (CoreShowChannels carries no variables)."""
    return {"Action": "Status", "Variables": ",".join(variables)}


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class RequestEvent:
    tenant: str
    queue: str
    number: str
    source: str
    joined_at: float | None
    uniqueid: str
    ts: float


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
        )
    if kind == RESULT_EVENT:
        callback_id = _last(frame, "CallbackId")
        originate_id = _last(frame, "OriginateId")
        if not callback_id or not originate_id:
            return None
        return ResultEvent(callback_id, originate_id, _last(frame, "DialStatus"), ts)
    return None


def channel_variables(item: Mapping[str, str]) -> dict[str, str]:
    """The ``Variable: NAME=value`` headers of a Status item (repeated headers arrive joined by
    newlines)."""
    out: dict[str, str] = {}
    for line in item.get("Variable", "").split("\n"):
        name, sep, value = line.partition("=")
        if sep:
            out[name.strip()] = value.strip()
    return out


def live_callback_channels(items: Iterable[Mapping[str, str]]) -> dict[str, list[str]]:
    """Callback id -> channel names carrying it, from a Status listing (with the callback
    variables requested)."""
    out: dict[str, list[str]] = {}
    for item in items:
        if item.get("Event") != "Status":
            continue
        callback_id = channel_variables(item).get(VAR_CALLBACK_ID, "")
        if callback_id:
            out.setdefault(callback_id, []).append(item.get("Channel", ""))
    return out
