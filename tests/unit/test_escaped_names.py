"""Asterisk 22 C-escapes caller names in channel-snapshot events (``Ruud van \\'t Hof`` in
QueueCallerJoin, Agent*, Hangup, ...) but prints them raw in OriginateResponse and QueueEntry:
one caller must have one name, whichever event named them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pbx_core.ami.framing import FrameDecoder, encode_frame
from pbx_core.domain.events import CallerAbandoned, CallerJoined, normalise, status_snapshot, unescape_c
from pbx_core.ingest import Ingest
from pbx_core.simulator.frames import escape_c
from tests.conftest import fixture_bytes

RAW_NAMES = {"Ruud van 't Hof", 'Zoë "Zee" Özdemir', "Back\\slash & Co?"}


@given(st.text())
def test_unescaping_undoes_asterisks_escape_c(name: str) -> None:
    assert unescape_c(escape_c(name)) == name


def test_each_of_asterisks_escape_sequences() -> None:
    escaped = "\\a\\b\\f\\n\\r\\t\\v\\\\\\'\\\"\\?"
    assert unescape_c(escaped) == "\a\b\f\n\r\t\v\\'\"?"
    assert unescape_c("Ruud van \\'t Hof") == "Ruud van 't Hof"
    # Not Asterisk's doing: kept as it came rather than guessed at.
    assert unescape_c("x\\qy") == "x\\qy" and unescape_c("trailing\\") == "trailing\\"


def test_the_recording_with_escaped_names_gives_each_caller_one_name() -> None:
    ingest = Ingest()
    deltas = ingest.feed(fixture_bytes("status_busy_escaped_names"))
    joined = {d.data["name"] for d in deltas if d.type == "caller.joined"}
    resynced = {c["name"] for d in deltas if d.type == "queue.resynced" for c in d.data["waiting"]}
    abandoned = {d.data["name"] for d in deltas if d.type == "caller.abandoned"}
    assert joined == resynced == abandoned == RAW_NAMES


# Hand-made frames in the real header shape (QueueCallerJoin as in status_busy.ami; QueueEntry as
# app_queue prints it), for the two shapes side by side.
def _join(name: str) -> dict[str, str]:
    return {
        "Event": "QueueCallerJoin",
        "Privilege": "agent,all",
        "Timestamp": "1795338271.447770",
        "Channel": "Local/wait@patience-000000b3;1",
        "CallerIDNum": "0600000001",
        "CallerIDName": name,
        "ConnectedLineNum": "0600000001",
        "ConnectedLineName": name,
        "Uniqueid": "1795338271.358",
        "Queue": "t1-support",
        "Position": "1",
        "Count": "1",
    }


def _entry(number: str, name: str) -> dict[str, str]:
    return {
        "Event": "QueueEntry",
        "Queue": "t1-support",
        "Position": "1",
        "Channel": "Local/wait@patience-000000b3;1",
        "Uniqueid": "1795338271.358",
        "CallerIDNum": number,
        "CallerIDName": name,
        "ConnectedLineNum": number,
        "ConnectedLineName": name,
        "Wait": "2",
        "Priority": "0",
        "ActionID": "a19",
    }


def test_a_join_is_unescaped_and_a_queue_entry_is_taken_as_it_is() -> None:
    join = normalise(_join("Ruud van \\'t Hof"), 0.0)
    assert isinstance(join, CallerJoined) and join.name == "Ruud van 't Hof"
    snap = status_snapshot([_entry("0600000001", "Ruud van 't Hof")], ts=1.0, requested_ts=1.0)
    assert snap.queues[0].entries[0].name == "Ruud van 't Hof"
    # A backslash in a raw name is the caller's own, never an escape.
    raw = status_snapshot([_entry("0600000001", "C:\\'x'")], ts=1.0, requested_ts=1.0)
    assert raw.queues[0].entries[0].name == "C:\\'x'"


def test_a_queue_entry_without_caller_id_says_unknown_and_means_none() -> None:
    snap = status_snapshot([_entry("unknown", "unknown")], ts=1.0, requested_ts=1.0)
    entry = snap.queues[0].entries[0]
    assert (entry.number, entry.name) == ("", "")


def test_escaped_names_survive_the_wire_decoder() -> None:
    wire = encode_frame(_join(escape_c('Zoë "Zee" Özdemir')).items())
    assert b'Zo\xc3\xab \\"Zee\\" ' in wire  # as Asterisk 22 writes it
    event = normalise(FrameDecoder().feed(wire)[0], 0.0)
    assert isinstance(event, CallerJoined) and event.name == 'Zoë "Zee" Özdemir'


def test_an_abandon_after_a_resync_keeps_the_raw_name() -> None:
    ingest = Ingest(start_ts=1795338271.0)
    listing = [_entry("0600000001", "Ruud van 't Hof")]
    ingest.feed_events([status_snapshot(listing, ts=1795338271.0, requested_ts=1795338270.0)])
    abandon = {**_join("Ruud van \\'t Hof"), "Event": "QueueCallerAbandon", "Timestamp": "1795338280.0"}
    abandon.update(OriginalPosition="1", HoldTime="9")
    event = normalise(abandon, 0.0)
    assert isinstance(event, CallerAbandoned)
    ingest.feed_events([event])
    names = [a.name for a in ingest.state.queues["t1-support"].abandoned]
    assert names == ["Ruud van 't Hof"]
