"""Frames are parsed on demand: an event's few headers are picked out of its text, the full
header mapping is built only when someone reads it as one. Both readings agree (the fuzz target
holds them to it on arbitrary bytes); these are the cases named."""

from __future__ import annotations

import copy
import json
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_core.ami.framing import FRAME_END, FrameDecoder
from pbx_core.domain.events import CallerJoined, ChannelHungUp, normalise
from pbx_core.domain.headers import Headers, Picker, parse_headers
from tests.conftest import fixture_bytes


def recorded(name: str) -> Headers:
    data = fixture_bytes("answered")
    chunk = next(f for f in data.split(FRAME_END) if f.startswith(f"Event: {name}\r\n".encode()))
    dec = FrameDecoder()
    dec.banner = ""
    return dec.feed(chunk + FRAME_END)[0]


def test_an_event_is_normalised_without_parsing_all_its_headers() -> None:
    join = recorded("QueueCallerJoin")
    assert join.name == "QueueCallerJoin" and not join.reply
    event = normalise(join, 0.0)
    assert isinstance(event, CallerJoined) and event.queue == "t1-support" and event.name == "Jan Jansen"
    assert not join._filled  # the 20-header dict was never built
    assert join["Count"] == "1" and join._filled  # read as a dict: parsed then
    assert normalise(join, 0.0) == event


def test_pick_returns_only_the_named_headers_and_the_mapping_all_of_them() -> None:
    hangup = recorded("Hangup")
    picked = hangup.pick(Picker("Uniqueid", "Channel", "Missing"))
    assert picked == {"Uniqueid": hangup["Uniqueid"], "Channel": hangup["Channel"]}
    assert dict(hangup) == parse_headers(hangup.text) and len(hangup) == 19
    assert hangup == dict(hangup)  # equal to the dict with the same headers


def test_a_repeated_header_reads_as_the_full_parse_joins_it() -> None:
    text = "Event: Hangup\r\nUniqueid: 1.1\r\nChannel: a\r\nChannel: b"
    frame = Headers(text, "Hangup")
    assert frame.pick(Picker("Channel")) == {"Channel": "a\nb"}
    event = normalise(Headers(text, "Hangup"), 0.0)
    assert isinstance(event, ChannelHungUp) and event.channel == "a\nb"


def test_a_second_event_line_makes_it_no_event_of_the_first_name() -> None:
    text = "Event: Hangup\r\nUniqueid: 1.1\r\nEvent: VarSet"
    assert normalise(Headers(text, "Hangup"), 0.0) is None
    assert normalise(parse_headers(text) or {}, 0.0) is None


def test_an_empty_header_without_a_space_is_an_empty_value() -> None:
    text = "Event: QueueCallerJoin\r\nQueue: t1-support\r\nUniqueid: 1.1\r\nCallerIDName:\r\nPosition: 1"
    lazy = normalise(Headers(text, "QueueCallerJoin"), 0.0)
    assert lazy == normalise(parse_headers(text) or {}, 0.0)
    assert isinstance(lazy, CallerJoined) and lazy.name == ""


def test_replies_and_eventlist_items_are_parsed_at_once_and_marked() -> None:
    dec = FrameDecoder()
    dec.banner = ""
    reply, item = dec.feed(
        b"Response: Success\r\nActionID: a1\r\nEventList: start" + FRAME_END
        + b"Event: QueueMember\r\nQueue: t1-x\r\nActionID: a1" + FRAME_END
    )  # fmt: skip
    assert reply.reply and item.reply and item.name == "QueueMember"
    assert reply._filled and item._filled
    assert Headers.of({"Event": "X", "ActionID": "1"}).reply and not Headers.of({"Event": "X"}).reply


# --- A Headers is a dict: every dict operation sees the parsed headers, filled or not -------

READS = {
    "len": len,
    "bool": bool,
    "list": list,
    "reversed": lambda d: list(reversed(d)),
    "keys": lambda d: list(d.keys()),
    "values": lambda d: list(d.values()),
    "items": lambda d: list(d.items()),
    "dict()": dict,
    "**": lambda d: {**d},
    "copy": lambda d: d.copy(),
    "json": lambda d: json.loads(json.dumps(d)),
    "json sorted": lambda d: json.dumps(d, sort_keys=True),
    "eq": lambda d: d == dict(d.items()),
    "ne": lambda d: d != {},
    "in": lambda d: ("Queue" in d, "Nope" in d),
    "get": lambda d: (d.get("Queue"), d.get("Nope", "x")),
    "[]": lambda d: d["Event"],
    "or": lambda d: d | {"X": "1"},
    "ror": lambda d: {"X": "1"} | d,
    "copy.copy": lambda d: dict(copy.copy(d)),
    "deepcopy": lambda d: dict(copy.deepcopy(d)),
    "pickle": lambda d: dict(pickle.loads(pickle.dumps(d))),
    "format_map": lambda d: "{Event}".format_map(d),
    "repr has every key": lambda d: all(k in repr(d) for k in dict(d.items())),
}
WRITES = {
    "setitem": lambda d: d.__setitem__("Queue", "new"),
    "setdefault": lambda d: d.setdefault("Queue", "new"),
    "update": lambda d: d.update({"Queue": "new"}),
    "ior": lambda d: d.__ior__({"Queue": "new"}),
    "pop": lambda d: d.pop("Queue", None),
    "del": lambda d: d.__delitem__("Event"),
    "popitem": lambda d: d.popitem(),
}

header_text = st.lists(
    st.tuples(
        st.sampled_from(["Queue", "Uniqueid", "Channel", "Event", "Ünï"]),
        st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=6),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(header_text)
def test_every_dict_operation_sees_the_parsed_headers(extra: list[tuple[str, str]]) -> None:
    text = "\r\n".join(["Event: QueueCallerJoin", *(f"{k}: {v}" for k, v in extra)])
    parsed = parse_headers(text)
    assert parsed is not None
    for name, read in READS.items():
        assert read(Headers(text, "QueueCallerJoin")) == read(dict(parsed)), name
    for name, write in WRITES.items():
        lazy, eager = Headers(text, "QueueCallerJoin"), dict(parsed)
        assert write(lazy) == write(eager), name
        assert dict(lazy.items()) == eager, name
    assert isinstance(Headers(text, "QueueCallerJoin"), dict)
