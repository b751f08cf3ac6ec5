"""Callbacks against a real Asterisk 22: the dialplan, the globals and the worker's AMI side.

Needs ``PBX_TEST_AMI_URL`` (see conftest.py; the AMI user of asterisk-config/manager.conf is
enough: read ``agent,call``, write ``agent,originate,call,command``) and
``PBX_TEST_ASTERISK_CONFIG_DIR`` (see test_live_provisioning.py). No phones are needed.

A throwaway tenant whose queue offers callbacks (and whose after-hours menu books them) is
applied and its callback contexts are checked in Asterisk's own CLI output. The expected-wait and
offer globals are written with ``Setvar`` and read back with ``Getvar`` (no Channel: a global,
as the dialplan's ``${GLOBAL(...)}`` reads it). Then a real bridge with its callbacks part, on a
temporary SQLite store, dials a booked callback agent-first through a member
``Local/201@{slug}-agents/n`` whose only device never registered: Asterisk must answer the
Originate with ``OriginateResponse: Failure``, which must reach the callbacks through the event
filter and requeue the callback without using an attempt and without dialling it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions
from pbx_core.ami.errors import AmiActionError, AmiError
from pbx_core.asterisk.apply import apply_tenant, cli, remove_tenant
from pbx_core.bridge import Bridge
from pbx_core.callbacks.ami import NOT_FOUND, VAR_MARK, ewt_variable, offer_variable, setvar_action
from pbx_core.callbacks.core.live import free_agents
from pbx_core.callbacks.core.model import MARKER_FAMILY, Status, marker_key
from pbx_core.callbacks.core.scheduler import lost_dial_result
from pbx_core.callbacks.shell import CallbackOptions, Callbacks
from pbx_core.callbacks.store import CallbackStore, request_callback
from pbx_core.config import AmiUrl
from pbx_core.provisioning import db
from pbx_core.provisioning.models import BusinessHours, Queue, Reseller, Tenant
from pbx_core.provisioning.schemas import (
    DeviceConfig,
    HoursCreate,
    MenuCreate,
    QueueConfig,
    TenantConfig,
    UserConfig,
)

from .conftest import LIVE_URL, SKIP_REASON

pytestmark = [pytest.mark.live, pytest.mark.skipif(not LIVE_URL, reason=SKIP_REASON)]

HANG_GUARD_S = 60.0  # a real PBX: generous, and only ever a hang guard
WORKER_AMI = AmiOptions(action_timeout_s=20.0)  # the bridge's own: event filter and resync, as deployed
WORKER = CallbackOptions(refresh_s=0.2, globals_every_s=0.05, store_poll_s=0.05, policies_every_s=60.0)
TICK_S = 0.05
QUEUE, EXT, NUMBER, TZ = "support", "201", "0612345678", "Europe/Amsterdam"
# The scheduler's clock (injected, running at real speed): a Monday morning inside the office
# hours until the first attempt's outcome is known, then that evening, closed. A failed agent
# leg requeues the callback at once for the same agent, who is "free" again (a Local member with
# an unregistered phone behind it stays NOT_INUSE): closing keeps a legitimate next dial from
# masking a double dial of the first attempt, and shows nothing goes out while closed.
OPEN_T = datetime(2030, 1, 7, 10, 0, tzinfo=ZoneInfo(TZ)).timestamp()
CLOSED_T = datetime(2030, 1, 7, 19, 0, tzinfo=ZoneInfo(TZ)).timestamp()




def callback_tenant(slug: str) -> TenantConfig:
    """A queue with the in-queue offer, office hours, and an after-hours menu whose digit 1 books
    a callback; one user whose desk phone never registers."""
    office = {
        "name": "office",
        "weekly": [{"days": ["mon", "tue", "wed", "thu", "fri"], "open": "09:00", "close": "17:00"}],
        "open_destination": {"type": "queue", "target": QUEUE},
        "closed_destination": {"type": "menu", "target": "closed"},
    }
    closed_menu = {
        "name": "closed",
        "prompt": {"kind": "recording", "recording": "pbx-core/callback-offer"},
        "options": {"1": {"type": "callback", "target": QUEUE}},
        "operator_enabled": False,
    }
    return TenantConfig(
        slug=slug,
        name="pbx-core live callback test",
        timezone=TZ,
        outbound_caller_id="0201234567",
        users=(
            UserConfig(
                extension=EXT,
                name="Live Tester",
                devices=(DeviceConfig(name="desk", kind="desk", secret=secrets.token_urlsafe(24)),),
            ),
        ),
        queues=(
            QueueConfig.model_validate(
                {
                    "name": QUEUE,
                    "hours": "office",
                    "callback_offer": True,
                    "callback_offer_after_s": 60,
                    "callback_due_within_s": 86400,
                }
            ),
        ),
        hours=(HoursCreate.model_validate(office),),
        menus=(MenuCreate.model_validate(closed_menu),),
    )


async def seed(url: str, config: TenantConfig) -> None:
    """The worker reads policies from the provisioning database: the same tenant, queue and hours."""
    await db.upgrade(url)
    engine = db.make_engine(url)
    try:
        async with db.session_factory(engine)() as session, session.begin():
            reseller = Reseller(name="Live test reseller")
            session.add(reseller)
            await session.flush()
            tenant = Tenant(
                reseller_id=reseller.id,
                slug=config.slug,
                name=config.name,
                timezone=config.timezone,
                language=config.language,
                limits={},
                outbound_caller_id=config.outbound_caller_id,
            )
            session.add(tenant)
            await session.flush()
            for h in config.hours:
                settings = h.model_dump(mode="json", exclude={"name"})
                session.add(BusinessHours(tenant_id=tenant.id, name=h.name, settings=settings))
            for q in config.queues:
                settings = q.model_dump(mode="json", exclude={"name"})
                session.add(Queue(tenant_id=tenant.id, name=q.name, settings=settings))
    finally:
        await engine.dispose()


def queue_section(path: Path, queue: str) -> dict[str, str]:
    """``key=value`` lines of one queues.conf section."""
    out: dict[str, str] = {}
    inside = False
    for line in path.read_text().splitlines():
        if line.startswith("["):
            inside = line.strip() == f"[{queue}]"
        elif inside and "=" in line and not line.startswith(";"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll a condition (a hang guard, not a timer)."""

    async def holds() -> bool:
        result = check()
        return await result if inspect.isawaitable(result) else bool(result)

    try:
        async with asyncio.timeout(HANG_GUARD_S):
            while not await holds():  # noqa: ASYNC110 - Asterisk state has no change signal
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def getvar(ami: AmiClient, variable: str) -> str:
    reply = await ami.action({"Action": "Getvar", "Variable": variable})
    return reply.get("Value") or ""


