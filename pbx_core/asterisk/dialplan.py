"""extensions.conf of one tenant: the contexts named in the contract (``{slug}-internal``,
``-agents``, ``-dids``, ``-queue-{name}``, ``-ivr-{name}``, ``-hours-{name}``, ``-outbound``) and
the callbacks' contexts (``-queue-{name}-exit``, ``-callback-book-{name}``, ``-callback``; the
protocol with the callback worker is described at :func:`booking` and :func:`dialling`).

Every argument written into an application call is either a constant of this module or a value
checked by :mod:`.escape`; free text never reaches the dialplan (TTS text becomes a sound file
name, display names stay in pjsip/queue/voicemail configuration).
"""

from __future__ import annotations

import re
from typing import Any

from . import escape as esc
from .conf import Context
from .model import Tenant, User

DESTINATION_TYPES = frozenset(
    {"extension", "queue", "menu", "hours", "voicemail", "external", "hangup", "callback"}
)
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
    if kind == "callback":
        return [f"Goto({book_context(slug, esc.check('name', target, where))},s,1)"]
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
    """Every device of the user, for the hint (device state covers unregistered devices too)."""
    return "&".join(f"PJSIP/{slug}-{user.extension}-{d.name}" for d in user.devices)


def reachable_dial(slug: str, user: User, dial_options: str, nobody: str) -> list[str]:
    """Dial only the registered, reachable contacts of the user's devices; with none, go to label
    ``nobody`` without dialling. ``Dial(PJSIP/endpoint)`` of an endpoint with no contact fails
    with an ERROR in Asterisk's log ("Could not create dialog to invalid URI") on every ring;
    PJSIP_DIAL_CONTACTS() gives "PJSIP/endpoint/uri" for each reachable contact, "&"-joined, and
    "" for none. PBX_DIAL collects them, with "&" only between non-empty parts."""
    steps = ["Set(PBX_DIAL=)"]
    for d in user.devices:
        steps += [
            f"Set(PBX_C=${{PJSIP_DIAL_CONTACTS({slug}-{user.extension}-{d.name})}})",
            "Set(PBX_DIAL=${PBX_DIAL}${IF($[${LEN(${PBX_DIAL})}>0 & ${LEN(${PBX_C})}>0]?&)}${PBX_C})",
        ]
    steps += [f"GotoIf($[${{LEN(${{PBX_DIAL}})}}=0]?{nobody})", f"Dial(${{PBX_DIAL}}{dial_options})"]
    return steps


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
        # Nobody registered: straight to voicemail, "unavailable" greeting (DIALSTATUS is empty).
        steps = reachable_dial(t.slug, user, f",{EXTENSION_RING_S}", "voicemail") if user.devices else []
        steps += [
            "(voicemail)" if user.devices else "",
            f'VoiceMail({user.extension}@{t.slug},${{IF($["${{DIALSTATUS}}"="BUSY"]?b:u)}})',
            "Hangup()",
        ]
        steps = [s for s in steps if s]
        ctx.exten(user.extension, _labelled(steps))
    return ctx


