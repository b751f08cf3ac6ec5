"""Real calls through a real Asterisk 22, judged from AMI alone.

A throwaway tenant is provisioned through pbx-core's apply: a DID whose IVR menu sends digit 1 to
the queue ``support``, two users whose desk phones are real SIP user agents (baresip, see
baresip.py), and a carrier trunk endpoint the test adds to the tenant's pjsip.conf. A third
baresip plays the carrier and calls the DID. The engine is pbx-core's own :class:`Bridge` on its
own AMI session; at every step its view of the queue must equal Asterisk's ``QueueStatus``:

1. both agents paused: the caller passes the IVR (digit 1, RFC 4733) and waits;
2. Ann (manual answer) unpaused: her phone rings;
3. Ann's phone answers: on call; 4. the caller hangs up: Ann is free, the call counted answered;
5. Bob (auto-answer) alone unpaused: a second caller is answered by his phone without help;
6. everyone paused again: a third caller waits and hangs up: an abandon, with the caller's number.

Needs ``PBX_TEST_AMI_URL``, ``PBX_TEST_ASTERISK_CONFIG_DIR`` and Debian's ``baresip``. When
Asterisk's sounds directory (``core show settings``) is on this machine and writable, the menu's
Dutch prompt is spoken into it by the apply, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions
from pbx_core.asterisk.apply import cli
from pbx_core.asterisk.render import render_tenant
from pbx_core.bridge import Bridge
from pbx_core.config import AmiUrl
from pbx_core.domain.events import DEVICE_INUSE, DEVICE_NOT_INUSE, DEVICE_RINGING, status_snapshot
from pbx_core.domain.queue_state import Delta
from pbx_core.provisioning.schemas import (
    DeviceConfig,
    DidCreate,
    MemberConfig,
    MenuCreate,
    Prompt,
    QueueConfig,
    TenantConfig,
    UserConfig,
)

from .baresip import BARESIP, Baresip
from .conftest import ACTION_OPTIONS, LIVE_URL, SKIP_REASON, provisioned, throwaway_slug

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not LIVE_URL, reason=SKIP_REASON),
    pytest.mark.skipif(BARESIP is None, reason="real calls need Debian's baresip (apt-get install baresip)"),
]

HANG_GUARD_S = 40.0  # one step of a real call; only ever a hang guard
BRIDGE_OPTIONS = AmiOptions(ping_interval_s=1.0, ping_timeout_s=5.0, action_timeout_s=20.0)
SIP_PORT = int(os.environ.get("PBX_TEST_SIP_PORT", "5060"))
DID = "+31850001234"
CALLERS = ("0612345671", "0612345672", "0612345673")


class Collect:
    def __init__(self) -> None:
        self.deltas: list[Delta] = []

    async def publish(self, deltas: list[Delta]) -> None:
        self.deltas.extend(deltas)


def call_tenant(slug: str, secrets_of: dict[str, str]) -> TenantConfig:
    def user(ext: str, name: str) -> UserConfig:
        return UserConfig(extension=ext, name=name,
                          devices=(DeviceConfig(name="desk", kind="desk", secret=secrets_of[ext]),))

    return TenantConfig(
        slug=slug,
        name="pbx-core live calls",
        language="nl",
        users=(user("201", "Ann"), user("202", "Bob")),
        # Long ring timeout: Ann's phone rings until the test answers it. No announcements: the
        # steps are about queue state, and every sound they would play is checked elsewhere.
        queues=(QueueConfig(name="support", strategy="ringall", ring_timeout_s=120,
                            announce_position=False, announce_expected_wait=False),),
        members=(MemberConfig(queue="support", extension="201"),
                 MemberConfig(queue="support", extension="202")),
        menus=(MenuCreate(name="main", prompt=Prompt(kind="tts", text="Welkom. Voor support, toets 1."),
                          options={"1": {"type": "queue", "target": "support"}}, timeout_s=20,
                          operator_enabled=False),),
        dids=(DidCreate(number=DID, destination={"type": "menu", "target": "main"}),),
    )


def with_carrier(files: dict[str, bytes], slug: str, secret: str) -> dict[str, bytes]:
    """The tenant's files plus a carrier trunk endpoint entering at [pbx-from-trunk] (the base
    dialplan's inbound context). It is found by the username it authenticates with, so the From
    user can be the caller's number, as a carrier sends it."""
    trunk = f"{slug}-carrier"
    files = dict(files)
    files[f"{slug}/pjsip.conf"] += (
        f"\n[{trunk}]\ntype=endpoint\ncontext=pbx-from-trunk\ndisallow=all\nallow=alaw,ulaw\n"
        f"auth={trunk}\naors={trunk}\nidentify_by=auth_username\ndtmf_mode=rfc4733\ndirect_media=no\n"
        f"rtp_symmetric=yes\nforce_rport=yes\n"
        f"\n[{trunk}]\ntype=auth\nauth_type=userpass\nusername={trunk}\npassword={secret}\n"
        f"\n[{trunk}]\ntype=aor\nmax_contacts=1\n"
    ).encode()
    return files