async def member(ami: AmiClient, queue: str, iface: str) -> dict[str, str] | None:
    items = await ami.listing({"Action": "QueueStatus", "Queue": queue})
    return next(
        (dict(i) for i in items if i.get("Event") == "QueueMember" and i.get("Location") == iface), None
    )


async def test_callback_dialplan_globals_and_a_failed_agent_leg(
    ami: AmiClient, ami_url: AmiUrl, config_dir: Path, tmp_path: Path
) -> None:
    slug = f"cb{secrets.token_hex(4)}"
    queue, iface = f"{slug}-{QUEUE}", f"Local/{EXT}@{slug}-agents/n"
    ewt, offer = ewt_variable(slug, QUEUE), offer_variable(slug, QUEUE)
    config = callback_tenant(slug)
    url = f"sqlite+aiosqlite:///{tmp_path / 'callbacks.db'}"
    engine = None
    worker: Callbacks | None = None
    bridge: Bridge | None = None
    task: asyncio.Task[None] | None = None
    try:
        # ---- (1) the rendered callback dialplan and queue are what Asterisk loaded
        async with asyncio.timeout(HANG_GUARD_S):
            applied = await apply_tenant(ami, config_dir, config)
        assert applied.status == "ok", applied.error

        dialling = await cli(ami, f"dialplan show {slug}-callback")
        assert dialling.ok, dialling.output
        assert f"[ Context '{slug}-callback' created by 'pbx_config' ]" in dialling.output
        assert "'s' =>" in dialling.output and "'h' =>" in dialling.output, dialling.output
        assert "Dial(PJSIP/${PBX_CALLBACK_NUMBER}@pbx-trunk,30)" in dialling.output, dialling.output
        assert "UserEvent(PbxCallbackResult,CallbackId: ${PBX_CALLBACK_ID}" in dialling.output
        assert "Set(CALLERID(num)=0201234567)" in dialling.output

        exit_ctx = await cli(ami, f"dialplan show {slug}-queue-{QUEUE}-exit")
        assert exit_ctx.ok and "'1' =>" in exit_ctx.output, exit_ctx.output
        assert f"${{GLOBAL({offer})}}" in exit_ctx.output, exit_ctx.output
        assert "Source: queue_offer" in exit_ctx.output, exit_ctx.output

        queue_ctx = await cli(ami, f"dialplan show {slug}-queue-{QUEUE}")
        assert queue_ctx.ok and "Set(__PBX_JOINED=${EPOCH})" in queue_ctx.output, queue_ctx.output
        assert "'rejoin' =>" in queue_ctx.output, queue_ctx.output

        book = await cli(ami, f"dialplan show {slug}-callback-book-{QUEUE}")
        assert book.ok and "Source: after_hours" in book.output, book.output
        menu = await cli(ami, f"dialplan show {slug}-ivr-closed")
        assert menu.ok and f"Goto({slug}-callback-book-{QUEUE},s,1)" in menu.output, menu.output

        shown = await cli(ami, f"queue show {queue}")
        assert shown.output.startswith(f"{queue} has 0 calls"), shown.output
        # `queue show` prints neither context= nor periodic-announce=: what app_queue loaded is
        # the rendered file, whose section must carry both (the exit on digit 1, the repeated offer).
        settings = queue_section(config_dir / slug / "queues.conf", queue)
        assert settings.get("context") == f"{slug}-queue-{QUEUE}-exit", settings
        assert settings.get("periodic-announce") == "pbx-core/callback-offer", settings

        # ---- (2) the globals the dialplan reads: Setvar without Channel, Getvar reads them back
        await ami.action(setvar_action(ewt, "480"))
        await ami.action(setvar_action(offer, "stale"))
        assert await getvar(ami, ewt) == "480"
        assert await getvar(ami, f"GLOBAL({ewt})") == "480"  # as ${GLOBAL(...)} in the dialplan
        assert await getvar(ami, offer) == "stale"

        # ---- (3) a member the worker sees free: no StateInterface, so the Local channel's own
        # device state (NOT_INUSE while the agents exten exists), not the unregistered phone's hint
        await ami.action(
            {"Action": "QueueAdd", "Queue": queue, "Interface": iface, "MemberName": "Live Tester"}
        )
        added = await member(ami, queue, iface)
        assert added is not None and added["Status"] == "1" and added["Paused"] == "0", added

        await seed(url, config)
        engine = db.make_engine(url)
        sessions = db.session_factory(engine)
        store = CallbackStore(sessions)

        started = time.monotonic()

        def clock() -> float:  # runs at real speed (the worker's refresh follows it)
            w = worker
            # Closed once the first attempt has an outcome: a clock that jumped at the Originate
            # would make it look lost at once (dial_timeout_s) before Asterisk could answer.
            done = w is not None and any(c.last_result for c in w.state.callbacks.values())
            return (CLOSED_T if done else OPEN_T) + time.monotonic() - started

        worker = Callbacks(store, sessions, options=WORKER)
        bridge = Bridge(ami_url, ami=WORKER_AMI, tick_s=TICK_S, parts=[worker], clock=clock)
        task = asyncio.create_task(bridge.run())
        w = worker

        async def free() -> bool:
            if task.done():
                task.result()  # a refused login or a crash: raise it here
            q = bridge.state.queues.get(queue)
            return w.ready.is_set() and q is not None and iface in free_agents(q)

        await eventually(free, "the worker's resync showing the member free")

        # The worker keeps the globals fresh: EWT unknown (no call handled yet), offer closed.
        async def refreshed() -> bool:
            return await getvar(ami, ewt) == "" and await getvar(ami, offer) == "0"

        await eventually(refreshed, "the worker's Setvar refresh")

        cb, created = await request_callback(
            sessions, tenant=slug, queue=QUEUE, number=NUMBER, source="rest", requested_at=clock()
        )
        assert created

        async def settled() -> bool:
            if task.done():
                task.result()
            stored = await store.get(cb.id)
            return stored is not None and stored.last_result is not None

        await eventually(settled, "the agent leg's OriginateResponse reaching the worker")
        stored = await store.get(cb.id)
        assert stored is not None
        assert stored.last_result == "agent_unavailable", stored
        assert stored.status is Status.PENDING and stored.attempts == 0, stored  # not the customer's fault
        assert stored.agent is None and stored.originate_id is None
        history = await store.history(cb.id)
        assert [h["change"] for h in history] == ["created", "promised", "dialling", "requeued"], history
        assert w.counters["originates"] == 1 and w.counters["originate_errors"] == 0
        assert w.counters["results"] == 1  # the Failure came in through the worker's own event stream

        # The agent the worker reserved with QueuePause (reason "callback") is given back.
        async def unpaused() -> bool:
            m = await member(ami, queue, iface)
            return m is not None and m["Paused"] == "0"

        await eventually(unpaused, "the agent unpaused after the failed attempt")

        # Many more scheduler rounds (each refresh is 2 Setvars, one per global): the callback
        # waits for the next opening, it is not dialled again.
        rounds = w.counters["setvars"]
        await eventually(lambda: w.counters["setvars"] >= rounds + 10, "more worker rounds")
        assert w.counters["originates"] == 1
        assert not w.state.in_flight()
        assert w.state.callbacks[cb.id].status is Status.PENDING
        again = await store.get(cb.id)
        assert again is not None and again.status is Status.PENDING and again.attempts == 0
    finally:
        if bridge is not None and task is not None:
            bridge.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, HANG_GUARD_S)
        if engine is not None:
            await engine.dispose()
        with contextlib.suppress(AmiError):  # not added when an earlier step failed
            await ami.action({"Action": "QueueRemove", "Queue": queue, "Interface": iface})
        for variable in (ewt, offer):  # globals cannot be deleted over AMI: empty = no offer
            with contextlib.suppress(AmiError):
                await ami.action(setvar_action(variable, ""))
        removed = await remove_tenant(ami, config_dir, slug)
    assert removed.status == "ok", removed.error
    assert not (config_dir / slug).exists()
    assert (await cli(ami, f"queue show {queue}")).output.startswith(f"No such queue: {queue}")
    assert not (await cli(ami, f"dialplan show {slug}-callback")).ok
    assert await getvar(ami, offer) == ""


