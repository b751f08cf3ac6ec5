"""The AMI actions the callbacks shell sends (Originate, QueuePause, Setvar, Status, Hangup) and
the replies it reads back (Status listings). Headers in, headers out; the sending is
:mod:`.shell`'s. The events the core reads are :mod:`.core.events`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .core.events import PAUSE_REASON
from .core.model import MARKER_FAMILY, VAR_CALLBACK_ID, VAR_ORIGINATE_ID, Callback, marker_key

VAR_CALLBACK_NUMBER = "PBX_CALLBACK_NUMBER"
VAR_QUEUE = "PBX_QUEUE"
VAR_MARK = "PBX_CALLBACK_MARK"  # the AstDB key the dialplan writes the attempt's marker under

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
            f"{VAR_MARK}={marker_key(originate_id, callback.dialled_at or 0.0)}",
        ],
    }


def marker_action(callback: Callback) -> dict[str, str]:
    """``DBGet`` of the dialplan's marker of the callback's attempt in flight (AMI write class
    ``reporting`` or ``system``). Answered with an error when the marker is not there."""
    assert callback.originate_id is not None
    return {
        "Action": "DBGet",
        "Family": MARKER_FAMILY,
        "Key": marker_key(callback.originate_id, callback.dialled_at or 0.0),
    }


NOT_FOUND = "Database entry not found"  # main/db.c's error when the key is missing


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


def quote_variable(tenant: str, queue: str) -> str:
    """The window a booking now is promised, and a later one (``core.promise.quote_value``)."""
    return f"PBX_CBQ_{tenant}_{queue}"


def setvar_action(variable: str, value: str) -> dict[str, str]:
    """No Channel header: a global variable (needs only write class ``call``)."""
    return {"Action": "Setvar", "Variable": variable, "Value": value}


def status_action(*variables: str) -> dict[str, str]:
    """Every channel, with the values of ``variables`` (CoreShowChannels carries no variables)."""
    return {"Action": "Status", "Variables": ",".join(variables)}


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