async def sounds_dir(ami: AmiClient) -> Path | None:
    """Asterisk's sounds directory, when it is on this machine and writable."""
    settings = (await cli(ami, "core show settings")).output
    match = re.search(r"Data directory:\s+(\S+)", settings)
    path = Path(match.group(1)) / "sounds" if match else None
    return path if path is not None and path.is_dir() and os.access(path, os.W_OK) else None


def engine_queue(bridge: Bridge, queue: str) -> dict[str, Any]:
    q = bridge.state.queues.get(queue)
    if q is None:
        return {"waiting": [], "members": []}
    return {
        "waiting": sorted(c.number for c in q.callers.values()),
        "members": sorted((m.interface, m.paused, m.status, m.in_call)
                          for m in q.members.values() if m.logged_in),
    }


async def asterisk_queue(ami: AmiClient, queue: str) -> dict[str, Any]:
    items = await ami.listing({"Action": "QueueStatus", "Queue": queue})
    snapshot = status_snapshot([dict(i) for i in items], ts=0.0, requested_ts=0.0)
    (info,) = [i for i in snapshot.queues if i.queue == queue]
    return {
        "waiting": sorted(e.number for e in info.entries),
        "members": sorted((m.interface, m.paused, m.status, m.in_call) for m in info.members),
    }


LAST: dict[str, Any] = {}  # the views compared last, for the failure message


