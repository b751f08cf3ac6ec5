"""Events beyond the queue events over real TCP against the simulated Asterisk:
``AmiOptions.extra_events`` delivers them on ``client.events`` in stream order, through the
server-side Filter and from the first byte of a session; OriginateResponse (an event that also
carries ``Response:`` and the Originate's ActionID) is an event, not a second reply."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions, event_filter
from pbx_core.ami.framing import Frame
from pbx_core.ami.listings import ListingAssembler
from pbx_core.domain.events import StatusSnapshot
from pbx_core.simulator import frames as F
from pbx_core.simulator.frames import encode
from pbx_core.simulator.server import AmiSession, SimMember, SimulatedAsterisk
from tests import conftest

HANG_GUARD_S = 15.0  # only ever a guard against a hang, never a measurement
QUEUE = "acme-support"
EXTRA = frozenset({"UserEvent", "OriginateResponse"})
OPTIONS = AmiOptions(ping_interval_s=5.0, extra_events=EXTRA)


@pytest.fixture
async def ast() -> AsyncIterator[SimulatedAsterisk]:
    async with SimulatedAsterisk() as server:
        server.noise = False
        server.queue(QUEUE)
        server.add_member(QUEUE, SimMember("Local/201@acme-agents/n", "Ann"), emit=False)
        yield server


async def events_until(client: AmiClient, name: str) -> list[Frame]:
    """The queued event frames up to and including the first one called ``name``."""
    seen: list[Frame] = []
    async with asyncio.timeout(HANG_GUARD_S):
        while True:
            item = await client.events.get()
            if isinstance(item, StatusSnapshot):
                continue
            seen.append(item)
            if item.get("Event") == name:
                return seen


async def connected(client: AmiClient) -> None:
    """Connected, with the Filter installed and the first QueueStatus taken: the session is set up."""
    await client.connect()
    async with asyncio.timeout(HANG_GUARD_S):
        while not isinstance(await client.events.get(), StatusSnapshot):
            pass


def originate(action_id: str) -> dict[str, str]:
    # Not a queue and not a callback context: the simulator brings the channel up and answers
    # with an OriginateResponse (Async), as Asterisk does for any originate.
    return {
        "Action": "Originate",
        "ActionID": action_id,
        "Channel": "Local/0612345678@acme-outbound",
        "Context": "acme-internal",
        "Exten": "201",
        "Priority": "1",
        "Async": "true",
    }


def test_a_frame_with_an_event_header_is_an_event_even_with_a_response_header() -> None:
    la = ListingAssembler()
    frame = {"Event": "OriginateResponse", "ActionID": "o1", "Response": "Failure", "Reason": "0"}
    routed = la.route(frame, 1.0)
    assert routed.event == frame and routed.response is None
    reply = la.route(
        {"Response": "Success", "ActionID": "o1", "Message": "Originate successfully queued"}, 1.0
    )
    assert reply.response is not None and reply.event is None


def test_the_filter_regex_names_the_extra_events() -> None:
    assert "UserEvent" in event_filter(EXTRA) and "OriginateResponse" in event_filter(EXTRA)
    assert "UserEvent" not in event_filter()


def test_the_filter_regex_lets_through_only_our_user_events() -> None:
    regex = re.compile(event_filter(frozenset({"OriginateResponse"}), frozenset({"PbxCallbackRequest"})))
    ours = "Event: UserEvent\r\nPrivilege: user,all\r\nChannel: x\r\nUserEvent: PbxCallbackRequest\r\n"
    theirs = ours.replace("PbxCallbackRequest", "SomeoneElsesEvent")
    assert regex.search(ours) and not regex.search(theirs)
    assert regex.search("Event: QueueCallerJoin\r\n") and regex.search("Event: OriginateResponse\r\n")


async def test_only_the_named_user_events_are_queued(ast: SimulatedAsterisk) -> None:
    """Another application's UserEvents never reach the events queue (they used to be queued,
    past its bound); ours do, in stream order."""
    chan = F.Chan("PJSIP/acme-201-desk-00000001", "1.1", "1.1", "acme-internal", "s", 1, 6, "201")
    ours = frozenset({"PbxCallbackResult"})
    options = AmiOptions(ping_interval_s=5.0, event_filter=False, user_events=ours)
    client = AmiClient(ast.url, options)
    try:
        await connected(client)
        for i in range(50):
            ast.emit(encode(F.user_event(ast.now(), chan, "SomeoneElsesEvent", [("N", str(i))])))
        ast.emit(encode(F.user_event(ast.now(), chan, "PbxCallbackResult", [("CallbackId", "x")])))
        seen = await events_until(client, "UserEvent")
        assert [(f["Event"], f["UserEvent"]) for f in seen] == [("UserEvent", "PbxCallbackResult")]
        assert client.counters.user_events_ignored == 50
        assert client.events.qsize() == 0
    finally:
        await client.close()


async def test_originate_response_event_reaches_the_events_queue(ast: SimulatedAsterisk) -> None:
    client = AmiClient(ast.url, OPTIONS)
    try:
        await connected(client)
        filters = [a["Filter"] for a in ast.sessions[0].actions if a.get("Action") == "Filter"]
        assert len(filters) == 1 and "OriginateResponse" in filters[0]
        reply = await client.action(originate("cb-1:1"))
        assert reply.success  # the action's own reply: "Originate successfully queued"
        event = (await events_until(client, "OriginateResponse"))[-1]
        assert event["ActionID"] == "cb-1:1"
        assert event["Response"] == "Success" and event["Reason"] == "4"
    finally:
        await client.close()


async def test_without_extra_events_the_queue_carries_queue_events_only(ast: SimulatedAsterisk) -> None:
    # No server-side filter, so the OriginateResponse does reach this client (a listener sees it).
    client = AmiClient(ast.url, AmiOptions(ping_interval_s=5.0, event_filter=False))
    heard: list[Frame] = []
    client.add_listener(heard.append)
    try:
        await connected(client)
        await client.action(originate("o-2"))
        await conftest.wait_until(
            lambda: any(f.get("Event") == "OriginateResponse" for f in heard), "the OriginateResponse arrived"
        )
        caller = ast.join(QUEUE, "0612345678")  # a queue event after it, as a marker
        seen = await events_until(client, "QueueCallerJoin")
        # The originated channel's Hangup is a queue event (the engine reads it); its outcome is not.
        assert [f["Event"] for f in seen] == ["Hangup", "QueueCallerJoin"]
        assert seen[-1]["Uniqueid"] == caller.uniqueid
    finally:
        await client.close()


async def test_user_event_passes_the_server_side_filter_in_stream_order(ast: SimulatedAsterisk) -> None:
    client = AmiClient(ast.url, OPTIONS)
    try:
        await connected(client)
        caller = ast.join(QUEUE, "0612345678", waited_s=95)
        ast.callback_request(QUEUE, caller, "0612345678")
        seen = await events_until(client, "UserEvent")
        assert [f["Event"] for f in seen] == ["QueueCallerJoin", "QueueCallerLeave", "UserEvent"]
        assert seen[-1]["UserEvent"] == "PbxCallbackRequest"
        assert ast.sessions[0].filters  # the Filter was installed and the event still got through
    finally:
        await client.close()


async def test_a_user_event_right_after_the_login_reply_is_not_dropped(ast: SimulatedAsterisk) -> None:
    """The login reply and an event in the same write: the decoder keeps the event from the first
    byte of the session (no window between login and any post-login setup)."""
    chan = F.Chan("PJSIP/acme-201-desk-00000001", "1.1", "1.1", "acme-internal", "s", 1, 6, "201")

    def login(s: AmiSession, a: dict[str, str]) -> None:
        s.logged_in = True
        s.reply(a, "Success", ("Message", "Authentication accepted"))
        s.send(encode(F.user_event(ast.now(), chan, "PbxCallbackResult", [("CallbackId", "x")])))

    ast.handlers["login"] = login
    client = AmiClient(ast.url, OPTIONS)
    try:
        await client.connect()
        event = (await events_until(client, "UserEvent"))[-1]
        assert event["UserEvent"] == "PbxCallbackResult" and event["CallbackId"] == "x"
    finally:
        await client.close()
