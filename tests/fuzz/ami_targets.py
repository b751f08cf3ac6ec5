"""Fuzz targets for the AMI framing and the event normaliser: any bytes in, invariants out.

One function per target, shared by the two drivers: hypothesis in the suite
(``tests/unit/test_fuzz_ami.py``, a bounded number of examples on every run) and atheris
(``tests/fuzz/fuzz_ami.py``, coverage-guided, for a bounded time). Each target raises
``AssertionError`` (or whatever escapes the code under test) when an invariant breaks:

* nothing the PBX sends makes the decoder, the listing assembler, ``normalise`` or ``apply``
  raise;
* the decoder's buffer stays within ``max_frame_bytes`` (+3 for a split terminator) and the
  banner within its bound, whatever the input;
* a stream decodes to the same frames and counters in one read or in many (cut where the input
  says), so TCP segmentation never changes what the engine sees;
* every frame has an ``Event`` or ``Response`` header, and its keys are non-empty words;
* ``normalise`` gives the same event from a frame read lazily (the few headers it needs picked
  out of the text) as from the same frame parsed in full;
* the queue counters stay consistent (offered = answered + abandoned + waiting + other exits).
"""

from __future__ import annotations

import hashlib

from pbx_core.ami.framing import MAX_BANNER_BYTES, QUEUE_EVENTS, Frame, FrameDecoder, FramingStats
from pbx_core.domain.events import normalise
from pbx_core.ingest import Ingest

SMALL_LIMIT = 512  # small enough that fuzz inputs reach it
START_TS = 1795338000.0


def cut_points(data: bytes, salt: bytes = b"") -> list[int]:
    """Deterministic read boundaries derived from the input itself (so a crash reproduces)."""
    digest = hashlib.blake2b(salt + data, digest_size=16).digest()
    if not data:
        return []
    return sorted({b * len(data) // 256 for b in digest[: 1 + digest[0] % 12]})


def decode(data: bytes, cuts: list[int], limit: int) -> tuple[list[Frame], FramingStats, FrameDecoder]:
    dec = FrameDecoder(QUEUE_EVENTS, max_frame_bytes=limit)
    frames: list[Frame] = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        frames += dec.feed(data[start:end])
        if dec.banner is None:
            assert dec.pending_bytes <= MAX_BANNER_BYTES + (end - start), "banner buffer unbounded"
        else:
            assert dec.pending_bytes <= max(limit + 3, end - start), "frame buffer unbounded"
    return frames, dec.stats, dec


def check_framing(data: bytes) -> None:
    for limit in (SMALL_LIMIT, 256 * 1024):
        whole, whole_stats, _ = decode(data, [], limit)
        split, split_stats, dec = decode(data, cut_points(data), limit)
        assert [dict(f) for f in split] == [dict(f) for f in whole], "frames depend on read boundaries"
        assert split_stats == whole_stats, "counters depend on read boundaries"
        assert dec.stats.parsed == len(split)
        for lazy in whole:  # not read yet: normalise picks its headers out of the text
            event = normalise(lazy, START_TS)
            assert event == normalise(dict(lazy), START_TS), "lazy and full parse disagree"
        for frame in split:
            assert "Event" in frame or "Response" in frame
            for key in frame:
                assert key.split() == [key], f"not a header key: {key!r}"  # no whitespace, not empty
            normalise(frame, START_TS)  # never raises on what the decoder lets through


def check_ingest(data: bytes) -> None:
    ingest = Ingest(start_ts=START_TS)
    for start, end in zip([0, *cut_points(data, b"i")], [*cut_points(data, b"i"), len(data)], strict=True):
        ingest.feed(data[start:end])
    for q in ingest.state.queues.values():
        assert q.counters.is_consistent(len(q.callers)), (q.name, q.counters)
    assert ingest.listings.buffered_items <= ingest.listings.max_items


def check(data: bytes) -> None:
    check_framing(data)
    check_ingest(data)
