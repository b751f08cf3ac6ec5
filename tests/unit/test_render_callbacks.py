"""The callbacks' dialplan (issue 5): the in-queue offer, the booking contexts, the agent-first
dialling context, and the queues.conf options behind them. Checked against the contract's
protocol (global names, UserEvent headers) and for internal consistency: every Goto/GotoIf/Gosub
target of the rendered tenant exists, and the simulated Asterisk loads the files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pbx_core.asterisk.render import render_index, render_tenant
from pbx_core.provisioning.schemas import Destination, MenuCreate, Prompt, TenantConfig
from pbx_core.simulator.asterisk_config import AsteriskConfig
from tests.conftest import ROOT
from tests.unit.test_render import acme_config
from tests.unit.test_render_injection import parse

Dialplan = dict[str, dict[str, list[tuple[str, str]]]]  # context -> exten -> [(label, app call)]


def dialplan(config: TenantConfig) -> Dialplan:
    out: Dialplan = {}
    exten = ""
    for section, key, value in parse(render_tenant(config)[f"{config.slug}/extensions.conf"]):
        ctx = out.setdefault(section, {})
        if key == "exten":
            exten, prio, app = value.split(",", 2)
            if prio == "hint":
                continue
        elif key == "same":
            prio, app = value.split(",", 1)
        else:
            continue
        label = m.group(1) if (m := re.fullmatch(r"n\((\w+)\)", prio)) else ""
        ctx.setdefault(exten, []).append((label, app))
    return out


def apps(plan: Dialplan, context: str, exten: str) -> list[str]:
    return [app for _, app in plan[context][exten]]


def queues_conf(config: TenantConfig, queue: str) -> list[str]:
    text = render_tenant(config)[f"{config.slug}/queues.conf"].decode()
    return text.split(f"[{config.slug}-{queue}]\n", 1)[1].split("\n\n", 1)[0].splitlines()


def user_event(app: str) -> tuple[str, list[tuple[str, str]]]:
    """UserEvent(name,Key: value,...) -> (name, [(key, value)]): each body argument becomes one
    ``Key: value`` header of the AMI event."""
    m = re.fullmatch(r"UserEvent\((\w+),(.*)\)", app)
    assert m, app
    headers = [tuple(x.split(": ", 1)) for x in m.group(2).split(",")]
    assert all(len(h) == 2 for h in headers), app
    return m.group(1), headers  # type: ignore[return-value]


def with_queue(config: TenantConfig, index: int, **update: object) -> TenantConfig:
    queues = list(config.queues)
    queues[index] = queues[index].model_copy(update=update)
    return config.model_copy(update={"queues": tuple(queues)})


# --- the queue: expected wait, offer, place in line ----------------------------------------------


def test_queue_sets_the_join_time_and_announces_our_expected_wait() -> None:
    steps = apps(dialplan(acme_config()), "acme-queue-support", "s")
    joined = steps.index("Set(__PBX_JOINED=${EPOCH})")
    assert joined < steps.index("Queue(acme-support,t,,,300)")
    # The worker's global, digits only; silent while unknown or zero.
    assert "Set(PBX_EWT=${FILTER(0-9,${GLOBAL(PBX_EWT_acme_support)})})" in steps
    assert 'GotoIf($["${PBX_EWT}"="" | "${PBX_EWT}"="0"]?said)' in steps
    # The global holds what to say (announce.spoken_s): under a minute, or whole minutes.
    assert "ExecIf($[${PBX_EWT}<60]?Playback(pbx-core/wait-less-than-a-minute))" in steps
    assert "SayNumber($[ROUND(${PBX_EWT}/60)])" in steps
    assert "Playback(${IF($[${PBX_EWT}>60]?queue-minutes:queue-minute)})" in steps
    # Asterisk's own estimate (its average) is never announced.
    assert "announce-holdtime=no" in queues_conf(acme_config(), "support")
    assert "announce-holdtime=no" in queues_conf(acme_config(), "sales")


def test_no_expected_wait_announcement_when_the_queue_turns_it_off() -> None:
    config = with_queue(acme_config(), 1, announce_expected_wait=False)
    steps = apps(dialplan(config), "acme-queue-support", "s")
    assert not any("PBX_EWT" in s or "queue-holdtime" in s for s in steps)
    assert "Set(__PBX_JOINED=${EPOCH})" in steps  # the place in line is still recorded


def test_offer_is_played_only_while_open_and_digit_1_leaves_the_queue() -> None:
    plan = dialplan(acme_config())
    support = plan["acme-queue-support"]["s"]
    # Right after the expected-wait announcement (its skip label "said").
    gate = ("said", 'GotoIf($["${GLOBAL(PBX_OFFER_acme_support)}"!="1"]?offered)')
    assert support[support.index(gate) + 1] == ("", "Playback(pbx-core/callback-offer)")
    assert support[support.index(gate) + 2] == ("offered", "Queue(acme-support,t,,,300)")
    conf = queues_conf(acme_config(), "support")
    assert {"context=acme-queue-support-exit", "periodic-announce=pbx-core/callback-offer",
            "periodic-announce-frequency=60"} <= set(conf)
    # app_queue takes the caller out on a digit matching an extension of `context`: only 1 does.
    assert list(plan["acme-queue-support-exit"]) == ["1"]


def test_queue_without_offer_has_no_exit_and_no_periodic_offer() -> None:
    plan = dialplan(acme_config())
    assert "acme-queue-sales-exit" not in plan
    assert list(plan["acme-queue-sales"]) == ["s"]  # no rejoin either
    sales = queues_conf(acme_config(), "sales")
    assert not any(x.startswith(("context=", "periodic-announce")) for x in sales)
    assert not any("PBX_OFFER" in app for app in apps(plan, "acme-queue-sales", "s"))


def test_offer_closed_puts_the_caller_back_at_their_place() -> None:
    plan = dialplan(acme_config())
    exit_steps = apps(plan, "acme-queue-support-exit", "1")
    assert exit_steps[:3] == [
        'GotoIf($["${GLOBAL(PBX_OFFER_acme_support)}"="1"]?offered)',
        "Playback(pbx-core/callback-unavailable)",
        "Goto(acme-queue-support,rejoin,1)",
    ]
    rejoin = apps(plan, "acme-queue-support", "rejoin")
    # Position = 1 + callers still waiting who joined no later (their PBX_JOINED via IMPORT).
    ahead = "${FILTER(0-9,${IMPORT(${QUEUE_GET_CHANNEL(acme-support,${PBX_POS})},PBX_JOINED)})}"
    assert f"Set(PBX_AHEAD={ahead})" in rejoin
    assert "GotoIf($[0${PBX_AHEAD}>0${PBX_JOINED}]?join)" in rejoin
    # The maximum wait counts from the first join; the 9th Queue() argument is the position.
    assert "Set(PBX_LEFT=$[300-${EPOCH}+0${PBX_JOINED}])" in rejoin
    assert "Queue(acme-support,t,,,${PBX_LEFT},,,,${PBX_POS})" in rejoin
    assert rejoin[-1] == "Goto(s,after)"
    assert plan["acme-queue-support"]["s"][-2] == ("after", "VoiceMail(201@acme,u)")


def test_rejoin_without_maximum_wait() -> None:
    config = with_queue(acme_config(), 0, callback_offer=True)  # sales: no max_wait_s
    rejoin = apps(dialplan(config), "acme-queue-sales", "rejoin")
    assert rejoin[-2:] == ["Queue(acme-sales,t,,,,,,,${PBX_POS})", "Goto(s,after)"]
    assert dialplan(config)["acme-queue-sales"]["s"][-1] == ("after", "Hangup()")


# --- booking: confirm the number, tell the worker ------------------------------------------------


@pytest.mark.parametrize(("context", "exten", "queue", "source", "joined"), [
    ("acme-queue-support-exit", "1", "support", "queue_offer", "${FILTER(0-9,${PBX_JOINED})}"),
    ("acme-callback-book-support", "s", "support", "after_hours", ""),
    ("acme-callback-book-sales", "s", "sales", "after_hours", ""),
])
def test_booking_emits_the_contract_user_event(
    context: str, exten: str, queue: str, source: str, joined: str
) -> None:
    steps = apps(dialplan(acme_config()), context, exten)
    events = [s for s in steps if s.startswith("UserEvent(")]
    assert len(events) == 1
    name, headers = user_event(events[0])
    assert name == "PbxCallbackRequest"
    assert headers == [("Tenant", "acme"), ("Queue", queue), ("Number", "${PBX_CB_NUMBER}"),
                       ("Source", source), ("JoinedAt", "${PBX_CB_JOINED}"), ("Uniqueid", "${UNIQUEID}"),
                       ("WindowFrom", "${PBX_CB_FROM}"), ("WindowTo", "${PBX_CB_TO}"),
                       ("Later", "${PBX_CB_LATER}")]
    # JoinedAt: the place in line (digits of the join time) or empty; set once, before any prompt.
    assert [s for s in steps if s.startswith("Set(PBX_CB_JOINED=")] == [f"Set(PBX_CB_JOINED={joined})"]
    # Only digits (and a caller ID's leading +) ever become PBX_CB_NUMBER.
    assigned = [s for s in steps if s.startswith("Set(PBX_CB_NUMBER=")]
    assert assigned == ["Set(PBX_CB_NUMBER=${FILTER(0-9+,${CALLERID(num)})})",
                        "Set(PBX_CB_NUMBER=${FILTER(0-9,${PBX_CB_TYPED})})"]
    after = steps[steps.index(events[0]) + 1:]
    assert after[:2] == ["Playback(pbx-core/callback-booked)", "Hangup()"]


@pytest.mark.parametrize(
    ("context", "exten"), [("acme-queue-support-exit", "1"), ("acme-callback-book-support", "s")]
)
def test_booking_says_the_promised_window_and_offers_a_later_one(context: str, exten: str) -> None:
    """The caller hears the window from the bridge's quote global in their language (SayUnixTime
    in the tenant's timezone), may choose the later one, and the booking carries what they
    chose. Only digits and the day word reach the times."""
    steps = apps(dialplan(acme_config()), context, exten)
    assert "Set(PBX_CB_Q=${GLOBAL(PBX_CBQ_acme_support)})" in steps
    assert 'GotoIf($["${PBX_CB_Q}"=""]?book)' in steps  # no quote yet: book, the bridge promises
    assert "Set(PBX_CB_FROM=${FILTER(0-9,${CUT(PBX_CB_Q,/,1)})})" in steps
    assert "Set(PBX_CB_DAY=${FILTER(a-z,${CUT(PBX_CB_Q,/,3)})})" in steps
    between = steps.index("Playback(pbx-core/callback-between)")
    assert steps[between + 1:between + 4] == [
        "SayUnixTime(${PBX_CB_FROM},Europe/Amsterdam,HM)",
        "Playback(pbx-core/callback-and)",
        "SayUnixTime(${PBX_CB_TO},Europe/Amsterdam,HM)",
    ]
    assert "Playback(pbx-core/callback-tomorrow-after)" in steps
    choice = steps.index("Read(PBX_CB_KEY,pbx-core/callback-slot-choice,1,,1,6)")
    assert steps[choice + 1:choice + 6] == [
        'GotoIf($["${PBX_CB_KEY}"!="2"]?book)',
        "Set(PBX_CB_LATER=1)",
        "Set(PBX_CB_FROM=${FILTER(0-9,${CUT(PBX_CB_Q,/,4)})})",
        "Set(PBX_CB_TO=${FILTER(0-9,${CUT(PBX_CB_Q,/,5)})})",
        "Set(PBX_CB_DAY=${FILTER(a-z,${CUT(PBX_CB_Q,/,6)})})",
    ]
    assert steps[choice + 6] == "Goto(tell)"


def test_booking_confirms_with_1_and_takes_another_number_with_2() -> None:
    plan = dialplan(acme_config())["acme-callback-book-support"]["s"]
    steps = [app for _, app in plan]
    read = steps.index("Read(PBX_CB_KEY,pbx-core/callback-confirm,1,,1,6)")
    assert steps[read - 1] == "SayDigits(${FILTER(0-9,${PBX_CB_NUMBER})})"
    assert steps[read + 1: read + 3] == ['GotoIf($["${PBX_CB_KEY}"="1"]?request)',
                                         'GotoIf($["${PBX_CB_KEY}"!="2"]?confirm)']
    assert ("ask", "Read(PBX_CB_TYPED,pbx-core/callback-enter-number,15,,1,10)") in plan
    # Bounded: no caller is stuck in the read-back loop.
    assert "GotoIf($[${PBX_CB_ROUNDS}>3]?failed)" in steps
    assert plan[-2:] == [("failed", "Playback(pbx-core/callback-failed)"), ("", "Hangup()")]


def test_callback_destination_books_and_is_not_closed_with_the_schedule() -> None:
    config = acme_config()
    # Put the booking option into the menu behind the office schedule too: it must stay reachable.
    main = config.menus[0].model_copy(update={"options": {**config.menus[0].options,
                                                          "4": Destination(type="callback", target="sales")}})
    plan = dialplan(config.model_copy(update={"menus": (main, *config.menus[1:])}))
    assert apps(plan, "acme-ivr-main", "4") == ["Goto(acme-callback-book-sales,s,1)"]
    assert apps(plan, "acme-ivr-closed", "1") == ["Goto(acme-callback-book-support,s,1)"]
    assert apps(plan, "acme-hours-office", "closed")[-1] == "Goto(acme-ivr-closed,s,1)"


# --- dialling: agent first, one result per attempt -----------------------------------------------


def test_dialling_context_announces_then_dials_with_the_tenant_number() -> None:
    plan = dialplan(acme_config())
    steps = apps(plan, "acme-callback", "s")
    assert steps[:3] == ["Set(PBX_CALLBACK_NUMBER=${FILTER(0-9+,${PBX_CALLBACK_NUMBER})})",
                         "Set(PBX_MARK=${FILTER(-0-9A-Za-z/_.,${PBX_CALLBACK_MARK})})",
                         "GotoIf($[${LEN(${PBX_CALLBACK_NUMBER})}<3]?invalid)"]
    order = [steps.index(x) for x in ("Playback(pbx-core/callback-announce)",
                                      "SayDigits(${FILTER(0-9,${PBX_CALLBACK_NUMBER})})",
                                      "Set(CALLERID(num)=+31201234567)",
                                      "Dial(PJSIP/${PBX_CALLBACK_NUMBER}@pbx-trunk,30)")]
    assert order == sorted(order)
    # Same trunk as the shared [pbx-outbound] of the base dialplan.
    base = (ROOT / "asterisk-config" / "extensions.conf").read_text()
    assert "Dial(PJSIP/${FILTER(0-9+,${EXTEN})}@pbx-trunk,120)" in base


def test_every_attempt_reports_exactly_one_result() -> None:
    plan = dialplan(acme_config())["acme-callback"]
    for exten in ("s", "h"):
        steps = [app for _, app in plan[exten]]
        results = [i for i, s in enumerate(steps) if s.startswith("UserEvent(PbxCallbackResult,")]
        assert len(results) == 1, exten
        name, headers = user_event(steps[results[0]])
        assert name == "PbxCallbackResult"
        assert headers == [("CallbackId", "${PBX_CALLBACK_ID}"), ("OriginateId", "${PBX_ORIGINATE_ID}"),
                           ("DialStatus", "${DIALSTATUS}")]
        # The guard is set before the event, then the durable marker; h skips when the main path
        # already reported.
        assert steps[results[0] - 2] == "Set(PBX_RESULT_SENT=1)"
        assert steps[results[0] - 1] == (
            'ExecIf($["${PBX_MARK}"!=""]?Set(DB(pbxcb/${PBX_MARK})='
            '${IF($["${DIALSTATUS}"=""]?NONE:${DIALSTATUS})}))'
        )
    assert plan["h"][0] == ("", 'GotoIf($["${PBX_RESULT_SENT}"="1"]?sent)')
    s = plan["s"]
    assert s[s.index(("invalid", "Set(DIALSTATUS=INVALIDARGS)")) + 1] == ("", "Goto(result)")


def test_the_attempt_is_marked_started_in_astdb_before_the_customer_is_dialled() -> None:
    """Never twice: a bridge that missed an attempt's result reads this marker (AMI DBGet of
    family pbxcb, the key it passed as PBX_CALLBACK_MARK) instead of dialling again."""
    steps = apps(dialplan(acme_config()), "acme-callback", "s")
    started = steps.index('ExecIf($["${PBX_MARK}"!=""]?Set(DB(pbxcb/${PBX_MARK})=started))')
    assert steps.index("Set(PBX_MARK=${FILTER(-0-9A-Za-z/_.,${PBX_CALLBACK_MARK})})") < started
    assert started < steps.index("Dial(PJSIP/${PBX_CALLBACK_NUMBER}@pbx-trunk,30)")
    # Only a key's own characters reach DB(): no ':' (ExecIf's else), no ',' or ')'.
    housekeeping = [s for s in steps if s.startswith("DBdeltree(")]
    assert housekeeping == [
        "DBdeltree(pbxcb/${STRFTIME($[${EPOCH}-259200],UTC,%Y%m%d)})",
        "DBdeltree(pbxcb/${STRFTIME($[${EPOCH}-345600],UTC,%Y%m%d)})",
    ]


def test_without_outbound_caller_id_the_customer_never_sees_their_own_number() -> None:
    config = acme_config().model_copy(update={"outbound_caller_id": None})
    steps = apps(dialplan(config), "acme-callback", "s")
    assert "Set(CALLERID(num)=)" in steps and "Set(CALLERID(name)=)" in steps
    assert steps.index("Set(CALLERID(num)=)") < steps.index("Dial(PJSIP/${PBX_CALLBACK_NUMBER}@pbx-trunk,30)")


# --- consistency ---------------------------------------------------------------------------------


def _targets(app: str, context: str, exten: str) -> list[tuple[str, str, str]]:
    """(context, exten, priority or label) of a Goto/GotoIf/Gosub with constant targets."""
    m = re.fullmatch(r"(Goto|GotoIf|Gosub)\((.*)\)", app)
    if not m:
        return []
    args = m.group(2)
    branches = [args] if m.group(1) != "GotoIf" else args.rsplit("?", 1)[1].split(":")
    out = []
    for branch in branches:
        parts = branch.split(",")
        if "${" in branch:  # a computed target (e.g. pbx-outbound,${FILTER(...)})
            continue
        where = {1: (context, exten, *parts), 2: (context, *parts), 3: tuple(parts)}[len(parts)]
        out.append(where)
    return out


def test_every_jump_of_the_rendered_tenant_lands_somewhere() -> None:
    plan = dialplan(acme_config())
    checked = 0
    for context, extens in plan.items():
        for exten, steps in extens.items():
            for _, app in steps:
                for ctx, ext, prio in _targets(app, context, exten):
                    checked += 1
                    assert ctx in plan and ext in plan[ctx], f"{context},{exten}: {app}"
                    labels = [label for label, _ in plan[ctx][ext]]
                    assert prio == "1" or prio in labels, f"{context},{exten}: {app}"
    assert checked > 40


def test_the_simulated_asterisk_loads_the_callback_contexts(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    shutil.copyfile(ROOT / "asterisk-config" / "extensions.conf", etc / "extensions.conf")
    for path, data in {**render_tenant(acme_config()),
                       **{f"{n}": d for n, d in render_index(["acme"]).items()}}.items():
        target = etc / "pbx-core" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    ast = AsteriskConfig(etc)
    assert ast.reload("pbx_config") == "Module 'pbx_config' reloaded successfully."
    assert not ast.errors
    for name in ("acme-queue-support-exit", "acme-callback-book-support", "acme-callback"):
        ok, lines = ast.dialplan_show(name)
        assert ok, lines
    assert set(ast.loaded.contexts["acme-callback"].extensions) == {"s", "h"}
    assert set(ast.loaded.contexts["acme-queue-support"].extensions) == {"s", "rejoin"}


def test_menus_of_a_tenant_may_book_any_of_its_queues() -> None:
    config = acme_config()
    menu = MenuCreate(name="night", prompt=Prompt(kind="recording", recording="custom/x"),
                      options={"1": Destination(type="callback", target="sales")}, operator_enabled=False)
    plan = dialplan(config.model_copy(update={"menus": (*config.menus, menu)}))
    assert apps(plan, "acme-ivr-night", "1") == ["Goto(acme-callback-book-sales,s,1)"]
