"""Never twice, whatever the crash timing (issue 11 item 1): a real ``pbx-core bridge --callbacks``
process is SIGKILLed 0.3 s after it sends an Originate, the call plays on in the simulated
Asterisk while it is down, and a new process starts at several moments: while the agent leg
rings, while the customer talks, and 75 s later, after the call ended and its result event
went to nobody. Exactly one Originate, and the answered callback is completed.

Real TCP to the simulator, a real SQLite file, real processes; the simulator's clock is stepped
by the test (the bridge learns it from the events' timestamps).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx_core.callbacks.core.model import Status
from pbx_core.callbacks.store import CallbackStore, request_callback
from pbx_core.provisioning import db
from pbx_core.provisioning.schemas import QueueIn
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import CallbackPlan, SimMember, SimulatedAsterisk
from tests.integration.test_callbacks_worker import ANN, NUMBER, QUEUE, T0, seed

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 60.0


async def start_bridge(sim: SimulatedAsterisk, database_url: str, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env |= {"PBX_AMI_URL": sim.url_text, "PBX_DATABASE_URL": database_url, "PBX_AMI_PING_INTERVAL_S": "1"}
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbx_core", "bridge", "--callbacks", "--summary-every", "0",
            cwd=ROOT, env=env, stdout=out, stderr=out,
        )


def originates(sim: SimulatedAsterisk) -> list[dict[str, str]]:
    return [a for s in sim.sessions for a in s.actions if a.get("Action", "").lower() == "originate"]


async def until(
    predicate: object, what: str, sim: SimulatedAsterisk | None = None, step_s: float = 0.0
) -> None:
    """Poll (moving the simulated clock on by ``step_s`` each round); a hang guard, not a timer."""
    async with asyncio.timeout(HANG_GUARD_S):
        while not await _holds(predicate):
            if sim is not None and step_s:
                sim.clock.advance(step_s)
            await asyncio.sleep(0.05)


async def _holds(predicate: object) -> bool:
    result = predicate()  # type: ignore[operator]
    if asyncio.iscoroutine(result):
        result = await result
    return bool(result)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[SimulatedAsterisk, str, CallbackStore]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'callbacks.db'}"
    await seed(url, QueueIn.model_validate({"callback_retry_s": 30, "callback_max_attempts": 3}))
    sim = SimulatedAsterisk(clock=SimClock.stepped(T0))
    sim.noise = False
    sim.queue(QUEUE)
    sim.add_member(QUEUE, SimMember(ANN, "201"), emit=False)
    sim.default_callback_plan = CallbackPlan(agent_ring_s=1, ring_s=2, talk_s=30)
    engine = db.make_engine(url)
    await sim.start()
    try:
        yield sim, url, CallbackStore(db.session_factory(engine))
    finally:
        await sim.close()
        await engine.dispose()


@pytest.mark.parametrize(
    ("restart_after_s", "call_state"),
    [(1.5, "agent answered, customer ringing"), (10.0, "customer talking"), (75.0, "call ended")],
)
async def test_sigkill_after_originate_never_dials_twice(
    world: tuple[SimulatedAsterisk, str, CallbackStore],
    tmp_path: Path,
    restart_after_s: float,
    call_state: str,
) -> None:
    sim, url, store = world
    log = tmp_path / "bridge.log"
    first = await start_bridge(sim, url, log)
    second: asyncio.subprocess.Process | None = None
    try:
        await until(lambda: sim.logins >= 1 and QUEUE in sim.queues, "the bridge logged in")
        async with db.open_sessions(url) as sessions:
            cb, _ = await request_callback(
                sessions, tenant="acme", queue="support", number=NUMBER, source="rest",  # type: ignore[arg-type]
                requested_at=sim.now(),
            )
        await until(lambda: len(originates(sim)) == 1, "the bridge dialled", sim, step_s=0.5)
        dialled_at = sim.now()
        await asyncio.sleep(0.3)
        first.send_signal(signal.SIGKILL)  # no goodbye: mid-flight, as a crash
        assert await asyncio.wait_for(first.wait(), HANG_GUARD_S) == -signal.SIGKILL
        assert (await store.get(cb.id)).status is Status.DIALLING  # type: ignore[union-attr]

        # The call plays on while no bridge watches, up to the restart.
        while sim.now() < dialled_at + restart_after_s:
            sim.clock.advance(min(0.5, dialled_at + restart_after_s - sim.now()))
            await asyncio.sleep(0.01)
        if restart_after_s >= 75:
            assert not sim.callback_calls, "the call ended before the restart"
        else:
            assert sim.callback_calls, f"the call is up ({call_state}) at the restart"

        logins = sim.logins
        second = await start_bridge(sim, url, log)
        await until(lambda: sim.logins > logins, "the new bridge logged in")

        async def settled() -> bool:
            stored = await store.get(cb.id)
            return stored is not None and stored.status is not Status.DIALLING

        await until(settled, "the callback's outcome", sim, step_s=1.0)
        done = await store.get(cb.id)
        assert done is not None, log.read_text()
        outcome = (done.status, done.last_result, done.attempts)
        assert outcome == (Status.COMPLETED, "answered", 1), log.read_text()
        for _ in range(40):  # minutes more of simulated time: nothing is dialled again
            sim.clock.advance(15)
            await asyncio.sleep(0.02)
        assert len(originates(sim)) == 1, log.read_text()
        history = [h["change"] for h in await store.history(cb.id)]
        assert history == ["created", "promised", "dialling", "completed"], history
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), HANG_GUARD_S)
