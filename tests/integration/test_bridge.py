"""The bridge over real TCP against the simulated Asterisk: AMI client → engine task → sinks,
resync after a reconnect, the compact summary, and ``pbx-core bridge`` as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

import pytest

from pbx_core.ami.client import AmiOptions
from pbx_core.bridge import Bridge, summary_lines
from pbx_core.domain.queue_state import AVAILABLE, PAUSED, VANISHED, Delta, QueueState
from pbx_core.simulator.server import SimMember, SimulatedAsterisk
from tests import conftest

HANG_GUARD_S = 20.0  # only ever a guard against a hang, never a measurement
QUEUE = "t1-support"
AGENT1, AGENT2 = "Local/agent1@agents/n", "Local/agent2@agents/n"

FAST = AmiOptions(
    ping_interval_s=0.5,
    ping_timeout_s=2.0,
    action_timeout_s=5.0,
    reconnect_min_s=0.05,
    reconnect_max_s=0.2,
)


class Collect:
    """A delta sink that keeps everything it is given."""

    def __init__(self) -> None:
        self.deltas: list[Delta] = []

    async def publish(self, deltas: list[Delta]) -> None:
        self.deltas.extend(deltas)

    def types(self) -> list[str]:
        return [d.type for d in self.deltas]


@pytest.fixture
async def ast() -> AsyncIterator[SimulatedAsterisk]:
    async with SimulatedAsterisk() as server:
        yield server


@pytest.fixture
async def bridge(ast: SimulatedAsterisk) -> AsyncIterator[tuple[Bridge, Collect]]:
    sink = Collect()
    b = Bridge(ast.url, ami=FAST, sinks=[sink], tick_s=0.2)
    task = asyncio.create_task(b.run())
    try:
        yield b, sink
    finally:
        b.stop()
        await asyncio.wait_for(task, HANG_GUARD_S)


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    await conftest.wait_until(predicate, what, limit_s=HANG_GUARD_S)


def consistent(q: QueueState) -> bool:
    return q.counters.is_consistent(len(q.callers))


async def test_a_stop_that_comes_before_the_bridge_task_first_runs_still_stops_it(
    ast: SimulatedAsterisk,
) -> None:
    """`demo` on a busy port stopped its bridge right after creating the task; run() then cleared
    the stop and the demo hung forever."""
    b = Bridge(ast.url, ami=FAST, tick_s=0.2)
    task = asyncio.create_task(b.run())
    b.stop()  # before the task has run a single step
    done, _ = await asyncio.wait({task}, timeout=HANG_GUARD_S)
    assert task in done and task.exception() is None


# --------------------------------------------------------------------------- live events


async def test_live_events_drive_the_engine_and_reach_the_sink(
    ast: SimulatedAsterisk, bridge: tuple[Bridge, Collect]
) -> None:
    b, sink = bridge
    ast.queue(QUEUE)
    await wait_until(lambda: b.engine.counters.snapshots >= 1, "the first resync")

    ast.add_member(QUEUE, SimMember(AGENT1, "agent1"))
    ast.add_member(QUEUE, SimMember(AGENT2, "agent2"))
    ast.pause_member(QUEUE, AGENT2, True, "lunch")
    x = ast.join(QUEUE, "0201234567", "Zoë Özdemir-Müller")
    y = ast.join(QUEUE, "0207654321", "Jan")
    z = ast.join(QUEUE, "0209999999", "Piet")
    ast.leave(QUEUE, x.uniqueid, abandon=True)
    ast.leave(QUEUE, y.uniqueid)  # unanswered, not hung up: an other exit
    await wait_until(
        lambda: QUEUE in b.state.queues and b.state.queues[QUEUE].counters.other_exits == 1, "the leave"
    )

    q = b.state.queues[QUEUE]
    assert q.tenant == "t1"
    assert list(q.callers) == [z.uniqueid] and q.callers[z.uniqueid].position == 1
    c = q.counters
    assert (c.offered, c.abandoned, c.answered, c.other_exits) == (3, 1, 0, 1)
    assert [a.number for a in q.abandoned] == ["0201234567"]
    assert q.abandoned[0].name == "Zoë Özdemir-Müller"
    assert q.members[AGENT1].state == AVAILABLE
    assert (q.members[AGENT2].state, q.members[AGENT2].paused_reason) == (PAUSED, "lunch")
    assert consistent(q)

    ast.pause_member(QUEUE, AGENT2, False)
    ast.remove_member(QUEUE, AGENT1)
    await wait_until(lambda: AGENT1 not in q.members, "agent1 removed")
    assert q.members[AGENT2].state == AVAILABLE and not q.members[AGENT2].paused

    types = sink.types()
    for kind in (
        "queue.resynced",
        "agent.added",
        "agent.paused",
        "caller.joined",
        "caller.abandoned",
        "caller.left",
        "agent.unpaused",
        "agent.removed",
        "queue.stats",
    ):
        assert kind in types, kind
    joined = [d.data["uniqueid"] for d in sink.deltas if d.type == "caller.joined"]
    assert joined == [x.uniqueid, y.uniqueid, z.uniqueid]
    assert all(d.tenant == "t1" and d.queue == QUEUE for d in sink.deltas)


async def test_summary_lines_are_compact_and_readable(
    ast: SimulatedAsterisk, bridge: tuple[Bridge, Collect]
) -> None:
    b, _ = bridge
    ast.add_member(QUEUE, SimMember(AGENT1, "agent1"), emit=False)
    ast.add_member(QUEUE, SimMember(AGENT2, "agent2", paused=True, reason="lunch"), emit=False)
    ast.join(QUEUE, "0201", waited_s=75, emit=False)
    ast.queue("t2-sales", "ringall", 60)
    await wait_until(lambda: b.engine.counters.snapshots >= 1, "the first resync")

    lines = summary_lines(b.state, b.stats())
    assert len(lines) == 3  # the connection, then one line per queue
    assert lines[0].startswith("AMI up") and "connects 1" in lines[0]
    support = lines[1]
    assert support.startswith("t1/t1-support: waiting 1 (longest 7")  # 75 s and counting
    assert "1 available" in support and "1 paused" in support
    assert "offered 1" in support and "SL -" in support and "(30s)" in support
    assert lines[2].startswith("t2/t2-sales: waiting 0 ·") and "(60s)" in lines[2]
    assert all(len(line) <= 160 and "\n" not in line for line in lines)
    assert summary_lines(type(b.state)()) == ["no queues seen yet"]


# --------------------------------------------------------------------------- resync


async def test_resync_after_reconnect_keeps_real_waits_and_drops_vanished_callers(
    ast: SimulatedAsterisk, bridge: tuple[Bridge, Collect]
) -> None:
    b, sink = bridge
    ast.add_member(QUEUE, SimMember(AGENT1, "agent1", paused=True, reason="lunch", last_pause=1), emit=False)
    ast.add_member(QUEUE, SimMember(AGENT2, "agent2"), emit=False)
    stays = ast.join(QUEUE, "0201111111", "Anna", waited_s=40, emit=False)
    goes = ast.join(QUEUE, "0202222222", "Bram", waited_s=10, emit=False)
    await wait_until(lambda: b.engine.counters.snapshots >= 1, "the first resync")

    q = b.state.queues[QUEUE]
    assert list(q.callers) == [stays.uniqueid, goes.uniqueid]
    # The engine's join time comes from Asterisk's Wait field, not from when we connected.
    assert abs(q.callers[stays.uniqueid].joined_at - stays.joined_at) < 2.0
    assert abs(q.callers[goes.uniqueid].joined_at - goes.joined_at) < 2.0
    assert (q.members[AGENT1].state, q.members[AGENT1].paused_reason) == (PAUSED, "lunch")
    first_join = q.callers[stays.uniqueid].joined_at

    # The network goes; while we are away one caller leaves, one joins, agent2 pauses.
    ast.drop()
    ast.leave(QUEUE, goes.uniqueid, emit=False)
    late = ast.join(QUEUE, "0203333333", "Cor", waited_s=5, emit=False)
    ast.pause_member(QUEUE, AGENT2, True, "training", emit=False)
    await wait_until(lambda: ast.logins == 2 and b.engine.counters.snapshots >= 2, "reconnect + resync")

    assert list(q.callers) == [stays.uniqueid, late.uniqueid]
    assert q.callers[stays.uniqueid].joined_at == first_join  # its real wait goes on
    assert abs(q.callers[late.uniqueid].joined_at - late.joined_at) < 2.0
    assert [c.position for c in q.callers.values()] == [1, 2]
    assert q.outcomes[goes.uniqueid] == VANISHED
    c = q.counters
    assert (c.offered, c.other_exits, c.abandoned, c.answered) == (3, 1, 0, 0)
    assert consistent(q)
    assert (q.members[AGENT1].state, q.members[AGENT1].paused_reason) == (PAUSED, "lunch")
    assert (q.members[AGENT2].state, q.members[AGENT2].paused_reason) == (PAUSED, "training")
    resynced = [d for d in sink.deltas if d.type == "queue.resynced"]
    assert len(resynced) >= 2
    assert [w["uniqueid"] for w in resynced[-1].data["waiting"]] == [stays.uniqueid, late.uniqueid]
    assert b.stats()["ami"]["disconnects"] == 1


# --------------------------------------------------------------------------- CLI


def cli_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env["PBX_AMI_URL"] = url
    return env


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pbx_core",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(HANG_GUARD_S * 2):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_bridge_help() -> None:
    code, out, _ = await run_cli("bridge", "--help")
    assert code == 0
    assert "PBX_AMI_URL" in out and "--summary-every" in out


async def test_cli_bridge_wrong_secret_exits_with_one_line(ast: SimulatedAsterisk) -> None:
    code, _, err = await run_cli("bridge", env=cli_env(f"ami://pbx:wrong@127.0.0.1:{ast.port}"))
    assert code == 1
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "login refused" in line]
    assert errors == [
        f"pbx-core bridge: AMI login refused for user 'pbx' at 127.0.0.1:{ast.port}: Authentication failed"
    ]
    assert "wrong" not in err


async def test_cli_bridge_without_url_is_a_config_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    code, _, err = await run_cli("bridge", env=env)
    assert code == 2 and "PBX_AMI_URL is not set" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_cli_bridge_logs_a_summary_and_stops_cleanly_on_a_signal(
    ast: SimulatedAsterisk, sig: signal.Signals
) -> None:
    ast.add_member(QUEUE, SimMember(AGENT1, "agent1"), emit=False)
    ast.join(QUEUE, "0201", waited_s=3, emit=False)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pbx_core",
        "bridge",
        "--summary-every",
        "0.2",
        env=cli_env(f"ami://pbx:s3cret@127.0.0.1:{ast.port}"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            # Two rounds of the periodic summary, so we know it repeats.
            while sum("t1/t1-support: waiting 1" in line for line in seen) < 2:
                line = (await proc.stderr.readline()).decode()
                assert line, f"bridge exited early: {seen}"
                seen.append(line.rstrip("\n"))
        proc.send_signal(sig)
        async with asyncio.timeout(HANG_GUARD_S):
            rest = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, rest
    assert "Traceback" not in rest
    summaries = [line for line in seen if "t1/t1-support" in line]
    assert all(line.count("t1/t1-support") == 1 for line in summaries)  # one line per queue
    assert ast.logins == 1
    # It said goodbye to Asterisk instead of just vanishing.
    assert any(a.get("Action") == "Logoff" for a in ast.sessions[0].actions)
