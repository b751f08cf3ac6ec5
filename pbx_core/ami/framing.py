"""Sans-IO AMI framing: bytes in, frames (:class:`~pbx_core.domain.headers.Headers`) out.

This replaces panoramisk's parser on the hot path (see DESIGN.md): panoramisk decodes the
stream as ASCII (dropping the "ë" in "Zoë"), builds a case-insensitive dict for every frame and
has no bound on frame size. About 90% of real AMI traffic is noise the queue engine never needs
(VarSet, Newexten, ...), so noise is recognised from the first line and skipped unparsed: one
compiled regex tells noise from the rest in C (``filter``), so a noise frame costs no Python loop
iteration at all.

An event that is kept is not parsed here either: its frame carries the decoded text and its
name, and the normaliser picks out the few headers it needs (see ``domain/headers.py``). Only
replies and EventList items (anything with an ``ActionID``) are parsed in full at once.

The decoder never raises on bad input: garbage, truncated and oversized frames are counted in
:class:`FramingStats` and dropped; the stream continues with the next frame.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..domain.headers import Headers, parse_headers
from .errors import AmiLimitExceeded

log = logging.getLogger(__name__)

Frame = Headers  # one frame's headers, parsed on demand (see pbx_core.domain.headers)

FRAME_END = b"\r\n\r\n"
BANNER_PREFIX = b"Asterisk Call Manager/"
ACTION_ID = b"\r\nActionID: "
DEFAULT_MAX_FRAME_BYTES = 256 * 1024
TERMINATOR_HEAD = len(FRAME_END) - 1  # bytes at the end of a read that may start a terminator
MAX_BANNER_BYTES = 1024  # "Asterisk Call Manager/11.0.0\r\n" is 30

# Events the queue engine consumes, plus the EventList items of the actions we send.
QUEUE_EVENTS: frozenset[str] = frozenset(
    {
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "AgentRingNoAnswer",
        "AgentDump",
        "QueueMemberAdded",
        "QueueMemberRemoved",
        "QueueMemberPause",
        "QueueMemberPaused",  # pre-Asterisk-12 spelling, harmless to accept
        "QueueMemberStatus",
        "QueueMemberPenalty",
        "QueueMemberRinginuse",
        "QueueMemberRinginuseUpdate",
        "QueueParams",
        "QueueMember",
        "QueueEntry",
        "QueueStatusComplete",
        "QueueSummary",
        "QueueSummaryComplete",
        "Hangup",
        "FullyBooted",
        "Shutdown",
    }
)


@dataclass(slots=True)
class FramingStats:
    """Counters a shell exports as metrics. Plain ints: read them, never lock them."""

    frames: int = 0
    parsed: int = 0
    noise: int = 0
    malformed: int = 0
    oversized: int = 0
    bytes: int = 0


def _first_lines(names: Iterable[str]) -> frozenset[bytes]:
    return frozenset(f"Event: {name}".encode() for name in names)


def _keep_matcher(first_lines: frozenset[bytes]) -> Callable[[bytes], re.Match[bytes] | None]:
    r"""``match(chunk)`` is falsy exactly when ``chunk`` starts with an ``Event: `` line that is not
    in ``first_lines``. Everything else (wanted events, responses, garbage, chunks led by stray
    CR/LF) goes to the per-frame loop; ``\Z``, not ``$``, so a one-line frame ends at the name.
    """
    # A name spanning CRLF can never equal a first line; left in, it could match across lines.
    lines = sorted(line for line in first_lines if b"\r\n" not in line)
    names = b"|".join(re.escape(line[len(b"Event: ") :]) for line in lines)
    wanted = rb"|Event: (?:" + names + rb")(?:\r\n|\Z)" if lines else b""
    return re.compile(rb"(?!Event: )" + wanted).match


class FrameDecoder:
    """Incremental AMI frame decoder.

    ``feed(data)`` returns the parsed frames completed by ``data``, in stream order. Events whose
    name is not in ``wanted`` are skipped without parsing unless they carry an ``ActionID``
    (then they belong to an action's EventList reply and someone is waiting for them).
    """

    __slots__ = (
        "_buf",
        "_discarding",
        "_keep",
        "_wanted",
        "banner",
        "max_frame_bytes",
        "stats",
        "violation",
    )

    def __init__(
        self,
        wanted: Iterable[str] = QUEUE_EVENTS,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self._wanted = _first_lines(wanted)
        self._keep = _keep_matcher(self._wanted)
        self._buf = b""
        self._discarding = False
        self.banner: str | None = None
        self.max_frame_bytes = max_frame_bytes
        self.stats = FramingStats()
        # Set when the peer broke the protocol beyond repair (a banner without a line ending):
        # the decoder carries on regardless, a live connection should be dropped.
        self.violation: AmiLimitExceeded | None = None

    def want(self, *names: str) -> None:
        """Also parse these event names (e.g. the items of a custom EventList action)."""
        self._wanted = self._wanted | _first_lines(names)
        self._keep = _keep_matcher(self._wanted)

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self.stats.bytes += len(data)
        buf = self._buf + data if self._buf else data
        if self.banner is None and buf:
            buf = self._take_banner(buf)
            if self.banner is None:
                self._buf = buf
                return []
        if self._discarding:
            end = buf.find(FRAME_END)
            if end < 0:
                # Keep only a tail long enough to spot a terminator split across reads.
                self._buf = buf[-3:]
                return []
            buf = buf[end + 4 :]
            self._discarding = False

        chunks = buf.split(FRAME_END)
        rest = chunks.pop()
        if len(rest) > self.max_frame_bytes + TERMINATOR_HEAD:
            rest = self._bound_pending(rest)
        self._buf = rest
        return self._decode(chunks, ACTION_ID in buf)

    def _bound_pending(self, rest: bytes) -> bytes:
        """Keep an unfinished frame only while it can still fit, deciding exactly as for the whole
        frame, so where TCP splits the stream never changes what is kept.

        The whole frame is measured without its leading CR/LF (see ``_decode``), and up to 3 bytes
        at the end of ``rest`` may be the start of its terminator, not of its body: only beyond
        that is it certainly oversized.
        """
        body = rest.lstrip(b"\r\n")
        if not body:
            return rest[-TERMINATOR_HEAD:]  # only blank lines so far: nothing of a frame to keep
        if len(body) <= self.max_frame_bytes + TERMINATOR_HEAD:
            return body
        self.stats.frames += 1  # the frame is decided now, as it is when it arrives whole
        self._oversized(len(body), complete=False)
        self._discarding = True
        return rest[-TERMINATOR_HEAD:]

    def _decode(self, chunks: list[bytes], action_ids: bool) -> list[Frame]:
        frames: list[Frame] = []
        wanted = self._wanted
        stats = self.stats
        keep = self._keep
        if chunks and max(map(len, chunks)) > self.max_frame_bytes:  # rare: C-level check first
            chunks = self._drop_oversized(chunks)
        if action_ids:  # rare: some noise may belong to an EventList reply, look inside each one
            kept = [chunk for chunk in chunks if keep(chunk) or ACTION_ID in chunk]
        else:
            kept = list(filter(keep, chunks))  # C-level loop: dropped noise never reaches Python
        stats.frames += len(chunks)
        stats.noise += len(chunks) - len(kept)
        for chunk in kept:
            if chunk[:7] == b"Event: " and not (action_ids and ACTION_ID in chunk):
                # The common case, first: an event, parsed when, and as far as, someone reads it.
                text = chunk.decode("utf-8", "replace")
                eol = text.find("\r\n")
                frames.append(Frame(text, text[7:eol] if eol >= 0 else text[7:]))
                continue
            if chunk[:1] == b"\r" or chunk[:1] == b"\n":
                chunk = chunk.lstrip(b"\r\n")
                if not chunk:
                    stats.frames -= 1  # stray blank line, not a frame
                    continue
                # Only here can a kept chunk still be noise: the regex saw the CR/LF, not the event.
                if chunk[:7] == b"Event: ":
                    eol = chunk.find(b"\r\n")
                    first = chunk if eol < 0 else chunk[:eol]
                    if first not in wanted and ACTION_ID not in chunk:
                        stats.noise += 1
                        continue
            text = chunk.decode("utf-8", "replace")
            if text[:7] == "Event: " and not (action_ids and ACTION_ID in chunk):
                # An event: its headers are parsed when, and as far as, someone reads them.
                eol = text.find("\r\n")
                frames.append(Frame(text, text[7:eol] if eol >= 0 else text[7:]))
            else:  # a reply, an EventList item, or something else: parsed now, checked now
                fields = parse_headers(text)
                if fields is None:
                    stats.malformed += 1
                    log.warning("dropped malformed AMI frame: %r", chunk[:120])
                    continue
                frames.append(Frame(text, fields.get("Event", ""), reply=True, fields=fields))
        stats.parsed += len(frames)
        return frames

    def _drop_oversized(self, chunks: list[bytes]) -> list[bytes]:
        """Oversized frames are dropped before anything else is decided about them (noise or
        not), as an unfinished one is in ``_bound_pending``: a frame's fate must not depend on
        whether it arrived in one read. Measured without leading CR/LF, like every frame."""
        kept = []
        for chunk in chunks:
            size = len(chunk)
            if size > self.max_frame_bytes and chunk[:1] in (b"\r", b"\n"):
                size = len(chunk.lstrip(b"\r\n"))
            if size > self.max_frame_bytes:
                self.stats.frames += 1
                self._oversized(size, complete=True)
            else:
                kept.append(chunk)
        return kept

    def _take_banner(self, buf: bytes) -> bytes:
        if not buf.startswith(BANNER_PREFIX[: len(buf)]):
            self.banner = ""  # no banner: a recording cut mid-stream, or a non-Asterisk peer
            return buf
        eol = buf.find(b"\r\n", 0, MAX_BANNER_BYTES + 2)  # a banner is one short line
        if eol < 0:
            if len(buf) >= MAX_BANNER_BYTES + 2:  # decided the same whatever the reads were
                # Never buffered (and copied on every read) without bound: give up on a banner
                # and read on as frames, which have their own bound.
                self.banner = ""
                self.violation = AmiLimitExceeded(
                    "banner", f"no line ending in the first {len(buf)} bytes: not an AMI banner"
                )
            return buf
        self.banner = buf[:eol].decode("utf-8", "replace")
        return buf[eol + 2 :]

    def _oversized(self, size: int, *, complete: bool) -> None:
        self.stats.oversized += 1
        log.warning(
            "dropped oversized AMI frame (%s%d bytes > limit %d)",
            "" if complete else "at least ",
            size,
            self.max_frame_bytes,
        )


def parse_frame(chunk: bytes) -> Frame | None:
    """Parse one whole frame (without its terminator) now; None if it has no Event/Response.

    UTF-8 is decoded with replacement, so a caller name like "Zoë Özdemir-Müller" survives and
    a stray invalid byte cannot stop the stream. Repeated headers (``Output:`` of a Command
    reply) are joined with newlines.
    """
    text = chunk.decode("utf-8", "replace")
    fields = parse_headers(text)
    if fields is None:
        return None
    return Frame(text, fields.get("Event", ""), reply=True, fields=fields)


def encode_frame(headers: Iterable[tuple[str, str]]) -> bytes:
    """Serialise headers as one AMI frame. Used by the simulator and the tests."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("utf-8") + b"\r\n"
