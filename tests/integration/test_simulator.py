"""The simulator over real TCP: login, traffic, QueueStatus, Originate, Filter, and end to end:
the byte stream a client receives, through the engine, equals the simulator's ground truth."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pbx_core.ingest import Ingest
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import SimulatedAsterisk
from pbx_core.simulator.simulation import Simulation, SimulationConfig
from pbx_core.simulator.traffic import Traffic, TrafficConfig
from pbx_core.simulator.world import SimMember
from tests.conftest import FIXTURES

HANG_GUARD_S = 30
TZ = ZoneInfo("Europe/Amsterdam")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=TZ).timestamp()

Frame = dict[str, str]


def parse(raw: bytes) -> Frame:
    out: Frame = {}
    for line in raw.decode("utf-8").split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            out.setdefault(key, value)
    return out


def shape(raw: bytes) -> list[str]:
    return [ln.split(": ", 1)[0] for ln in raw.decode("utf-8").split("\r\n") if ": " in ln]


class RawAmi:
    """A bare asyncio socket speaking AMI: no code of ours between the test and the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.banner = b""
        self._n = 0

    @classmethod
    async def open(cls, host: str, port: int) -> RawAmi:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        ami = cls(reader, writer)
        ami.banner = await reader.readline()
        return ami

    async def send(self, action: str, *headers: tuple[str, str]) -> str:
        self._n += 1
        aid = f"t{self._n}"
        lines = [("Action", action), ("ActionID", aid), *headers]
        self.writer.write("".join(f"{k}: {v}\r\n" for k, v in lines).encode() + b"\r\n")
        await self.writer.drain()
        return aid

    async def raw_frame(self) -> bytes:
        return await self.reader.readuntil(b"\r\n\r\n")

    async def frame(self) -> Frame:
        return parse(await self.raw_frame())

    async def until(self, pred: object) -> list[Frame]:
        """Frames up to and including the first one that satisfies ``pred``."""
        seen = []
        while True:
            f = await self.frame()
            seen.append(f)
            if pred(f):  # type: ignore[operator]
                return seen

    async def login(self, user: str = "pbx", secret: str = "s3cret") -> Frame:
        await self.send("Login", ("Username", user), ("Secret", secret))
        return await self.frame()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
async def world() -> AsyncIterator[SimulatedAsterisk]:
    async with SimulatedAsterisk(clock=SimClock.stepped(T0)) as ast:
        yield ast


async def test_login_sends_what_asterisk_22_sends(world: SimulatedAsterisk) -> None:
    async with asyncio.timeout(HANG_GUARD_S):
        ami = await RawAmi.open(world.host, world.port)
        assert ami.banner == b"Asterisk Call Manager/11.0.0\r\n"
        reply = await ami.login()
        assert reply["Response"] == "Success" and reply["Message"] == "Authentication accepted"
        booted, auth = await ami.raw_frame(), await ami.raw_frame()
        recorded = (FIXTURES / "answered.ami").read_bytes().split(b"\r\n\r\n")
        rec_booted = next(r for r in recorded if b"Event: FullyBooted" in r)
        rec_auth = next(r for r in recorded if b"Event: SuccessfulAuth" in r)
        assert shape(booted) == shape(rec_booted)
        assert shape(auth) == shape(rec_auth)
        assert parse(auth)["Timestamp"] == f"{T0:.6f}"  # the simulator's clock, not the wall clock
        await ami.send("Logoff")
        assert (await ami.frame())["Response"] == "Goodbye"
        assert await ami.reader.read() == b""  # Asterisk closes after Logoff
        await ami.close()


async def test_wrong_secret_is_refused_and_the_connection_closed(world: SimulatedAsterisk) -> None:
    async with asyncio.timeout(HANG_GUARD_S):
        ami = await RawAmi.open(world.host, world.port)
        reply = await ami.login(secret="nope")
        assert reply == {"Response": "Error", "ActionID": "t1", "Message": "Authentication failed"}
        assert await ami.reader.read() == b""
        assert world.logins == 0
        await ami.close()