async def test_the_callback_dialplan_writes_its_astdb_marker_and_dbget_reads_it(
    ami: AmiClient, config_dir: Path
) -> None:
    """Never twice, on a real Asterisk: the rendered `{slug}-callback` context marks the attempt in
    AstDB (under the key passed as PBX_CALLBACK_MARK) and the pbx-core AMI user reads it back with
    DBGet (write class `reporting`), as the bridge does after missing a result. The "agent" is a
    Local channel into the context itself; the customer leg fails at once (no trunk here), so the
    marker ends as that DIALSTATUS, written before the PbxCallbackResult."""
    slug = f"cb{secrets.token_hex(4)}"
    config = callback_tenant(slug)
    oid = f"live{secrets.token_hex(4)}:1"
    mark = marker_key(oid, time.time())
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            applied = await apply_tenant(ami, config_dir, config)
        assert applied.status == "ok", applied.error
        variables = [  # __: inherited by the Local channel's other half, which runs the context
            f"__PBX_CALLBACK_ID=live{oid}", f"__PBX_ORIGINATE_ID={oid}",
            f"__PBX_CALLBACK_NUMBER={NUMBER}", f"__{VAR_MARK}={mark}",
        ]
        await ami.action({
            "Action": "Originate", "Channel": f"Local/s@{slug}-callback", "Application": "Wait",
            "Data": "60", "Async": "true", "Variable": ",".join(variables),
        })

        async def marked() -> str | None:
            try:
                items = await ami.listing({"Action": "DBGet", "Family": MARKER_FAMILY, "Key": mark})
            except AmiActionError as exc:
                assert NOT_FOUND.lower() in str(exc).lower(), exc  # not yet written
                return None
            values = [i.get("Val") for i in items if i.get("Event") == "DBGetResponse"]
            return values[0] if values and values[0] != "started" else None

        async def final_marker() -> bool:
            return await marked() is not None

        await eventually(final_marker, "the attempt's final marker in AstDB")
        value = await marked()
        assert value in ("CHANUNAVAIL", "CONGESTION", "NOANSWER", "BUSY", "INVALIDARGS"), value
        # The bridge's own reading of it.
        reading = lost_dial_result({oid: value}, oid, time.time(), time.time())
        assert reading in ("failed", "no_answer", "busy")
    finally:
        with contextlib.suppress(AmiError):
            await cli(ami, f"database deltree {MARKER_FAMILY} {mark.split('/')[0]}")
        removed = await remove_tenant(ami, config_dir, slug)
    assert removed.status == "ok", removed.error