async def eventually(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Poll Asterisk (there is no event for "QueueStatus changed") until ``check`` holds."""
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            while not await check():  # noqa: ASYNC110 - polling a remote PBX, not a local flag
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; last seen: {LAST}") from None


async def test_a_real_call_through_ivr_queue_and_agent_phones(ami_url: AmiUrl, config_dir: Path,
                                                              tmp_path: Path) -> None:
    slug = throwaway_slug("lc")
    queue = f"{slug}-support"
    ann, bob = f"Local/201@{slug}-agents/n", f"Local/202@{slug}-agents/n"
    device_secrets = {"201": secrets.token_urlsafe(18), "202": secrets.token_urlsafe(18)}
    carrier_secret = secrets.token_urlsafe(18)
    config = call_tenant(slug, device_secrets)
    files = with_carrier(render_tenant(config), slug, carrier_secret)
    uas: list[Baresip] = []

    def phone(ext: str, answer: str) -> Baresip:
        ua = Baresip(f"{ext}", tmp_path / f"ua{ext}",
                     f"<sip:{slug}-{ext}-desk@127.0.0.1:{SIP_PORT}>;auth_pass={device_secrets[ext]};"
                     f"answermode={answer};regint=60")
        uas.append(ua)
        return ua

    def carrier(number: str) -> Baresip:
        ua = Baresip(f"carrier{number}", tmp_path / f"carrier{number}",
                     f"<sip:{number}@127.0.0.1:{SIP_PORT}>;auth_user={slug}-carrier;"
                     f"auth_pass={carrier_secret};answermode=manual;regint=0")
        uas.append(ua)
        return ua

    async with AmiClient(ami_url, ACTION_OPTIONS) as ami:
        prompts = await sounds_dir(ami)
    async with contextlib.AsyncExitStack() as stack:
        applied = await stack.enter_async_context(
            provisioned(ami_url, config_dir, config, rendered=files, sounds_dir=prompts))
        if prompts is not None:  # the menu speaks Dutch, as in production
            assert applied.prompts is not None and f"tts/{slug}-main" in applied.prompts.spoken
        stack.push_async_callback(_stop_all, uas)
        ami = await stack.enter_async_context(AmiClient(ami_url, ACTION_OPTIONS))
        sink = Collect()
        bridge = Bridge(ami_url, ami=BRIDGE_OPTIONS, sinks=[sink], tick_s=0.5)
        runner = asyncio.create_task(bridge.run())
        stack.push_async_callback(_stop_bridge, bridge, runner)

        async def pause(iface: str, paused: bool) -> None:
            await ami.action({"Action": "QueuePause", "Queue": queue, "Interface": iface,
                              "Paused": "true" if paused else "false", "Reason": "live test"})

        async def agrees(expect: Callable[[dict[str, Any]], bool]) -> bool:
            """Asterisk shows the expected state, and the engine's view equals it."""
            theirs = await asterisk_queue(ami, queue)
            LAST.update(asterisk=theirs, engine=engine_queue(bridge, queue))
            if expect(theirs):
                LAST["expected_state_seen"] = dict(LAST)
            return expect(theirs) and LAST["engine"] == theirs

        def member(view: dict[str, Any], iface: str) -> tuple[Any, ...]:
            return next(m for m in view["members"] if m[0] == iface)

        def established(event: dict[str, Any]) -> bool:
            return event.get("type") == "CALL_ESTABLISHED"

        async def call_and_press_1(number: str) -> Baresip:
            """A carrier call to the DID; the IVR answers; the caller presses 1 (RFC 4733)."""
            ua = carrier(number)
            await ua.start()
            await ua.command("dial", f"sip:{DID}@127.0.0.1:{SIP_PORT}")
            await ua.wait_event("answered by the IVR", established, HANG_GUARD_S)
            await asyncio.sleep(1.0)  # the menu's Background() is playing
            await ua.command("sndcode", "1")
            return ua

        # The agents' phones register; both paused so the first caller waits.
        ann_ua, bob_ua = phone("201", "manual"), phone("202", "auto")
        for ua in (ann_ua, bob_ua):
            await ua.start()
        await pause(ann, True)
        await pause(bob, True)
        def both_paused_and_free(v: dict[str, Any]) -> bool:
            return len(v["members"]) == 2 and all(m[1] and m[2] == DEVICE_NOT_INUSE for m in v["members"])

        await eventually("both phones registered, both agents paused, engine agrees",
                         lambda: agrees(both_paused_and_free))

        # 1. Through the IVR into the queue: the DID's menu, digit 1.
        first = await call_and_press_1(CALLERS[0])
        await eventually("the caller waiting, engine agrees",
                         lambda: agrees(lambda v: v["waiting"] == [CALLERS[0]]))
        await eventually("the join published", lambda: delivered(sink, "caller.joined", queue, 1))
        joined = [d for d in sink.deltas if d.type == "caller.joined" and d.queue == queue]
        assert joined[-1].data.get("number") == CALLERS[0], joined

        # 2. Ann unpaused: her phone rings.
        await pause(ann, False)
        await ann_ua.wait_event("Ann's phone rings", lambda e: e.get("type") == "CALL_INCOMING",
                                HANG_GUARD_S)
        await eventually("Ann ringing, caller waiting, engine agrees", lambda: agrees(
            lambda v: v["waiting"] == [CALLERS[0]] and member(v, ann)[2] == DEVICE_RINGING))

        # 3. Ann's phone answers: on call.
        await ann_ua.command("accept")
        await eventually("Ann on call, nobody waiting, engine agrees", lambda: agrees(
            lambda v: v["waiting"] == [] and member(v, ann)[2] == DEVICE_INUSE and member(v, ann)[3]))

        # 4. The caller hangs up: Ann is free again.
        await first.command("hangup")
        await eventually("Ann free, engine agrees", lambda: agrees(
            lambda v: v["waiting"] == [] and member(v, ann)[2] == DEVICE_NOT_INUSE and not member(v, ann)[3]))
        counters = bridge.state.queues[queue].counters
        assert (counters.offered, counters.answered, counters.abandoned) == (1, 1, 0), counters

        # 5. Bob alone available: his phone answers by itself.
        await pause(ann, True)
        await pause(bob, False)
        second = await call_and_press_1(CALLERS[1])
        await eventually("Bob on call, engine agrees", lambda: agrees(
            lambda v: v["waiting"] == [] and member(v, bob)[2] == DEVICE_INUSE and member(v, bob)[3]))
        await bob_ua.wait_event("Bob's phone answered by itself", established, HANG_GUARD_S)
        await second.command("hangup")
        await eventually("Bob free, engine agrees", lambda: agrees(
            lambda v: member(v, bob)[2] == DEVICE_NOT_INUSE and not member(v, bob)[3]))

        # 6. Nobody available: the third caller waits, then hangs up: an abandon with their number.
        await pause(bob, True)
        third = await call_and_press_1(CALLERS[2])
        await eventually("the third caller waiting, engine agrees", lambda: agrees(
            lambda v: v["waiting"] == [CALLERS[2]]))
        await asyncio.sleep(1.0)
        await third.command("hangup")
        await eventually("nobody waiting, engine agrees", lambda: agrees(lambda v: v["waiting"] == []))
        q = bridge.state.queues[queue]
        assert (q.counters.offered, q.counters.answered, q.counters.abandoned) == (3, 2, 1), q.counters
        assert [a.number for a in q.abandoned] == [CALLERS[2]]
        assert q.abandoned[0].waited_s >= 1
        await eventually("the abandon published", lambda: delivered(sink, "caller.abandoned", queue, 1))
        abandoned = [d for d in sink.deltas if d.type == "caller.abandoned" and d.queue == queue]
        assert [d.data.get("number") for d in abandoned] == [CALLERS[2]], abandoned


async def delivered(sink: Collect, kind: str, queue: str, count: int) -> bool:
    """The bridge publishes after its state changed: its sink may be a moment behind."""
    return sum(1 for d in sink.deltas if d.type == kind and d.queue == queue) >= count


async def _stop_all(uas: list[Baresip]) -> None:
    await asyncio.gather(*(ua.stop() for ua in uas), return_exceptions=True)


async def _stop_bridge(bridge: Bridge, runner: asyncio.Task[None]) -> None:
    bridge.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runner, HANG_GUARD_S)