async def test_traffic_events_reach_a_client_with_the_virtual_clock(world: SimulatedAsterisk) -> None:
    traffic = Traffic(world, TrafficConfig(seed=5))
    traffic.setup()
    async with asyncio.timeout(HANG_GUARD_S):
        ami = await RawAmi.open(world.host, world.port)
        await ami.login()
        await traffic.advance_async(1800)
        await ami.send("Ping")
        frames = await ami.until(lambda f: f.get("Ping") == "Pong")
        await ami.close()
    events = [f for f in frames if "Event" in f]
    names = {f["Event"] for f in events}
    assert {"QueueCallerJoin", "AgentCalled", "QueueCallerLeave", "AgentConnect", "VarSet"} <= names
    stamps = [float(f["Timestamp"]) for f in events if "Timestamp" in f and f["Event"] != "SuccessfulAuth"]
    assert stamps == sorted(stamps) and stamps[0] >= T0 and stamps[-1] <= T0 + 1800 + 1
    assert float(frames[-1]["Timestamp"]) == pytest.approx(T0 + 1800)  # Ping answers with the same clock


async def test_queue_status_lists_the_world_with_waits_from_its_clock(world: SimulatedAsterisk) -> None:
    world.queue("t1-support", "rrmemory", 30)
    world.queue("t2-sales", "ringall", 60)
    world.add_member("t1-support", SimMember("Local/t1-201@agents/n", "Anna Bakker", "Custom:t1-201"))
    world.add_member("t1-support", SimMember("Local/t1-202@agents/n", "Bram Bos", "Custom:t1-202"))
    world.pause_member("t1-support", "Local/t1-202@agents/n", True, "lunch")
    zoe = world.join("t1-support", "0201234567", "Zoë Özdemir-Müller", waited_s=42)
    jan = world.join("t1-support", "0612345678", "Jan Jansen")
    world.clock.advance(37)
    async with asyncio.timeout(HANG_GUARD_S):
        ami = await RawAmi.open(world.host, world.port)
        await ami.login()
        aid = await ami.send("QueueStatus")
        frames = await ami.until(lambda f: f.get("Event") == "QueueStatusComplete")
        await ami.close()
    listing = [f for f in frames if f.get("ActionID") == aid]
    assert listing[0]["Response"] == "Success" and listing[0]["EventList"] == "start"
    assert listing[-1]["ListItems"] == str(len(listing) - 2)
    params = {f["Queue"]: f for f in listing if f.get("Event") == "QueueParams"}
    assert set(params) == set(world.queues)
    assert (params["t2-sales"]["Strategy"], params["t2-sales"]["ServiceLevel"]) == ("ringall", "60")
    members = {f["Location"]: f for f in listing if f.get("Event") == "QueueMember"}
    assert {k: (v["Paused"], v["PausedReason"]) for k, v in members.items()} == {
        "Local/t1-201@agents/n": ("0", ""),
        "Local/t1-202@agents/n": ("1", "lunch"),
    }
    entries = [f for f in listing if f.get("Event") == "QueueEntry"]
    assert [(e["Uniqueid"], e["CallerIDName"], e["Position"], e["Wait"]) for e in entries] == [
        (zoe.uniqueid, "Zoë Özdemir-Müller", "1", "79"),
        (jan.uniqueid, "Jan Jansen", "2", "37"),
    ]


async def test_originate_queues_a_caller_like_asterisk(world: SimulatedAsterisk) -> None:
    world.queue("t1-support")
    async with asyncio.timeout(HANG_GUARD_S):
        ami = await RawAmi.open(world.host, world.port)
        await ami.login()
        aid = await ami.send(
            "Originate",
            ("Channel", "Local/wait@patience"),
            ("Context", "callers"),
            ("Exten", "in"),
            ("Priority", "1"),
            ("CallerID", '"Jan Jansen" <0612345678>'),
            ("Variable", "QNAME=t1-support"),
            ("Variable", "__PATIENCE=30"),
            ("Async", "true"),
        )
        frames = await ami.until(lambda f: f.get("Event") == "QueueCallerJoin")
        await ami.close()
    reply = next(f for f in frames if f.get("ActionID") == aid and "Response" in f and "Event" not in f)
    assert (reply["Response"], reply["Message"]) == ("Success", "Originate successfully queued")
    response = next(f for f in frames if f.get("Event") == "OriginateResponse")
    assert (response["ActionID"], response["Response"], response["Reason"]) == (aid, "Success", "4")
    join = frames[-1]
    assert (join["Queue"], join["CallerIDNum"], join["CallerIDName"]) == (
        "t1-support",
        "0612345678",
        "Jan Jansen",
    )
    assert join["Uniqueid"] == response["Uniqueid"]
    assert [c.number for c in world.queues["t1-support"].callers] == ["0612345678"]
    assert world.truth["t1-support"].offered == 1


