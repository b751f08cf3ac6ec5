"""The sans-IO frame decoder: what reaches the engine, and what bad input costs (nothing)."""

from __future__ import annotations

from pbx_core.ami.framing import FrameDecoder, encode_frame, parse_frame
from pbx_core.ami.listings import ListingAssembler

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
JOIN = encode_frame(
    [
        ("Event", "QueueCallerJoin"),
        ("Privilege", "agent,all"),
        ("Timestamp", "1795338206.278041"),
        ("Channel", "PJSIP/t1-trunk-00000001"),
        ("CallerIDNum", "0612345678"),
        ("CallerIDName", "Zoë Özdemir-Müller"),
        ("AccountCode", ""),
        ("Uniqueid", "1795338206.340"),
        ("Queue", "t1-support"),
        ("Position", "1"),
        ("Count", "1"),
    ]
)
VARSET = encode_frame([("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Variable", "X"), ("Value", "")])


def test_banner_then_frames_and_noise_is_skipped_unparsed() -> None:
    dec = FrameDecoder()
    frames = dec.feed(BANNER + VARSET + JOIN + VARSET)
    assert dec.banner == "Asterisk Call Manager/11.0.0"
    assert [f["Event"] for f in frames] == ["QueueCallerJoin"]
    assert (dec.stats.frames, dec.stats.noise, dec.stats.parsed) == (3, 2, 1)
    assert frames[0]["AccountCode"] == ""


def test_utf8_caller_names_survive_even_split_inside_a_character() -> None:
    data = BANNER + JOIN
    cut = data.index("ë".encode()) + 1  # between the two bytes of "ë"
    dec = FrameDecoder()
    frames = dec.feed(data[:cut]) + dec.feed(data[cut:])
    assert frames[0]["CallerIDName"] == "Zoë Özdemir-Müller"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    dec = FrameDecoder()
    bad = JOIN.replace("Zoë".encode(), b"Zo\xff")
    frames = dec.feed(BANNER + bad + JOIN)
    assert frames[0]["CallerIDName"].startswith("Zo\ufffd") and len(frames) == 2


def test_garbage_frames_are_counted_and_the_stream_continues() -> None:
    dec = FrameDecoder()
    frames = dec.feed(BANNER + b"\x00\x01 total garbage\r\nno header here\r\n\r\n" + JOIN)
    assert dec.stats.malformed == 1
    assert [f["Event"] for f in frames] == ["QueueCallerJoin"]


def test_oversized_complete_frame_is_dropped() -> None:
    dec = FrameDecoder(max_frame_bytes=1024)
    huge = encode_frame([("Event", "QueueCallerJoin"), ("Queue", "t1-x"), ("Junk", "x" * 5000)])
    frames = dec.feed(BANNER + huge + JOIN)
    assert dec.stats.oversized == 1
    assert [f["Queue"] for f in frames] == ["t1-support"]


def test_oversized_unterminated_frame_is_discarded_without_buffering_it() -> None:
    dec = FrameDecoder(max_frame_bytes=1024)
    dec.feed(BANNER + b"Event: QueueCallerJoin\r\nJunk: ")
    for _ in range(100):
        assert dec.feed(b"y" * 4096) == []
        assert dec.pending_bytes < 2048  # memory stays bounded while an endless frame streams in
    frames = dec.feed(b"\r\n\r\n" + JOIN)
    assert dec.stats.oversized == 1
    assert [f["Event"] for f in frames] == ["QueueCallerJoin"]


def test_terminator_split_across_reads() -> None:
    dec = FrameDecoder()
    data = BANNER + JOIN + JOIN
    frames = []
    for i in range(len(data)):
        frames += dec.feed(data[i : i + 1])
    assert len(frames) == 2


def test_repeated_headers_are_joined() -> None:
    frame = parse_frame(b"Response: Success\r\nMessage: Command output follows\r\nOutput: a\r\nOutput: b")
    assert frame is not None and frame["Output"] == "a\nb"


def test_events_of_an_action_reply_are_kept_even_if_not_queue_events() -> None:
    dec = FrameDecoder()
    reply = encode_frame([("Event", "CoreShowChannel"), ("ActionID", "42"), ("Channel", "x")])
    frames = dec.feed(BANNER + reply)
    assert frames[0]["Event"] == "CoreShowChannel"


def test_listing_is_assembled_in_stream_order() -> None:
    la = ListingAssembler()
    start = {
        "Response": "Success",
        "ActionID": "a1",
        "EventList": "start",
        "Message": "Queue status will follow",
    }
    assert la.route(start, 1.0).listing is None
    assert la.route({"Event": "QueueParams", "Queue": "t1-x", "ActionID": "a1"}, 1.0).event is None
    live = la.route({"Event": "QueueCallerJoin", "Queue": "t1-x"}, 1.0)
    assert live.event is not None  # live events interleave with the listing and pass through
    done = la.route({"Event": "QueueStatusComplete", "ActionID": "a1", "EventList": "Complete"}, 2.0)
    assert done.listing is not None and done.listing.is_queue_status
    assert [i["Event"] for i in done.listing.items] == ["QueueParams"]
    assert done.listing.opened_ts == 1.0
