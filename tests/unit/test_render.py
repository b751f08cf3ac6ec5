"""Rendering a realistic tenant: golden files, determinism, and the Asterisk semantics that the
golden files alone would not explain (time ranges, gating, member helpers)."""

from __future__ import annotations

import os
import random
import re
from datetime import date
from pathlib import Path

import pytest

from pbx_core.asterisk.render import (
    FILES,
    UnsafeValue,
    member_interface,
    member_name,
    render_index,
    render_tenant,
    state_interface,
)
from pbx_core.provisioning.schemas import (
    Destination,
    DeviceConfig,
    DidCreate,
    Holiday,
    HoursCreate,
    MemberConfig,
    MenuCreate,
    OpeningSpan,
    Prompt,
    QueueConfig,
    TenantConfig,
    UserConfig,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def dest(type_: str, target: str | None = None) -> Destination:
    return Destination(type=type_, target=target)  # type: ignore[arg-type]


def acme_config() -> TenantConfig:
    """Two queues (support offers callbacks), a two-level IVR behind business hours with holidays
    and an after-hours menu that books callbacks, 3 DIDs, 4 users of which two use a browser
    (WebRTC), and an operator."""
    secret = "S3cret-{}-0123456789abcdef".format
    return TenantConfig(
        slug="acme",
        name="Acme B.V.",
        timezone="Europe/Amsterdam",
        language="nl",
        operator=dest("queue", "support"),
        outbound_caller_id="+31201234567",
        users=(
            UserConfig(extension="201", name="Ann de Vries", devices=(
                DeviceConfig(name="desk", kind="desk", secret=secret("a1")),
                DeviceConfig(name="web", kind="webrtc", secret=secret("a2")),
            )),
            UserConfig(extension="202", name="Bram Jansen", devices=(
                DeviceConfig(name="soft", kind="softphone", secret=secret("b1")),
            )),
            UserConfig(extension="203", name="Chris O'Neill", devices=(
                DeviceConfig(name="web", kind="webrtc", secret=secret("c1")),
            )),
            UserConfig(extension="204", name="Dana El Amrani", mobile="+31612345678"),
        ),
        queues=(
            QueueConfig(name="sales", strategy="ringall", ring_timeout_s=20, service_level_s=60,
                        announce_position=False),
            QueueConfig(name="support", display_name="Support", strategy="rrmemory", wrapup_s=10,
                        max_wait_s=300, overflow=dest("voicemail", "201"), hours="office",
                        callback_offer=True, callback_offer_after_s=90, callback_on_abandon=True),
        ),
        members=(
            MemberConfig(queue="sales", extension="202"),
            MemberConfig(queue="sales", extension="203", penalty=1),
            MemberConfig(queue="support", extension="201"),
            MemberConfig(queue="support", extension="202"),
        ),
        menus=(
            MenuCreate(
                name="main",
                prompt=Prompt(kind="recording", recording="custom/acme-welcome"),
                options={"1": dest("queue", "sales"), "2": dest("queue", "support"),
                         "3": dest("menu", "sub")},
                timeout_destination=dest("queue", "support"),
                invalid_destination=dest("hangup"),
                hours="office",
            ),
            MenuCreate(
                name="sub",
                prompt=Prompt(kind="tts", text="Voor Dana, kies 1. Voicemail: 2. Terug: 9."),
                options={"1": dest("extension", "204"), "2": dest("voicemail", "201"),
                         "9": dest("menu", "main")},
                timeout_s=8,
                max_repeats=1,
                operator_enabled=False,
                timeout_destination=dest("menu", "main"),
            ),
            MenuCreate(
                name="closed",
                prompt=Prompt(kind="recording", recording="custom/acme-closed"),
                options={"1": dest("callback", "support"), "2": dest("voicemail", "201")},
                operator_enabled=False,
                timeout_destination=dest("voicemail", "201"),
            ),
        ),
        hours=(
            HoursCreate(
                name="office",
                weekly=[
                    OpeningSpan(days=["mon", "tue", "wed", "thu", "fri"], open="08:30", close="17:00"),
                    OpeningSpan(days=["sat"], open="10:00", close="14:00"),
                ],
                holidays=[Holiday(date=date(2025, 12, 25), name="Kerstmis"),
                          Holiday(date=date(2026, 1, 1), name="Nieuwjaarsdag")],
                open_destination=dest("menu", "main"),
                closed_destination=dest("menu", "closed"),
                closed_message=Prompt(kind="tts", text="We zijn gesloten."),
            ),
        ),
        dids=(
            DidCreate(number="+31201234567", destination=dest("hours", "office"), description="main number"),
            DidCreate(number="+31201234568", destination=dest("queue", "sales")),
            DidCreate(number="+31201234569", destination=dest("extension", "201")),
        ),
    )


def _shuffled(config: TenantConfig, seed: int) -> TenantConfig:
    rnd = random.Random(seed)

    def mix(items):  # type: ignore[no-untyped-def]
        items = list(items)
        rnd.shuffle(items)
        return items

    users = tuple(u.model_copy(update={"devices": tuple(mix(u.devices))}) for u in mix(config.users))
    menus = tuple(m.model_copy(update={"options": dict(mix(m.options.items()))}) for m in mix(config.menus))
    hours = tuple(h.model_copy(update={"weekly": mix(h.weekly), "holidays": mix(h.holidays)})
                  for h in mix(config.hours))
    return config.model_copy(update={
        "users": users, "queues": tuple(mix(config.queues)), "members": tuple(mix(config.members)),
        "menus": menus, "hours": hours, "dids": tuple(mix(config.dids)),
    })


def test_golden_files() -> None:
    rendered = render_tenant(acme_config())
    assert sorted(rendered) == sorted(f"acme/{name}" for name in FILES)
    index = {f"index/{name}": data for name, data in render_index(["acme", "beta"]).items()}
    for path, data in {**rendered, **index}.items():
        golden = GOLDEN / path
        if os.environ.get("PBX_UPDATE_GOLDEN") == "1":
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_bytes(data)
        assert golden.exists(), f"{golden} missing: run PBX_UPDATE_GOLDEN=1 pytest {__file__}"
        assert data == golden.read_bytes(), f"{path} differs from {golden} (PBX_UPDATE_GOLDEN=1 to accept)"


def test_same_input_same_bytes_whatever_the_order() -> None:
    expected = render_tenant(acme_config())
    assert render_tenant(acme_config()) == expected
    for seed in range(5):
        assert render_tenant(_shuffled(acme_config(), seed)) == expected
    assert render_index(["beta", "acme", "beta"]) == render_index(["acme", "beta"])


def _context(text: str, name: str) -> list[str]:
    body = text.split(f"[{name}]\n", 1)[1]
    return body.split("\n\n", 1)[0].splitlines()


def test_business_hours_end_minute_and_holidays() -> None:
    ext = render_tenant(acme_config())["acme/extensions.conf"].decode()
    check = _context(ext, "acme-hours-office")
    # pbx_timing.c includes the end minute: closing at 17:00 means open until 16:59.
    assert " same => n,GotoIfTime(08:30-16:59,mon&tue&wed&thu&fri,*,*,Europe/Amsterdam?opened)" in check
    assert " same => n,GotoIfTime(10:00-13:59,sat,*,*,Europe/Amsterdam?opened)" in check
    assert ' same => n,GotoIf($["${PBX_TODAY}"="2025-12-25"]?done)' in check
    assert check.index(' same => n,GotoIf($["${PBX_TODAY}"="2026-01-01"]?done)') < check.index(
        " same => n,GotoIfTime(08:30-16:59,mon&tue&wed&thu&fri,*,*,Europe/Amsterdam?opened)")
    assert "exten => closed,1,Answer()" in check
    assert " same => n,Playback(tts/acme-hours-office)" in check


def test_close_at_midnight() -> None:
    config = acme_config()
    always = OpeningSpan(days=["sun"], open="00:00", close="24:00")
    office = config.hours[0].model_copy(update={"weekly": [always]})
    ext = render_tenant(config.model_copy(update={"hours": (office,)}))["acme/extensions.conf"].decode()
    assert "GotoIfTime(00:00-23:59,sun,*,*,Europe/Amsterdam?opened)" in ext


def test_menu_options_to_a_person_are_closed_with_the_schedule() -> None:
    ext = render_tenant(acme_config())["acme/extensions.conf"].decode()
    main = _context(ext, "acme-ivr-main")
    # 1 (queue) is gated, 3 (menu) is not, 0 is the operator (the support queue) and gated.
    one = main.index("exten => 1,1,Gosub(acme-hours-office,check,1)")
    assert main[one + 2: one + 4] == [" same => n,Goto(acme-hours-office,closed,1)",
                                      " same => n(open),Goto(acme-queue-sales,s,1)"]
    assert "exten => 3,1,Goto(acme-ivr-sub,s,1)" in main
    assert "exten => 0,1,Gosub(acme-hours-office,check,1)" in main
    sub = _context(ext, "acme-ivr-sub")
    assert not any(line.startswith("exten => 0,") for line in sub)  # operator disabled here
    assert "exten => 1,1,Goto(acme-internal,204,1)" in sub  # sub has no schedule: not gated
    assert " same => n(menu),Background(tts/acme-sub)" in sub
    assert " same => n,GotoIf($[${PBX_TRIES}<=1]?s,menu)" in sub


def test_queue_overflow_and_tenant_variables() -> None:
    config = acme_config()
    # Without the announcement and the offer (test_render_callbacks.py covers those).
    plain = config.queues[1].model_copy(update={"announce_expected_wait": False, "callback_offer": False})
    ext = render_tenant(config.model_copy(update={"queues": (config.queues[0], plain)}))
    assert _context(ext["acme/extensions.conf"].decode(), "acme-queue-support") == [
        "exten => s,1,Set(__PBX_TENANT=acme)",
        " same => n,Set(__PBX_QUEUE=support)",
        " same => n,Set(__PBX_JOINED=${EPOCH})",
        " same => n,Answer()",
        " same => n,Queue(acme-support,t,,,300)",
        " same => n,VoiceMail(201@acme,u)",
        " same => n,Hangup()",
    ]
    queues = render_tenant(acme_config())["acme/queues.conf"].decode()
    assert "member" not in queues
    support = _context(queues, "acme-support")
    assert "joinempty=unavailable,invalid,unknown" in support
    assert "wrapuptime=10" in support


def test_webrtc_devices_use_wss_and_opus() -> None:
    pjsip = render_tenant(acme_config())["acme/pjsip.conf"].decode()
    web = _context(pjsip, "acme-203-web")
    assert {"webrtc=yes", "transport=transport-wss", "allow=opus,ulaw"} <= set(web)
    desk = _context(pjsip, "acme-201-desk")
    assert "webrtc=yes" not in desk and not any(x.startswith("transport=") for x in desk)
    assert 'callerid="Chris O\'Neill" <203>' in web


def test_member_helpers_match_the_dialplan() -> None:
    ext = render_tenant(acme_config())["acme/extensions.conf"].decode()
    assert member_interface("acme", "201") == "Local/201@acme-agents/n"
    agents = _context(ext, "acme-agents")
    # Only reachable contacts are dialled (PJSIP_DIAL_CONTACTS); nobody registered: no Dial at all.
    assert " same => n,Set(PBX_C=${PJSIP_DIAL_CONTACTS(acme-201-desk)})" in agents
    assert " same => n,Set(PBX_C=${PJSIP_DIAL_CONTACTS(acme-201-web)})" in agents
    assert " same => n,GotoIf($[${LEN(${PBX_DIAL})}=0]?done)" in agents
    assert " same => n,Dial(${PBX_DIAL})" in agents
    assert "Dial(PJSIP/acme-" not in ext  # a device is never dialled by name, registered or not
    assert state_interface("acme", "201") == "hint:201@acme-internal"
    assert "exten => 201,hint,PJSIP/acme-201-desk&PJSIP/acme-201-web" in _context(ext, "acme-internal")
    assert member_name("Ann (sales), ${X}", "201") == "Ann sales X"
    assert member_name(";;;", "201") == "201"
    with pytest.raises(UnsafeValue, match="extension"):
        member_interface("acme", "201,evil")


def test_render_index_refuses_bad_slugs() -> None:
    with pytest.raises(UnsafeValue, match=r"slugs\.1"):
        render_index(["acme", "evil\n[x]"])
    with pytest.raises(UnsafeValue, match="reserved"):
        render_index(["pbx"])
    assert re.search(rb"\[pbx-dids\]\ninclude => acme-dids\n", render_index(["acme"])["extensions.conf"])