async def test_originated_callers_are_driven_by_the_traffic(world: SimulatedAsterisk) -> None:
    traffic = Traffic(world, TrafficConfig(seed=1, tenants=1, queues=1, agents=1, rate=0))
    traffic.setup()
    async with asyncio.timeout(HANG_GUARD_S):
        ami = await RawAmi.open(world.host, world.port)
        await ami.login()
        await ami.send("Originate", ("Channel", "Local/wait@patience"), ("CallerID", "<0201111111>"),
                       ("Variable", "QNAME=t1-support,PATIENCE=600"))  # fmt: skip
        await ami.until(lambda f: f.get("Event") == "QueueCallerJoin")
        await traffic.drain_calls()
        await ami.close()
    truth = world.truth["t1-support"]
    assert truth.offered == 1 and truth.answered + truth.abandoned == 1


async def test_filter_limits_the_stream_like_asterisk(world: SimulatedAsterisk) -> None:
    traffic = Traffic(world, TrafficConfig(seed=3))
    traffic.setup()
    async with asyncio.timeout(HANG_GUARD_S):
        ami = await RawAmi.open(world.host, world.port)
        await ami.login()
        aid = await ami.send(
            "Filter", ("Operation", "Add"), ("Filter", "Event: (QueueCallerJoin|AgentConnect)")
        )
        reply = (await ami.until(lambda f: f.get("ActionID") == aid))[-1]
        assert (reply["Response"], reply["Message"]) == ("Success", "Filter Added")
        await traffic.advance_async(1800)
        await ami.send("Ping")
        frames = await ami.until(lambda f: f.get("Ping") == "Pong")
        await ami.close()
    events = [
        f["Event"] for f in frames if "Event" in f and f["Event"] not in ("FullyBooted", "SuccessfulAuth")
    ]
    assert events and set(events) == {"QueueCallerJoin", "AgentConnect"}


async def test_end_to_end_engine_equals_ground_truth_over_tcp(world: SimulatedAsterisk) -> None:
    """A seeded run: the raw bytes a TCP client receives, fed through Ingest, give per queue the
    same offered/answered/abandoned/short-abandoned counts as the simulator's own truth."""
    traffic = Traffic(world, TrafficConfig(seed=2026, tenants=2, queues=2, agents=3))
    traffic.setup()
    captured = bytearray()
    async with asyncio.timeout(HANG_GUARD_S):
        reader, writer = await asyncio.open_connection(world.host, world.port)
        captured.extend(await reader.readline())  # the banner
        writer.write(b"Action: Login\r\nUsername: pbx\r\nSecret: s3cret\r\n\r\n")
        captured.extend(await reader.readuntil(b"\r\n\r\n"))  # logged in: events flow from now on

        async def read_all() -> None:
            while chunk := await reader.read(65536):
                captured.extend(chunk)

        reading = asyncio.create_task(read_all())
        await traffic.advance_async(2.5 * 3600)
        await traffic.drain_calls()
        writer.write(b"Action: Logoff\r\n\r\n")
        await reading  # ends at EOF: the server hangs up after Goodbye
        writer.close()
    ingest = Ingest()
    ingest.feed(bytes(captured))
    assert (
        set(ingest.state.queues) == set(world.truth) == {"t1-support", "t1-sales", "t2-support", "t2-sales"}
    )
    for name, truth in world.truth.items():
        c = ingest.state.queues[name].counters
        assert (c.offered, c.answered, c.abandoned, c.short_abandoned) == (
            truth.offered,
            truth.answered,
            truth.abandoned,
            truth.short_abandoned,
        ), name
        assert truth.offered > 20 and truth.answered > 0
        assert not ingest.state.queues[name].callers
    assert sum(t.abandoned for t in world.truth.values()) > 0


async def test_simulation_runs_in_real_time_scaled_by_speed() -> None:
    cfg = SimulationConfig(
        traffic=TrafficConfig(seed=4, tenants=1, queues=1, agents=2, rate=3600, profile="flat"),
        speed=600.0,
        start=T0,
        port=0,
    )
    async with asyncio.timeout(HANG_GUARD_S), Simulation(cfg) as sim:
        assert sim.url_text == f"ami://pbx:s3cret@127.0.0.1:{sim.server.port}"
        ami = await RawAmi.open(sim.url.host, sim.url.port)
        await ami.login()
        join = (await ami.until(lambda f: f.get("Event") == "QueueCallerJoin"))[-1]
        assert join["Queue"] == "t1-support" and float(join["Timestamp"]) >= T0
        assert sim.totals()["offered"] >= 1
        assert "offered" in sim.status_line()
        await ami.close()
    assert sim.server.live == []