def agents(t: Tenant) -> Context:
    ctx = Context(f"{t.slug}-agents", comment="queue members Local/{ext}@this/n ring all devices of the user")
    for user in t.users:
        if user.devices:  # no devices: the Local channel fails and app_queue sees the member invalid
            # No timeout: the queue's ring timeout decides how long a member rings. Nothing
            # reachable: the Local channel ends at once and app_queue tries the next member.
            steps = [*reachable_dial(t.slug, user, "", "done"), "(done)Hangup()"]
            ctx.exten(user.extension, _labelled(steps))
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
    announce = esc.boolean(getattr(q, "announce_expected_wait", None), f"{field}.announce_expected_wait")
    offer = esc.boolean(getattr(q, "callback_offer", None), f"{field}.callback_offer")
    wait = None if max_wait is None else esc.integer(max_wait, 10, 7200, f"{field}.max_wait_s")
    steps = [
        # Inherited by every channel of the call: callbacks and reports find tenant and queue.
        f"Set(__PBX_TENANT={t.slug})",
        f"Set(__PBX_QUEUE={name})",
        # The caller's place in line: a callback booked from the queue keeps it (JoinedAt).
        "Set(__PBX_JOINED=${EPOCH})",
        "Answer()",  # Queue() does not answer; announcements need an answered channel
    ]
    if announce:
        steps += [*expected_wait(t.slug, name), "(said)"]
    if offer:
        steps += [*offer_steps(t.slug, name), "(offered)"]
    # 5th argument: the caller's maximum time in the queue; then the overflow runs.
    steps.append(f"Queue({t.slug}-{name},t)" if wait is None else f"Queue({t.slug}-{name},t,,,{wait})")
    after = ["Hangup()"]
    if wait is not None and overflow is not None:
        after = destination(t.slug, overflow, f"{field}.overflow")
    # "after": where a caller who pressed 1 and went back into the queue continues (rejoin).
    steps += [f"(after){after[0]}", *after[1:]] if offer else after
    ctx.exten("s", _labelled(steps))
    if offer:
        ctx.exten("rejoin", rejoin(t.slug, name, wait))
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
    # Core sound "That option is invalid. Please try again." (pbx-core speaks nl/pm-invalid-option).
    for exten, key, sound_first in (("i", "invalid_destination", SOUND_INVALID),
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

# --- callbacks ----------------------------------------------------------------------------------
# The protocol with the callback worker (pbx_core/callbacks): it keeps two globals per queue fresh
# with AMI Setvar, PBX_EWT_{slug}_{queue} (expected wait of a caller joining now, seconds; empty if
# unknown) and PBX_OFFER_{slug}_{queue} (1 while the callback offer is open). Bookings reach it as
# UserEvent PbxCallbackRequest, outcomes of its agent-first Originate as UserEvent PbxCallbackResult.
# Slugs hold no "_", so the global's name is unambiguous even for queue names that do.

# Core sounds (asterisk-core-sounds-en-gsm; Dutch spoken by pbx-core, see sounds.py).
SOUND_INVALID = "pm-invalid-option"  # "That option is invalid. Please try again."
# pbx-core's own sounds, spoken at apply time into sounds/{nl,en}/pbx-core/ (see sounds.py).
SOUND_OFFER = "pbx-core/callback-offer"  # "Press 1 to be called back; you keep your place in line."
SOUND_UNAVAILABLE = "pbx-core/callback-unavailable"  # "A callback is not possible right now."
SOUND_NUMBER = "pbx-core/callback-number"  # "We will call you back on"
SOUND_CONFIRM = "pbx-core/callback-confirm"  # "Press 1 to confirm, or 2 to enter another number."
SOUND_ENTER = "pbx-core/callback-enter-number"  # "Enter the number to call back, then press #."
SOUND_BOOKED = "pbx-core/callback-booked"  # "Thank you. We will call you back. Goodbye."
SOUND_FAILED = "pbx-core/callback-failed"  # "Sorry, we could not book the callback."
SOUND_ANNOUNCE = "pbx-core/callback-announce"  # to the agent: "Callback. Calling the customer on"
CONFIRM_ROUNDS = 3  # read-back/typing rounds before the booking gives up
CALLBACK_DIAL_S = 30  # how long the customer's phone rings
# The carrier trunk of the shared [pbx-outbound] (asterisk-config/extensions.conf).
TRUNK = "pbx-trunk"


def ewt_global(slug: str, name: str) -> str:
    return f"PBX_EWT_{slug}_{name}"


def offer_global(slug: str, name: str) -> str:
    return f"PBX_OFFER_{slug}_{name}"


def book_context(slug: str, name: str) -> str:
    return f"{slug}-callback-book-{name}"


def exit_context(slug: str, name: str) -> str:
    return f"{slug}-queue-{name}-exit"


def _labelled(steps: list[str]) -> list[str]:
    """A bare ``"(label)"`` marks the step that follows it (a skip target)."""
    out: list[str] = []
    pending = ""
    for step in steps:
        if re.fullmatch(r"\(\w+\)", step):
            pending = step
            continue
        out.append(pending + step)
        pending = ""
    if pending:
        raise AssertionError(f"label {pending} marks no step")
    return out


def expected_wait(slug: str, name: str) -> list[str]:
    """Our engine's expected wait (not Asterisk's average), rounded up to whole minutes; nothing is
    said while it is unknown (empty) or zero. Skips to ``(said)``."""
    return [
        f"Set(PBX_EWT=${{FILTER(0-9,${{GLOBAL({ewt_global(slug, name)})}})}})",
        'GotoIf($["${PBX_EWT}"="" | "${PBX_EWT}"="0"]?said)',
        "Playback(queue-holdtime)",  # core sound: "The current estimated hold time is"
        # $[] divides in floating point (11/2 is 5.5); CEIL rounds up to whole minutes.
        "SayNumber($[CEIL(${PBX_EWT}/60)])",
        "Playback(${IF($[${PBX_EWT}>60]?queue-minutes:queue-minute)})",
    ]


def offer_steps(slug: str, name: str) -> list[str]:
    """The offer on entry, only while it is open. Skips to ``(offered)``. While waiting, the
    queue's periodic announcement repeats it and digit 1 leaves into :func:`offer_exit`."""
    return [
        f'GotoIf($["${{GLOBAL({offer_global(slug, name)})}}"!="1"]?offered)',
        f"Playback({SOUND_OFFER})",
    ]


def rejoin(slug: str, name: str, wait: int | None) -> list[str]:
    """Back into the queue at the caller's old place: after every waiting caller who joined no
    later (their PBX_JOINED, read with QUEUE_GET_CHANNEL + IMPORT), through Queue()'s position
    argument. A maximum wait counts from the first join."""
    q = f"{slug}-{name}"
    steps = [
        "Set(PBX_POS=1)",
        f"(next)GotoIf($[${{PBX_POS}}>${{QUEUE_WAITING_COUNT({q})}}]?join)",
        f"Set(PBX_AHEAD=${{FILTER(0-9,${{IMPORT(${{QUEUE_GET_CHANNEL({q},${{PBX_POS}})}},PBX_JOINED)}})}})",
        "GotoIf($[0${PBX_AHEAD}>0${PBX_JOINED}]?join)",
        "Set(PBX_POS=$[${PBX_POS}+1])",
        "Goto(next)",
    ]
    # Asterisk 21+ Queue(): queuename,options,URL,announceoverride,timeout,AGI,gosub,rule,position.
    if wait is None:
        steps.append(f"(join)Queue({q},t,,,,,,,${{PBX_POS}})")
    else:
        steps += [
            f"(join)Set(PBX_LEFT=$[{wait}-${{EPOCH}}+0${{PBX_JOINED}}])",
            "GotoIf($[${PBX_LEFT}<1]?s,after)",
            f"Queue({q},t,,,${{PBX_LEFT}},,,,${{PBX_POS}})",
        ]
    return [*steps, "Goto(s,after)"]


def _confirm_and_book(slug: str, name: str, source: str, failed: list[str]) -> list[str]:
    """Read the caller ID back (or ask for a number when there is none), "1 = confirm, 2 = other
    number", then tell the worker. Only digits (and a leading + of a caller ID) reach the event."""
    # JoinedAt: the caller's place in line (queue_offer); empty for a booking without waiting.
    joined = "${FILTER(0-9,${PBX_JOINED})}" if source == "queue_offer" else ""
    return [
        f"Set(PBX_CB_JOINED={joined})",
        "Set(PBX_CB_NUMBER=${FILTER(0-9+,${CALLERID(num)})})",
        "Set(PBX_CB_ROUNDS=0)",
        "(confirm)Set(PBX_CB_ROUNDS=$[${PBX_CB_ROUNDS}+1])",
        f"GotoIf($[${{PBX_CB_ROUNDS}}>{CONFIRM_ROUNDS}]?failed)",
        "GotoIf($[${LEN(${PBX_CB_NUMBER})}<3]?ask)",
        f"Playback({SOUND_NUMBER})",
        "SayDigits(${FILTER(0-9,${PBX_CB_NUMBER})})",
        # Read(variable,prompt,maxdigits,options,attempts,timeout)
        f"Read(PBX_CB_KEY,{SOUND_CONFIRM},1,,1,6)",
        'GotoIf($["${PBX_CB_KEY}"="1"]?request)',
        'GotoIf($["${PBX_CB_KEY}"!="2"]?confirm)',
        f"(ask)Read(PBX_CB_TYPED,{SOUND_ENTER},15,,1,10)",
        "Set(PBX_CB_NUMBER=${FILTER(0-9,${PBX_CB_TYPED})})",
        "Goto(confirm)",
        f"(request)UserEvent(PbxCallbackRequest,Tenant: {slug},Queue: {name},Number: ${{PBX_CB_NUMBER}},"
        f"Source: {source},JoinedAt: ${{PBX_CB_JOINED}},Uniqueid: ${{UNIQUEID}})",
        f"Playback({SOUND_BOOKED})",
        "Hangup()",
        f"(failed){failed[0]}",
        *failed[1:],
    ]


def offer_exit(slug: str, name: str) -> Context:
    """queues.conf ``context=`` of a queue with the offer: a caller pressing 1 while waiting leaves
    the queue into exten 1 here (app_queue's valid_exit; other digits match nothing and are
    ignored). Offer open: book with the caller's place (JoinedAt). Closed: back to the old place."""
    ctx = Context(exit_context(slug, name), comment="digit 1 pressed while waiting: the callback offer")
    back = f"Goto({slug}-queue-{name},rejoin,1)"
    ctx.exten("1", [
        f'GotoIf($["${{GLOBAL({offer_global(slug, name)})}}"="1"]?book)',
        f"Playback({SOUND_UNAVAILABLE})",
        back,
        *_labelled(["(book)", *_confirm_and_book(slug, name, "queue_offer", [back])]),
    ])
    return ctx


def booking(slug: str, name: str) -> Context:
    """Destination ``callback``: book a callback from the queue without waiting in it (e.g. the
    after-hours menu); the worker dials it once the queue's schedule is open."""
    ctx = Context(book_context(slug, name), comment="book a callback without waiting (e.g. after hours)")
    ctx.exten("s", [
        f"Set(__PBX_TENANT={slug})",
        f"Set(__PBX_QUEUE={name})",
        "Answer()",
        *_confirm_and_book(slug, name, "after_hours", [f"Playback({SOUND_FAILED})", "Hangup()"]),
    ])
    return ctx


def dialling(slug: str, caller_id: str | None) -> Context:
    """The worker's agent-first Originate: ``Local/{ext}@{slug}-agents/n`` rings the agent; once
    answered that channel runs exten s here with PBX_CALLBACK_ID, PBX_ORIGINATE_ID and
    PBX_CALLBACK_NUMBER set. Exactly one PbxCallbackResult per attempt: after Dial, or from ``h``
    when the agent hangs up first (DIALSTATUS empty before Dial, CANCEL while the customer rings)."""
    ctx = Context(f"{slug}-callback", comment="agent-first callbacks: announce the customer, then dial them")
    result = ("UserEvent(PbxCallbackResult,CallbackId: ${PBX_CALLBACK_ID},"
              "OriginateId: ${PBX_ORIGINATE_ID},DialStatus: ${DIALSTATUS})")
    # The customer sees the tenant's number; never the "Callback <customer>" ID the agent was shown.
    caller = [f"Set(CALLERID(num)={caller_id})"] if caller_id else ["Set(CALLERID(num)=)"]
    ctx.exten("s", [
        # Digits and '+' only: the number goes into a Dial string.
        "Set(PBX_CALLBACK_NUMBER=${FILTER(0-9+,${PBX_CALLBACK_NUMBER})})",
        "GotoIf($[${LEN(${PBX_CALLBACK_NUMBER})}<3]?invalid)",
        f"Playback({SOUND_ANNOUNCE})",  # the channel is up: Originate waited for the agent's answer
        "SayDigits(${FILTER(0-9,${PBX_CALLBACK_NUMBER})})",
        *caller,
        "Set(CALLERID(name)=)",
        # The trunk of the shared [pbx-outbound], dialled directly so DIALSTATUS is the customer's.
        f"Dial(PJSIP/${{PBX_CALLBACK_NUMBER}}@{TRUNK},{CALLBACK_DIAL_S})",
        "(result)Set(PBX_RESULT_SENT=1)",
        result,
        "Hangup()",
        "(invalid)Set(DIALSTATUS=INVALIDARGS)",
        "Goto(result)",
    ])
    ctx.exten("h", [
        'GotoIf($["${PBX_RESULT_SENT}"="1"]?sent)',
        "Set(PBX_RESULT_SENT=1)",
        result,
        "(sent)NoOp()",
    ])
    return ctx


def render(t: Tenant) -> list[str]:
    parts = [internal(t).text(), agents(t).text(), dids(t).text()]
    for name, q, field in t.queues:
        parts.append(queue(t, q, name, field).text())
        if esc.boolean(getattr(q, "callback_offer", None), f"{field}.callback_offer"):
            parts.append(offer_exit(t.slug, name).text())
        parts.append(booking(t.slug, name).text())
    parts += [menu(t, m, name, field).text() for name, m, field in t.menus]
    parts += [hours(t, h, name, field).text() for name, h, field in t.hours]
    parts.append(outbound(t).text())
    parts.append(dialling(t.slug, t.outbound_caller_id).text())
    return parts
