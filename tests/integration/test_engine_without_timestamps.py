"""The live engine on a real Asterisk without ``timestampevents = yes``: the recording, stripped
of its Timestamp headers, played over real TCP by a stub AMI server. Events are stamped with
the live clock (Asterisk's as learnt from its Ping replies, else ours), never the epoch."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from pbx_core.ami.client import AmiOptions
from pbx_core.bridge import Bridge
from pbx_core.domain.queue_state import AbandonedCaller
from tests import conftest
from tests.conftest import fixture_bytes
from tests.integration.ami_stub import StubAsterisk, StubSession

HANG_GUARD_S = 20.0
OPTIONS = AmiOptions(ping_interval_s=0.2, ping_timeout_s=2.0, action_timeout_s=5.0, event_filter=False)
TZ = ZoneInfo("Europe/Amsterdam")


def _recording_after_login() -> bytes:
    data = fixture_bytes("abandoned_no_timestamps")
    # The recorder's own session (banner, login reply, its actions' replies) is not ours to replay.
    start = data.index(b"Event: Newchannel")
    return data[start:]


async def _play(session: StubSession) -> None:
    await asyncio.sleep(0.05)  # after the client's resync request, as on a live PBX
    session.send(_recording_after_login())
    await session.drain()


async def _play_after_a_ping(session: StubSession) -> None:
    await conftest.wait_until(
        lambda: any(a.get("Action") == "Ping" for a in session.actions), "a Ping", limit_s=HANG_GUARD_S
    )
    await _play(session)


async def _abandoned_caller(ahead_s: float | None) -> tuple[AbandonedCaller, str, float, float]:
    if ahead_s is None:
        ast = StubAsterisk(on_login=_play)
    else:
        ast = StubAsterisk(on_login=_play_after_a_ping, ping_timestamp=lambda: time.time() + ahead_s)
    async with ast:
        bridge = Bridge(ast.url, ami=OPTIONS, tick_s=0.2)
        before = time.time()
        task = asyncio.create_task(bridge.run())
        try:
            await conftest.wait_until(
                lambda: "t1-support" in bridge.state.queues and bridge.state.queues["t1-support"].abandoned,
                "the recorded abandon",
                limit_s=HANG_GUARD_S,
            )
        finally:
            bridge.stop()
            await asyncio.wait_for(task, HANG_GUARD_S)
        after = time.time()
        q = bridge.state.queues["t1-support"]
        return q.abandoned[0], q.day, before, after


async def test_events_without_timestamps_are_stamped_with_the_live_clock() -> None:
    caller, day, before, after = await _abandoned_caller(None)
    assert (caller.number, caller.waited_s) == ("0201234567", 6)
    assert before <= caller.at <= after  # our clock: Asterisk's was never seen
    assert day == datetime.fromtimestamp(caller.at, TZ).date().isoformat()


async def test_asterisks_clock_learnt_from_its_ping_replies_stamps_them() -> None:
    ahead = 86400.0  # an Asterisk whose clock is a day ahead of ours
    caller, day, before, after = await _abandoned_caller(ahead)
    assert before + ahead - 60 <= caller.at <= after + ahead  # its clock, not ours
    assert day == datetime.fromtimestamp(caller.at, TZ).date().isoformat()
