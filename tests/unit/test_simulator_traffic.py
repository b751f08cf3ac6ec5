"""The simulator's event shapes, call-flow orderings, determinism and ground truth (virtual time).

Shapes are held against the recorded Asterisk 22 streams: every event type the simulator emits
must have the header names, in the same order, as that event in the fixtures.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pbx_core.ingest import Ingest
from pbx_core.simulator import cli as sim_cli
from pbx_core.simulator.clock import SimClock
from pbx_core.simulator.server import SimulatedAsterisk
from pbx_core.simulator.traffic import PAUSE_REASONS, Traffic, TrafficConfig, profile_weight, synthetic_stream
from pbx_core.simulator.world import SimMember, World
from tests.conftest import FIXTURES

TZ = ZoneInfo("Europe/Amsterdam")
FIXTURE_NAMES = ("answered", "abandoned", "ringnoanswer", "members", "status_busy")


def t_local(hour: int, minute: int = 0) -> float:
    return datetime(2026, 11, 23, hour, minute, tzinfo=TZ).timestamp()


def split_frames(data: bytes) -> list[list[tuple[str, str]]]:
    frames = []
    for chunk in data.split(b"\r\n\r\n"):
        lines = [ln for ln in chunk.decode("utf-8").split("\r\n") if ": " in ln]
        if lines:
            frames.append([tuple(ln.split(": ", 1)) for ln in lines])
    return frames


def fixture_shapes() -> tuple[dict[str, tuple[str, ...]], dict[str, set[tuple[str, ...]]]]:
    """First instance of each event in the fixtures, and every shape seen for it."""
    first: dict[str, tuple[str, ...]] = {}
    every: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for name in FIXTURE_NAMES:
        for frame in split_frames((FIXTURES / f"{name}.ami").read_bytes()):
            if frame[0][0] != "Event":
                continue
            shape = tuple(k for k, _ in frame)
            first.setdefault(frame[0][1], shape)
            every[frame[0][1]].add(shape)
    return first, every


def run_traffic(seed: int = 7, hours: float = 3.0, **overrides: object) -> tuple[World, Traffic, list[bytes]]:
    world = SimulatedAsterisk(clock=SimClock.stepped(t_local(9)))
    out: list[bytes] = []
    world.taps.append(out.append)
    traffic = Traffic(world, TrafficConfig(seed=seed, **overrides))  # type: ignore[arg-type]
    traffic.setup()
    traffic.advance(hours * 3600)
    return world, traffic, out


async def drained(seed: int = 7, hours: float = 3.0, **overrides: object) -> tuple[World, list[bytes]]:
    world, traffic, out = run_traffic(seed, hours, **overrides)
    await traffic.drain_calls()
    assert not traffic.busy
    return world, out


# --------------------------------------------------------------------------- shapes


def test_every_simulated_event_has_the_recorded_shape() -> None:
    first, every = fixture_shapes()
    world, _, out = run_traffic(seed=3, hours=4, dump_share=0.05)
    world.arrive("t1-support", "0612345678", "Jan Jansen", patience_s=30, originate_id="a17")
    world.global_varset("RING_agent1", "")
    seen: dict[str, tuple[str, ...]] = {}
    for frame in split_frames(b"".join(out)):
        name, shape = frame[0][1], tuple(k for k, _ in frame)
        if name == "AgentDump":  # not recorded; Asterisk documents AgentCalled's fields for it
            assert shape[1:] == first["AgentCalled"][1:]
        else:
            assert name in every, f"{name} never appears in the recordings"
            assert shape in every[name], f"{name} fields differ from the recordings:\n{shape}"
            if len(every[name]) == 1:
                assert shape == first[name]
        seen.setdefault(name, shape)
    queue_events = {
        "QueueCallerJoin", "AgentCalled", "AgentRingNoAnswer", "AgentConnect", "QueueCallerLeave",
        "AgentComplete", "QueueCallerAbandon", "AgentDump", "QueueMemberStatus", "QueueMemberPause",
        "QueueMemberAdded", "Hangup",
    }  # fmt: skip
    noise = {"Newchannel", "VarSet", "Newexten", "NewCallerid", "NewConnectedLine", "LocalBridge",
             "DialBegin", "DialEnd", "Newstate", "BridgeCreate", "BridgeEnter", "BridgeLeave",
             "BridgeDestroy", "DeviceStateChange", "SoftHangupRequest", "HangupRequest",
             "OriginateResponse"}  # fmt: skip
    assert queue_events | noise <= set(seen)
    # Both VarSet shapes (global and on a channel) are used, each as recorded.
    varsets = {tuple(k for k, _ in f) for f in split_frames(b"".join(out)) if f[0][1] == "VarSet"}
    assert varsets == every["VarSet"]


def test_member_events_match_the_recording_field_for_field() -> None:
    world = World(clock=SimClock.stepped(1795338263.1))
    out: list[bytes] = []
    world.taps.append(out.append)
    m = SimMember("Local/agent9@agents/n", "Agent Nine", "Custom:agent9", penalty=1, status=0)
    world.add_member("t1-sales", m)
    world.clock.advance(1)
    world.pause_member("t1-sales", m.interface, True, "training")
    recorded = [
        f for f in split_frames((FIXTURES / "members.ami").read_bytes()) if f[0][1] == "QueueMemberPause"
    ]
    ours = [f for f in split_frames(b"".join(out)) if f[0][1] == "QueueMemberPause"]
    drop_ts = lambda f: [(k, v) for k, v in f if k != "Timestamp"]  # noqa: E731
    assert drop_ts(ours[0]) == drop_ts(recorded[0])


# --------------------------------------------------------------------------- orderings


def test_call_flows_are_ordered_as_asterisk_orders_them() -> None:
    _, _, out = run_traffic(seed=11, hours=3)
    per_call: dict[str, list[str]] = defaultdict(list)
    queue_kinds = {
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentConnect",
        "AgentComplete",
    }
    for frame in split_frames(b"".join(out)):
        d = dict(frame)
        if d["Event"] in queue_kinds:
            per_call[d["Uniqueid"]].append(d["Event"])
    answered = abandoned = 0
    for events in per_call.values():
        if "AgentConnect" in events:
            answered += 1
            # Leave comes *before* Connect, as recorded in answered.ami.
            assert events[:3] == ["QueueCallerJoin", "QueueCallerLeave", "AgentConnect"]
            assert events[3:] in ([], ["AgentComplete"])
        elif "QueueCallerAbandon" in events:
            abandoned += 1
            assert events == ["QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave"]
        else:
            assert events == ["QueueCallerJoin"]  # still waiting at the end of the run
    assert answered > 50 and abandoned > 3


def test_timestamps_come_from_the_virtual_clock_and_never_go_back() -> None:
    start = t_local(9)
    _, _, out = run_traffic(seed=5, hours=2)
    stamps = [float(dict(f)["Timestamp"]) for f in split_frames(b"".join(out))]
    assert stamps == sorted(stamps)
    assert start <= stamps[0] and stamps[-1] <= start + 2 * 3600 + 1


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_events_different_seed_different_events() -> None:
    _, _, a = run_traffic(seed=42, hours=2)
    _, _, b = run_traffic(seed=42, hours=2)
    _, _, c = run_traffic(seed=43, hours=2)
    assert len(a) > 1000
    assert a == b
    assert a != c


def test_stepping_in_small_or_large_steps_gives_the_same_stream() -> None:
    _, _, whole = run_traffic(seed=9, hours=1)
    world = SimulatedAsterisk(clock=SimClock.stepped(t_local(9)))
    pieces: list[bytes] = []
    world.taps.append(pieces.append)
    traffic = Traffic(world, TrafficConfig(seed=9))
    traffic.setup()
    for _ in range(60):
        traffic.advance(60)
    assert pieces == whole


# --------------------------------------------------------------------------- ground truth


async def test_engine_counters_equal_the_simulators_truth() -> None:
    world, out = await drained(seed=21, hours=3)
    ingest = Ingest()
    ingest.feed(b"Asterisk Call Manager/11.0.0\r\n" + b"".join(out))
    assert set(ingest.state.queues) == set(world.truth)
    totals: Counter[str] = Counter()
    for name, truth in world.truth.items():
        c = ingest.state.queues[name].counters
        got = (c.offered, c.answered, c.abandoned, c.short_abandoned, c.ring_no_answer)
        want = (truth.offered, truth.answered, truth.abandoned, truth.short_abandoned, truth.ring_no_answer)
        assert got == want, name
        assert truth.offered == truth.answered + truth.abandoned  # drained: nobody waits
        assert not ingest.state.queues[name].callers
        totals.update(truth.as_dict())
    assert totals["abandoned"] > 0 and totals["short_abandoned"] > 0 and totals["ring_no_answer"] > 0


def test_synthetic_stream_replays_to_its_truth_without_noise_too() -> None:
    for noise in (True, False):
        data, truth = synthetic_stream(
            TrafficConfig(seed=6, tenants=2), start=t_local(10), seconds=3600, noise=noise
        )
        again, _ = synthetic_stream(
            TrafficConfig(seed=6, tenants=2), start=t_local(10), seconds=3600, noise=noise
        )
        assert data == again and data.startswith(b"Asterisk Call Manager/")
        assert (b"Event: Newexten" in data) is noise
        ingest = Ingest()
        ingest.feed(data)
        for name, t in truth.items():
            c = ingest.state.queues[name].counters
            assert (c.offered, c.answered, c.abandoned, c.short_abandoned) == (
                t["offered"], t["answered"], t["abandoned"], t["short_abandoned"]
            )  # fmt: skip


def test_short_abandons_follow_the_design_definition() -> None:
    _, _, out = run_traffic(seed=4, hours=3)
    holds = [int(dict(f)["HoldTime"]) for f in split_frames(b"".join(out)) if f[0][1] == "QueueCallerAbandon"]
    world = run_traffic(seed=4, hours=3)[0]
    assert sum(t.abandoned for t in world.truth.values()) == len(holds)
    assert sum(t.short_abandoned for t in world.truth.values()) == sum(h < 5 for h in holds)


# --------------------------------------------------------------------------- behaviour


def test_pauses_carry_reasons_and_ring_no_answer_can_autopause() -> None:
    _, _, out = run_traffic(seed=8, hours=6)
    reasons = Counter()
    for frame in split_frames(b"".join(out)):
        d = dict(frame)
        if d["Event"] == "QueueMemberPause" and d["Paused"] == "1":
            reasons[d["PausedReason"]] += 1
    assert "Auto-Pause" in reasons and "lunch" in reasons
    assert set(reasons) <= {*PAUSE_REASONS, "Auto-Pause"}
    unpauses = [
        f
        for f in split_frames(b"".join(out))
        if dict(f).get("Paused") == "0" and f[0][1] == "QueueMemberPause"
    ]
    assert unpauses  # agents come back


def test_daily_profile_peaks_by_day_and_is_quiet_at_night() -> None:
    assert profile_weight(t_local(10), "Europe/Amsterdam") == 1.0
    assert profile_weight(t_local(3), "Europe/Amsterdam") < 0.05
    world = SimulatedAsterisk(clock=SimClock.stepped(t_local(0)))
    joins: Counter[int] = Counter()

    def count(frame: bytes) -> None:
        if frame.startswith(b"Event: QueueCallerJoin\r\n"):
            ts = float(frame.split(b"Timestamp: ", 1)[1].split(b"\r\n", 1)[0])
            joins[datetime.fromtimestamp(ts, TZ).hour] += 1

    world.taps.append(count)
    traffic = Traffic(world, TrafficConfig(seed=2, rate=60))
    traffic.setup()
    traffic.advance(24 * 3600)
    peak = joins[9] + joins[10] + joins[14]
    night = joins[1] + joins[2] + joins[3]
    assert peak > 10 * max(1, night)


def test_flat_profile_and_rate_zero() -> None:
    world, _, out = run_traffic(seed=1, hours=1, rate=0)
    assert not any(f.startswith(b"Event: QueueCallerJoin") for f in out)
    assert sum(t.offered for t in world.truth.values()) == 0
    with pytest.raises(ValueError):
        TrafficConfig(profile="weekly")


def test_naming_follows_the_tenant_convention() -> None:
    world, _, _ = run_traffic(seed=1, hours=0, tenants=2, queues=3, agents=2)
    assert sorted(world.queues) == sorted(
        ["t1-support", "t1-sales", "t1-billing", "t2-support", "t2-sales", "t2-billing"]
    )
    for q in world.queues.values():
        slug = q.name.split("-", 1)[0]
        assert len(q.members) == 2
        for m in q.members.values():
            assert m.interface.endswith(f"@{slug}-agents/n") and m.state_interface.endswith(
                f"@{slug}-internal"
            )


def test_clock_modes() -> None:
    c = SimClock.stepped(1000.0)
    assert c.now() == 1000.0 and c.real_delay(1500.0) == 0.0
    c.advance(5)
    c.advance_to(1002)  # never backwards
    assert c.now() == 1005.0
    fast = SimClock(1000.0, speed=100.0)
    assert fast.now() >= 1000.0
    assert 0 < fast.real_delay(fast.now() + 50) <= 0.5


# --------------------------------------------------------------------------- CLI


def test_cli_options_and_help() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sim_cli.register(sub)
    args = parser.parse_args(
        ["simulate", "--tenants", "5", "--queues", "1", "--agents", "3", "--rate", "120", "--seed", "9",
         "--speed", "60", "--host", "127.0.0.1", "--port", "0", "--username", "u", "--secret", "p",
         "--start", "09:30"]
    )  # fmt: skip
    cfg = sim_cli.config_from_args(args)
    assert (cfg.traffic.tenants, cfg.traffic.queues, cfg.traffic.agents) == (5, 1, 3)
    assert (cfg.traffic.rate, cfg.traffic.seed, cfg.speed) == (120, 9, 60)
    assert (cfg.username, cfg.secret, cfg.port) == ("u", "p", 0)
    assert cfg.start is not None and datetime.fromtimestamp(cfg.start, TZ).strftime("%H:%M") == "09:30"
    helptext = sub.choices["simulate"].format_help()
    for option in ("--tenants", "--queues", "--agents", "--rate", "--seed", "--speed", "--host", "--port",
                   "--username", "--secret"):  # fmt: skip
        assert option in helptext
    assert "calls per hour per queue" in helptext


# --------------------------------------------------------------------------- callback offer

OFFER = "PBX_OFFER_t1_support"


def offer_traffic(
    seed: int = 5, *, offer: str | None = "1", hours: float = 2.0, **overrides: object
) -> tuple[World, Traffic, list[bytes]]:
    """One queue nobody answers, callers who wait long: everyone is in line at an offer moment."""
    settings: dict[str, object] = dict(
        tenants=1, queues=1, agents=0, rate=240, profile="flat", short_patience_share=0.0,
        mean_patience_s=3600.0,
    )  # fmt: skip
    settings.update(overrides)
    world = SimulatedAsterisk(clock=SimClock.stepped(t_local(9)))
    out: list[bytes] = []
    world.taps.append(out.append)
    traffic = Traffic(world, TrafficConfig(seed=seed, **settings))  # type: ignore[arg-type]
    traffic.setup()
    if offer is not None:
        world.set_global(OFFER, offer)
    traffic.advance(hours * 3600)
    return world, traffic, out


def user_events(out: list[bytes]) -> list[list[tuple[str, str]]]:
    return [f for f in split_frames(b"".join(out)) if f[0] == ("Event", "UserEvent")]


@pytest.mark.parametrize("share", [0.2, 0.5, 0.8])
def test_callers_take_the_open_offer_at_about_the_configured_share(share: float) -> None:
    world, _, out = offer_traffic(callback_accept_share=share)
    truth = world.truth["t1-support"]
    assert truth.offered > 300
    requests = user_events(out)
    assert len(requests) == truth.callback_requests == truth.other_exits
    assert abs(truth.callback_requests / truth.offered - share) < 0.08
    # Who accepted left by key: never also counted as abandoned.
    abandoned = {dict(f)["Uniqueid"] for f in split_frames(b"".join(out)) if f[0][1] == "QueueCallerAbandon"}
    assert len(abandoned) == truth.abandoned
    assert not abandoned & {dict(f)["Uniqueid"] for f in requests}


@pytest.mark.parametrize("offer", [None, "0", ""])
def test_no_callback_requests_while_the_offer_is_closed_or_unset(offer: str | None) -> None:
    world, _, out = offer_traffic(offer=offer, callback_accept_share=1.0)
    assert world.truth["t1-support"].offered > 300
    assert world.truth["t1-support"].callback_requests == 0
    assert not user_events(out)
    assert not any(b"-exit" in f for f in out)


def test_callback_offers_are_deterministic_per_seed() -> None:
    _, _, a = offer_traffic(seed=12, hours=1)
    _, _, b = offer_traffic(seed=12, hours=1)
    _, _, c = offer_traffic(seed=13, hours=1)
    assert user_events(a) and a == b
    assert user_events(a) != user_events(c)


def test_the_offer_draws_leave_traffic_without_an_offer_unchanged() -> None:
    """The offer has its own random stream: with no offer open, any share gives the same bytes."""
    _, _, none = run_traffic(seed=42, hours=2, callback_accept_share=0.0)
    _, _, half = run_traffic(seed=42, hours=2, callback_accept_share=0.5)
    assert len(none) > 1000 and none == half


def test_an_offer_opened_later_reaches_callers_already_waiting() -> None:
    world, traffic, out = offer_traffic(offer=None, hours=0.5, callback_accept_share=1.0)
    waiting = {c.uniqueid for c in world.queues["t1-support"].callers}
    assert len(waiting) > 50 and not user_events(out)
    world.set_global(OFFER, "1")
    traffic.advance(traffic.config.callback_offer_every_s)  # one periodic announcement later
    taken = {dict(f)["Uniqueid"] for f in user_events(out)}
    gave_up = {dict(f)["Uniqueid"] for f in split_frames(b"".join(out)) if f[0][1] == "QueueCallerAbandon"}
    assert taken and waiting - gave_up <= taken  # every one still there hears it within one interval
    world.set_global(OFFER, "0")
    before = len(user_events(out))
    traffic.advance(600)
    assert len(user_events(out)) == before  # closed again: nobody more


def test_a_callback_request_is_what_asterisk_sends_for_an_exit_by_key() -> None:
    """Leave without Abandon (app_queue only records an abandon on hangup), the exit context's
    dialplan, the UserEvent with the contract's fields, then the caller hangs up."""
    first, _ = fixture_shapes()
    _, _, out = offer_traffic(hours=0.5)
    frames = split_frames(b"".join(out))
    joins = {dict(f)["Uniqueid"]: dict(f) for f in frames if f[0][1] == "QueueCallerJoin"}
    requests = user_events(out)
    assert requests
    for ev in requests:
        d = dict(ev)
        uid = d["Uniqueid"]
        # Documented shape (AMI_Events/UserEvent, class USER): snapshot, UserEvent, then the body.
        names = [k for k, _ in ev]
        assert names[:3] == ["Event", "Privilege", "Timestamp"] and d["Privilege"] == "user,all"
        assert names[3:17] == list(first["Newchannel"][3:])  # the channel snapshot
        assert names[17:] == ["UserEvent", "Tenant", "Queue", "Number", "Source", "JoinedAt", "Uniqueid",
                              "WindowFrom", "WindowTo", "Later"]  # empty: no bridge keeps the quote here
        assert [v for k, v in ev if k == "Uniqueid"] == [uid, uid]
        join = joins[uid]
        assert d["UserEvent"] == "PbxCallbackRequest" and d["Tenant"] == "t1" and d["Queue"] == "support"
        assert d["Number"] == join["CallerIDNum"] and d["Source"] == "queue_offer"
        assert d["JoinedAt"].isdigit() and 0 <= float(join["Timestamp"]) - int(d["JoinedAt"]) < 2
        assert d["Context"] == "t1-queue-support-exit" and d["Exten"] == "1"
        mine = [dict(f) for f in frames if dict(f).get("Uniqueid") == uid]
        kinds = [f["Event"] for f in mine]
        queue_kinds = [k for k in kinds if k.startswith("Queue")]
        assert queue_kinds == ["QueueCallerJoin", "QueueCallerLeave"]
        assert kinds.index("QueueCallerLeave") < kinds.index("UserEvent") < kinds.index("Hangup")
        assert "QueueCallerAbandon" not in kinds


