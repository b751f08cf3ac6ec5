"""``reload.ami``: what the bridge's AMI session saw on a real Asterisk 22.10.1 (with the
project's manager.conf) while pbx-core's own apply added tenant t1 with queues support and sales,
applied it again without sales, then removed the tenant, with a full QueueStatus (no Queue
filter) after each step. App_queue sends no event for a deleted queue; ``Reload`` is what comes,
and the QueueStatus after it no longer lists the queue. The engine, fed that, drops the queue;
and the simulator's Reload events have the real ones' shape."""

from __future__ import annotations

from pbx_core.ami.client import CONTROL_EVENTS
from pbx_core.ami.framing import QUEUE_EVENTS, FrameDecoder
from pbx_core.ami.listings import ListingAssembler
from pbx_core.domain.events import status_snapshot
from pbx_core.domain.queue_state import LiveState, apply
from pbx_core.simulator.server import module_reloaded
from tests.conftest import fixture_bytes


def replay() -> tuple[list[dict[str, str]], list[list[str]], list[list[str]]]:
    """(Reload events, queues each QueueStatus listed, queues the engine has after each)."""
    decoder = FrameDecoder(wanted=QUEUE_EVENTS | CONTROL_EVENTS)
    listings = ListingAssembler()
    state = LiveState()
    reloads: list[dict[str, str]] = []
    listed: list[list[str]] = []
    engine: list[list[str]] = []
    ts = 1795338000.0  # the capture has no Timestamps (timestampevents was off): a step per frame
    for frame in decoder.feed(fixture_bytes("reload")):
        ts += 1.0
        if frame.get("Event") == "Reload":
            reloads.append(dict(frame))
        if "Response" not in frame and not ("ActionID" in frame and listings.open_count):
            continue
        listing = listings.route(frame, ts).listing
        if listing is not None and listing.is_queue_status:
            snapshot = status_snapshot(listing.items, ts=ts, requested_ts=listing.opened_ts, complete=True)
            listed.append(sorted(q.queue for q in snapshot.queues))
            apply(state, snapshot)
            engine.append(sorted(state.queues))
    return reloads, listed, engine


def test_a_deleted_queue_is_only_told_by_reload_and_the_listing_after_it() -> None:
    reloads, listed, engine = replay()
    modules = [r["Module"] for r in reloads]
    every = ["res_pjsip.so", "app_voicemail.so", "app_queue.so", "pbx_config.so"]
    # apply (all four), apply without sales (queues and dialplan changed), remove (all four)
    assert modules == [*every, "app_queue.so", "pbx_config.so", *every]
    assert {(r["Privilege"], r["Status"]) for r in reloads} == {("system,all", "0")}
    assert listed == [["t1-sales", "t1-support"], ["t1-support"], []]
    assert engine == listed  # the engine's view of the queues is Asterisk's, after every step


def test_the_simulators_reload_event_has_the_real_shape() -> None:
    real = next(r for r in replay()[0] if r["Module"] == "app_queue.so")
    simulated = dict(module_reloaded(1795338000.0, "app_queue.so", 0))
    # Timestamp comes with manager.conf's timestampevents = yes, right after Privilege.
    assert list(simulated) == ["Event", "Privilege", "Timestamp", "Module", "Status"]
    simulated.pop("Timestamp")
    assert simulated == real
