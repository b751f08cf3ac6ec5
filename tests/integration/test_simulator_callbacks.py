"""Simulated callers take the callback offer over real TCP, as the contract's dialplan makes them:
a client sets the offer globals with AMI Setvar (no Channel: global), callers of that queue press 1
and leave with a ``UserEvent: PbxCallbackRequest``, and the real bridge counts them as other exits,
never as abandons."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from pbx_core.bridge import Bridge
from pbx_core.ingest import Ingest
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import SimulatedAsterisk
from pbx_core.simulator.traffic import Traffic, TrafficConfig
from tests.integration.test_bridge import FAST, HANG_GUARD_S, consistent, wait_until
from tests.integration.test_simulator import Frame, RawAmi, parse

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam")).timestamp()


def frames_of(data: bytes) -> list[Frame]:
    return [parse(chunk) for chunk in data.split(b"\r\n\r\n") if b": " in chunk]


async def reply_to(ami: RawAmi, action_id: str) -> Frame:
    return (await ami.until(lambda f: f.get("ActionID") == action_id and "Response" in f))[-1]


async def test_setvar_is_answered_as_asterisk_answers_it() -> None:
    async with SimulatedAsterisk(clock=SimClock.stepped(T0)) as ast, asyncio.timeout(HANG_GUARD_S):
        ami = await RawAmi.open(ast.host, ast.port)
        assert (await ami.login())["Response"] == "Success"
        aid = await ami.send("Setvar", ("Variable", "PBX_EWT_acme_support"), ("Value", "240"))
        seen = await ami.until(lambda f: f.get("Event") == "VarSet")
        reply = next(f for f in seen if f.get("ActionID") == aid)
        assert (reply["Response"], reply["Message"]) == ("Success", "Variable Set")
        assert (seen[-1]["Channel"], seen[-1]["Variable"], seen[-1]["Value"]) == (
            "none",
            "PBX_EWT_acme_support",
            "240",
        )
        assert ast.globals == {"PBX_EWT_acme_support": "240"}

        aid = await ami.send("Setvar", ("Variable", "GLOBAL(PBX_OFFER_acme_support)"), ("Value", "1"))
        assert (await reply_to(ami, aid))["Message"] == "Variable Set"
        assert ast.offer_open("acme-support")
        aid = await ami.send("Setvar", ("Variable", "PBX_OFFER_acme_support"), ("Value", ""))
        assert (await reply_to(ami, aid))["Response"] == "Success"
        assert not ast.offer_open("acme-support") and "PBX_OFFER_acme_support" not in ast.globals

        # Getvar without a Channel reads a global back (the live suite checks the same on Asterisk).
        aid = await ami.send("Getvar", ("Variable", "GLOBAL(PBX_EWT_acme_support)"))
        reply = await reply_to(ami, aid)
        assert (reply["Response"], reply["Value"]) == ("Success", "240")
        aid = await ami.send("Getvar", ("Variable", "PBX_OFFER_acme_support"))
        assert (await reply_to(ami, aid))["Value"] == ""

        aid = await ami.send("Setvar", ("Value", "1"))
        assert (await reply_to(ami, aid))["Message"] == "No variable specified"
        aid = await ami.send(
            "Setvar", ("Channel", "PJSIP/nobody-00000001"), ("Variable", "X"), ("Value", "1")
        )
        assert (await reply_to(ami, aid))["Message"] == "No such channel"
        await ami.close()


async def test_callers_take_the_offer_and_the_bridge_counts_other_exits_not_abandons() -> None:
    async with SimulatedAsterisk(clock=SimClock.stepped(T0)) as ast:
        # One busy agent per queue: callers wait long enough to hear the offer. Only t1 offers.
        config = TrafficConfig(seed=31, tenants=2, queues=1, agents=1, rate=150, profile="flat")
        traffic = Traffic(ast, config)
        traffic.setup()
        bridge = Bridge(ast.url, ami=FAST, tick_s=0.05)
        task = asyncio.create_task(bridge.run())
        try:
            await wait_until(lambda: bridge.engine.counters.snapshots >= 1, "the bridge's first resync")
            async with asyncio.timeout(HANG_GUARD_S):
                ami = await RawAmi.open(ast.host, ast.port)
                assert (await ami.login())["Response"] == "Success"
                for variable, value in (("PBX_EWT_t1_support", "300"), ("PBX_OFFER_t1_support", "1")):
                    aid = await ami.send("Setvar", ("Variable", variable), ("Value", value))
                    reply = await reply_to(ami, aid)
                    assert (reply["Response"], reply["Message"]) == ("Success", "Variable Set")
                captured = bytearray()

                async def read_all() -> None:
                    while chunk := await ami.reader.read(65536):
                        captured.extend(chunk)

                reading = asyncio.create_task(read_all())
                await traffic.advance_async(3600)
                await traffic.drain_calls()
                await ami.send("Logoff")
                await reading  # EOF: the server hangs up after Goodbye
                await ami.close()

            frames = frames_of(bytes(captured))
            joins = {f["Uniqueid"]: f for f in frames if f.get("Event") == "QueueCallerJoin"}
            abandons = {f["Uniqueid"] for f in frames if f.get("Event") == "QueueCallerAbandon"}
            requests = [f for f in frames if f.get("Event") == "UserEvent"]
            t1, t2 = ast.truth["t1-support"], ast.truth["t2-support"]
            assert len(requests) == t1.callback_requests > 10
            assert t2.callback_requests == 0 and t2.abandoned > 0  # no offer there: they abandon
            for ev in requests:
                uid = ev["Uniqueid"]
                join = joins[uid]
                assert ev["Privilege"] == "user,all" and ev["UserEvent"] == "PbxCallbackRequest"
                assert (ev["Tenant"], ev["Queue"], ev["Source"]) == ("t1", "support", "queue_offer")
                assert join["Queue"] == "t1-support" and ev["Number"] == join["CallerIDNum"]
                assert 0 <= float(join["Timestamp"]) - int(ev["JoinedAt"]) < 2  # ${EPOCH} at the join
                assert uid not in abandons

            # The engine, fed the same bytes, and the live bridge agree: other exits, not abandons.
            ingest = Ingest()
            ingest.feed(bytes(captured))
            await wait_until(
                lambda: (
                    all(
                        not q.callers and q.counters.offered == ast.truth[name].offered
                        for name, q in bridge.state.queues.items()
                    )
                    and set(bridge.state.queues) == set(ast.truth)
                ),
                "the queues to drain in the bridge",
            )
            taken = {ev["Uniqueid"] for ev in requests}
            for name, truth in ast.truth.items():
                want = (truth.offered, truth.answered, truth.abandoned, truth.callback_requests)
                for q in (ingest.state.queues[name], bridge.state.queues[name]):
                    c = q.counters
                    assert (c.offered, c.answered, c.abandoned, c.other_exits) == want, name
                    assert consistent(q), name
                    assert not taken & {a.uniqueid for a in q.abandoned}, name
        finally:
            bridge.stop()
            await asyncio.wait_for(task, HANG_GUARD_S)