async def test_the_engine_counts_callback_requests_as_other_exits_not_abandons() -> None:
    world, traffic, out = offer_traffic(
        seed=9, agents=2, mean_patience_s=150.0, short_patience_share=0.08, hours=2
    )
    await traffic.drain_calls()
    truth = world.truth["t1-support"]
    assert truth.callback_requests > 10 and truth.abandoned > 0 and truth.answered > 0
    ingest = Ingest()
    ingest.feed(b"Asterisk Call Manager/11.0.0\r\n" + b"".join(out))
    q = ingest.state.queues["t1-support"]
    c = q.counters
    assert (c.offered, c.answered, c.abandoned, c.short_abandoned, c.other_exits) == (
        truth.offered, truth.answered, truth.abandoned, truth.short_abandoned, truth.callback_requests
    )  # fmt: skip
    assert truth.offered == truth.answered + truth.abandoned + truth.callback_requests
    taken = {dict(f)["Uniqueid"] for f in user_events(out)}
    assert not taken & {a.uniqueid for a in q.abandoned}
    assert c.is_consistent(len(q.callers)) and not q.callers


def test_callback_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="callback_accept_share"):
        TrafficConfig(callback_accept_share=1.5)
    with pytest.raises(ValueError, match="callback_offer_every_s"):
        TrafficConfig(callback_offer_every_s=0)


def test_callers_without_caller_id_type_a_number() -> None:
    world = World(clock=SimClock.stepped(t_local(9)))
    out: list[bytes] = []
    world.taps.append(out.append)
    config = TrafficConfig(seed=1, tenants=1, queues=1, agents=0, rate=0, callback_accept_share=1)
    traffic = Traffic(world, config)
    traffic.setup()
    world.set_global(OFFER, "1")
    caller = world.arrive("t1-support", "", "")
    traffic.caller_joined("t1-support", caller, 600.0)
    traffic.advance(60)
    (ev,) = user_events(out)
    number = dict(ev)["Number"]
    assert number.isdigit() and len(number) == 10
    assert not world.queues["t1-support"].callers
