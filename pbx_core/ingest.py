"""The whole ingest path, sans-IO: AMI bytes → frames → typed events → ``apply`` → deltas.

Replay and the ingest benchmark drive it directly; the live bridge runs the same pieces split
across the socket callback (framing, listings) and the engine task (normalise, apply).
"""

from __future__ import annotations

import time

from .ami.errors import AmiLimitExceeded
from .ami.framing import DEFAULT_MAX_FRAME_BYTES, Frame, FrameDecoder
from .ami.listings import Listing, ListingAssembler
from .domain.events import Event, normalise, status_snapshot
from .domain.queue_state import Delta, EngineSettings, LiveState, apply


def listing_event(listing: Listing, ts: float) -> Event | None:
    """A completed QueueStatus reply becomes one resync event; other listings are not ours.

    Not ``complete``: a recording shows the reply but not the action, which may have asked for
    one queue only, so a queue the reply does not list is not taken as deleted."""
    if not listing.is_queue_status:
        return None
    return status_snapshot(listing.items, ts=ts, requested_ts=listing.opened_ts, complete=False)


class Ingest:
    """Feed it bytes; it keeps the live state current and returns the deltas.

    ``clock`` is the latest event time seen, starting at ``start_ts``. Frames without a
    ``Timestamp`` (QueueStatus items; every event of an Asterisk without ``timestampevents``) are
    stamped with it, so a replay is deterministic. ``start_ts`` defaults to now, the clock a live
    bridge would use; never the epoch, which would put every such event on 1970-01-01.
    """

    def __init__(
        self,
        settings: EngineSettings | None = None,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        start_ts: float | None = None,
    ) -> None:
        self.decoder = FrameDecoder(max_frame_bytes=max_frame_bytes)
        self.listings = ListingAssembler()
        self.state = LiveState(settings=settings or EngineSettings())
        self.clock = time.time() if start_ts is None else start_ts
        self._clock_from_stream = False  # has an event brought its own time yet?
        self.limits_exceeded = 0  # EventList replies given up on for overrunning their bound

    def feed(self, data: bytes) -> list[Delta]:
        deltas: list[Delta] = []
        state = self.state
        for frame in self.decoder.feed(data):
            if frame.reply:
                deltas += self.frame(frame)
                continue
            # The hot loop, inlined: a plain event straight to normalise and apply.
            event = normalise(frame, self.clock)
            if event is not None:
                if event.ts > self.clock or (event.ts != self.clock and not self._clock_from_stream):
                    self._advance(event.ts)
                deltas += apply(state, event)
        return deltas

    def frame(self, frame: Frame) -> list[Delta]:
        # Most frames are plain events: only a Response or an ActionID can belong to an action's
        # reply, so only those go through the listing assembler.
        if frame.reply:
            try:
                routed = self.listings.route(frame, self.clock)
            except AmiLimitExceeded:
                # A live bridge would drop the connection; a recording has no other session to
                # reconnect to: forget the open replies (bounded memory) and read on.
                self.limits_exceeded += 1
                self.listings.abandon_all()
                return []
            if routed.event is not None:
                event = normalise(routed.event, self.clock)
            elif routed.listing is not None:
                event = listing_event(routed.listing, self.clock)
            else:
                return []
        else:
            event = normalise(frame, self.clock)
        if event is None:
            return []
        if event.ts > self.clock or (event.ts != self.clock and not self._clock_from_stream):
            self._advance(event.ts)
        return apply(self.state, event)

    def _advance(self, ts: float) -> None:
        """The stream's own time: the first event that brings one replaces ``start_ts`` (which
        may be later, e.g. now for an old recording); after that the clock only moves forward."""
        self._clock_from_stream = True
        self.clock = ts

    def feed_events(self, events: list[Event]) -> list[Delta]:
        deltas: list[Delta] = []
        for event in events:
            deltas.extend(apply(self.state, event))
        return deltas
