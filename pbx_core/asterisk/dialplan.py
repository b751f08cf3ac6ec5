"""extensions.conf of one tenant: the contexts named in the contract (``{slug}-internal``,
``-agents``, ``-dids``, ``-queue-{name}``, ``-ivr-{name}``, ``-hours-{name}``, ``-outbound``).

Every argument written into an application call is either a constant of this module or a value
checked by :mod:`.escape`; free text never reaches the dialplan (TTS text becomes a sound file
name, display names stay in pjsip/queue/voicemail configuration).
"""

from __future__ import annotations

from typing import Any

from . import escape as esc
from .conf import Context
from .model import Tenant, User

DESTINATION_TYPES = frozenset({"extension", "queue", "menu", "hours", "voicemail", "external", "hangup"})
# Destinations that put the caller through to a person: closed when the menu's schedule is closed.
PERSON_TYPES = frozenset({"extension", "queue"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How long an internal extension rings before voicemail answers.
EXTENSION_RING_S = 20


def destination(slug: str, dest: Any, field: str) -> list[str]:
    """The dialplan steps that send a call to ``dest`` (contract: "Destination -> dialplan")."""
    kind = esc.choice(getattr(dest, "type", None), DESTINATION_TYPES, f"{field}.type")
    target = getattr(dest, "target", None)
    where = f"{field}.target"
    if kind == "hangup":
        if target is not None:
            raise esc.UnsafeValue(where, target, "a hangup destination takes no target")
        return ["Hangup()"]
    if kind == "extension":
        return [f"Goto({slug}-internal,{esc.check('extension', target, where)},1)"]
    if kind == "voicemail":
        return [f"VoiceMail({esc.check('extension', target, where)}@{slug},u)", "Hangup()"]
    if kind == "external":
        return [f"Goto({slug}-outbound,{esc.check('number', target, where)},1)"]
    prefix = {"queue": "queue", "menu": "ivr", "hours": "hours"}[kind]
    return [f"Goto({slug}-{prefix}-{esc.check('name', target, where)},s,1)"]


def prompt_sound(slug: str, prompt: Any, owner: str, field: str) -> str:
    """A recording plays as named; a TTS prompt plays ``tts/{slug}-{owner}`` (the text itself is
    turned into that file elsewhere and never reaches the dialplan)."""
    kind = esc.choice(getattr(prompt, "kind", None), {"recording", "tts"}, f"{field}.kind")
    if kind == "tts":
        return f"tts/{slug}-{owner}"
    return esc.check("recording", getattr(prompt, "recording", None), f"{field}.recording")


def _dial_string(slug: str, user: User) -> str:
    return "&".join(f"PJSIP/{slug}-{user.extension}-{d.name}" for d in user.devices)


def internal(t: Tenant) -> Context:
    ctx = Context(f"{t.slug}-internal", comment="devices of the tenant dial from here")
    ctx.includes.append(f"{t.slug}-outbound")
    for user in t.users:
        if user.devices:
            ctx.hints.append((user.extension, _dial_string(t.slug, user)))
    # Own voicemail: PBX_EXTEN is set on the channel by the caller's endpoint (pjsip set_var), so
    # skipping the PIN (option s) is safe; without it nobody gets in.
    ctx.exten("*97", [
        'ExecIf($["${PBX_EXTEN}"=""]?Hangup())',
        "Answer()",
        f"VoiceMailMain(${{PBX_EXTEN}}@{t.slug},s)",
        "Hangup()",
    ])
    for user in t.users:
        steps = [f"Dial({_dial_string(t.slug, user)},{EXTENSION_RING_S})"] if user.devices else []
        steps += [
            f'VoiceMail({user.extension}@{t.slug},${{IF($["${{DIALSTATUS}}"="BUSY"]?b:u)}})',
            "Hangup()",
        ]
        ctx.exten(user.extension, steps)
    return ctx


def agents(t: Tenant) -> Context:
    ctx = Context(f"{t.slug}-agents", comment="queue members Local/{ext}@this/n ring all devices of the user")
    for user in t.users:
        if user.devices:  # no devices: the Local channel fails and app_queue sees the member invalid
            # No timeout: the queue's ring timeout decides how long a member rings.
            ctx.exten(user.extension, [f"Dial({_dial_string(t.slug, user)})", "Hangup()"])
    return ctx


def dids(t: Tenant) -> Context:
    ctx = Context(f"{t.slug}-dids", comment="numbers of this tenant, entered from [pbx-dids]")
    for number, did, field in t.dids:
        ctx.exten(number, [
            f"Set(__PBX_TENANT={t.slug})",
            f"Set(CHANNEL(language)={t.language})",
            *destination(t.slug, getattr(did, "destination", None), f"{field}.destination"),
        ])
    return ctx


def queue(t: Tenant, q: Any, name: str, field: str) -> Context:
    ctx = Context(f"{t.slug}-queue-{name}")
    max_wait = getattr(q, "max_wait_s", None)
    overflow = getattr(q, "overflow", None)
    steps = [
        # Inherited by every channel of the call: callbacks and reports find tenant and queue.
        f"Set(__PBX_TENANT={t.slug})",
        f"Set(__PBX_QUEUE={name})",
        "Answer()",  # Queue() does not answer; announcements need an answered channel
    ]
    if max_wait is None:
        steps += [f"Queue({t.slug}-{name},t)", "Hangup()"]
    else:
        wait = esc.integer(max_wait, 10, 7200, f"{field}.max_wait_s")
        # 5th argument: the caller's maximum time in the queue; then the overflow runs.
        steps += [f"Queue({t.slug}-{name},t,,,{wait})"]
        steps += destination(t.slug, overflow, f"{field}.overflow") if overflow is not None else ["Hangup()"]
    ctx.exten("s", steps)
    return ctx


def _gated(t: Tenant, hours: str | None, steps: list[str]) -> list[str]:
    """Steps behind the schedule ``hours``: while it is closed, go to its closed handling."""
    if hours is None:
        return steps
    return [
        f"Gosub({t.slug}-hours-{hours},check,1)",
        'GotoIf($["${PBX_OPEN}"="1"]?open)',
        f"Goto({t.slug}-hours-{hours},closed,1)",
        f"(open){steps[0]}",
        *steps[1:],
    ]


def menu(t: Tenant, m: Any, name: str, field: str) -> Context:
    ctx = Context(f"{t.slug}-ivr-{name}")
    sound = prompt_sound(t.slug, getattr(m, "prompt", None), name, f"{field}.prompt")
    timeout = esc.integer(getattr(m, "timeout_s", None), 1, 60, f"{field}.timeout_s")
    repeats = esc.integer(getattr(m, "max_repeats", None), 0, 5, f"{field}.max_repeats")
    operator_on = esc.boolean(getattr(m, "operator_enabled", None), f"{field}.operator_enabled")
    hours = getattr(m, "hours", None)
    if hours is not None:
        hours = esc.check("name", hours, f"{field}.hours")
    options = getattr(m, "options", None)
    if not isinstance(options, dict):
        raise esc.UnsafeValue(f"{field}.options", options, "must be a mapping of digit to destination")

    ctx.exten("s", [
        "Answer()",
        "Set(PBX_TRIES=0)",
        f"(menu)Background({sound})",
        f"WaitExten({timeout})",
    ])
    entries: list[tuple[str, list[str]]] = []
    for digit, dest in options.items():
        esc.check("digit", digit, f"{field}.options")
        where = f"{field}.options.{digit}"
        steps = destination(t.slug, dest, where)
        person = getattr(dest, "type", None) in PERSON_TYPES
        entries.append((digit, _gated(t, hours, steps) if person else steps))
    if operator_on and t.operator is not None:
        if "0" in options:
            raise esc.UnsafeValue(f"{field}.options.0", "0", "digit 0 is the operator on this menu")
        entries.append(("0", _gated(t, hours, destination(t.slug, t.operator, "operator"))))
    for digit, steps in sorted(entries):
        ctx.exten(digit, steps)
    for exten, key, sound_first in (("i", "invalid_destination", "option-is-invalid"),
                                    ("t", "timeout_destination", None)):
        steps = [f"Playback({sound_first})"] if sound_first else []
        steps += [
            "Set(PBX_TRIES=$[${PBX_TRIES}+1])",
            f"GotoIf($[${{PBX_TRIES}}<={repeats}]?s,menu)",
            *destination(t.slug, getattr(m, key, None), f"{field}.{key}"),
        ]
        ctx.exten(exten, steps)
    return ctx


def _span(span: Any, field: str) -> tuple[int, str, str]:
    days = getattr(span, "days", None)
    if not isinstance(days, list | tuple) or not days:
        raise esc.UnsafeValue(f"{field}.days", days, "must be a list of weekdays")
    picked = sorted({WEEKDAYS.index(esc.choice(d, WEEKDAYS, f"{field}.days")) for d in days})
    start = esc.check("hhmm", getattr(span, "open", None), f"{field}.open")
    close = esc.check("hhmm", getattr(span, "close", None), f"{field}.close")
    if start == "24:00" or start >= close:
        raise esc.UnsafeValue(f"{field}.open", start, "must be before close")
    # Asterisk time ranges include their end minute (main/pbx_timing.c): 08:30-17:00 is written
    # 08:30-16:59 so the schedule is closed from 17:00 on.
    h, mnt = map(int, close.split(":"))
    end = h * 60 + mnt - 1
    return picked[0], "&".join(WEEKDAYS[i] for i in picked), f"{start}-{end // 60:02d}:{end % 60:02d}"


def hours(t: Tenant, h: Any, name: str, field: str) -> Context:
    ctx = Context(f"{t.slug}-hours-{name}")
    weekly = getattr(h, "weekly", None)
    if not isinstance(weekly, list | tuple) or not weekly:
        raise esc.UnsafeValue(f"{field}.weekly", weekly, "must be a list of opening spans")
    spans = sorted({_span(s, f"{field}.weekly.{i}") for i, s in enumerate(weekly)})
    holidays_in = getattr(h, "holidays", None)
    if not isinstance(holidays_in, list | tuple):
        raise esc.UnsafeValue(f"{field}.holidays", holidays_in, "must be a list")
    holidays = sorted({esc.day(getattr(x, "date", None), f"{field}.holidays.{i}.date")
                       for i, x in enumerate(holidays_in)})

    ctx.exten("s", [
        f"Gosub({t.slug}-hours-{name},check,1)",
        'GotoIf($["${PBX_OPEN}"="1"]?open,1:closed,1)',
    ])
    # Subroutine: PBX_OPEN=1 if open now. GotoIfTime has no year, so holidays compare the date.
    check = [
        "Set(PBX_OPEN=0)",
        f"Set(PBX_TODAY=${{STRFTIME(${{EPOCH}},{t.timezone},%Y-%m-%d)}})",
    ]
    check += [f'GotoIf($["${{PBX_TODAY}}"="{d}"]?done)' for d in holidays]
    check += [f"GotoIfTime({times},{days},*,*,{t.timezone}?opened)" for _, days, times in spans]
    check += ["(done)Return()", "(opened)Set(PBX_OPEN=1)", "Return()"]
    ctx.exten("check", check)
    ctx.exten("open", destination(t.slug, getattr(h, "open_destination", None), f"{field}.open_destination"))
    closed: list[str] = []
    message = getattr(h, "closed_message", None)
    if message is not None:
        sound = prompt_sound(t.slug, message, f"hours-{name}", f"{field}.closed_message")
        closed += ["Answer()", f"Playback({sound})"]
    closed += destination(t.slug, getattr(h, "closed_destination", None), f"{field}.closed_destination")
    ctx.exten("closed", closed)
    return ctx


def outbound(t: Tenant) -> Context:
    ctx = Context(f"{t.slug}-outbound", comment="external numbers, through the shared [pbx-outbound]")
    # Only digits and '+' of what was dialled go on: a device cannot smuggle '&' or ',' into Dial.
    steps = [f"Set(CALLERID(num)={t.outbound_caller_id})"] if t.outbound_caller_id else []
    steps += ["Goto(pbx-outbound,${FILTER(0-9+,${EXTEN})},1)"]
    ctx.exten("_X.", steps)
    ctx.exten("_+X.", steps)
    return ctx


def render(t: Tenant) -> list[str]:
    parts = [internal(t).text(), agents(t).text(), dids(t).text()]
    parts += [queue(t, q, name, field).text() for name, q, field in t.queues]
    parts += [menu(t, m, name, field).text() for name, m, field in t.menus]
    parts += [hours(t, h, name, field).text() for name, h, field in t.hours]
    parts.append(outbound(t).text())
    return parts
