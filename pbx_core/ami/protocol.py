"""One AMI connection: our framing and reply correlation around panoramisk's message types.

Why not panoramisk's own ``AMIProtocol``/``Action.multi``: it decodes ASCII, has no frame size
bound, hangs on ``QueueAdd`` ("Added interface to queue" looks like a list to it) and on an
``Error`` reply to an EventList action, and a raising event callback kills the connection. We
keep its public types (``Action`` builds and serialises actions with generated ActionIDs,
``Message`` carries replies) and replace the protocol:

* bytes → :class:`FrameDecoder` → :class:`ListingAssembler`, in stream order;
* a plain reply (Success *or* Error) resolves its action at once; an EventList reply resolves
  with the whole :class:`Listing` when its ``...Complete`` event arrives;
* events go to ``on_event``; a completed *resync* QueueStatus goes to ``on_status`` from inside
  ``data_received``, so it lands in the event queue exactly at its position in the stream;
* nothing raised in here ever reaches asyncio's transport: it is counted and logged.

The protocol knows nothing about reconnecting; :mod:`pbx_core.ami.client` does that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from panoramisk.actions import Action  # type: ignore[import-untyped]  # no type hints
from panoramisk.message import Message  # type: ignore[import-untyped]

from ..domain.headers import Picker
from .clock import AsteriskClock
from .errors import AmiDisconnected, AmiLimitExceeded
from .framing import DEFAULT_MAX_FRAME_BYTES, QUEUE_EVENTS, Frame, FrameDecoder
from .listings import DEFAULT_MAX_LIST_ITEMS, Listing, ListingAssembler
from .stats import AmiCounters

log = logging.getLogger(__name__)

ActionHeaders = Mapping[str, str | Sequence[str]]
_TIMESTAMP = Picker("Timestamp")
Reply: TypeAlias = "Message | Listing"
EventCallback = Callable[[Frame], None]
StatusCallback = Callable[[Listing, float], None]


@dataclass(slots=True)
class Pending:
    """An action waiting for its reply."""

    name: str
    action_id: str
    sent_ts: float  # Asterisk clock (see clock.py), for StatusSnapshot.requested_ts
    future: asyncio.Future[Reply] = field(repr=False)


def build_action(headers: ActionHeaders | Action) -> Action:
    """An ``Action`` with a fresh ActionID. A CR or LF in any value is refused: it would let the
    value inject headers (or a whole second action) into the AMI stream."""
    action = headers if isinstance(headers, Action) else Action(dict(headers))
    for key, value in action.items():
        values = value if isinstance(value, list | tuple) else (value,)
        for v in values:
            if "\r" in str(v) or "\n" in str(v):
                raise ValueError(f"AMI header {key!r} must not contain a line break: {v!r}")
    if "action" not in action:
        raise ValueError("an AMI action needs an 'Action' header")
    return action


class AmiProtocol(asyncio.Protocol):
    """One AMI TCP connection."""

    def __init__(
        self,
        *,
        on_event: EventCallback,
        on_status: StatusCallback,
        counters: AmiCounters | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        wanted: frozenset[str] = QUEUE_EVENTS,
        peer: str = "",
        clock: AsteriskClock | None = None,
        max_list_items: int = DEFAULT_MAX_LIST_ITEMS,
    ) -> None:
        self._on_event = on_event
        self.clock = clock if clock is not None else AsteriskClock()
        self._on_status = on_status
        self.counters = counters if counters is not None else AmiCounters()
        self.decoder = FrameDecoder(wanted, max_frame_bytes)
        self.decoder.stats = self.counters.framing  # one set of counters across reconnects
        self.pending: dict[str, Pending] = {}
        # Only replies to our own actions are assembled, and never more than max_list_items.
        self.listings = ListingAssembler(max_items=max_list_items, expects=self.pending.__contains__)
        self.resync_ids: dict[str, float] = {}  # ActionID -> Asterisk time the QueueStatus was sent
        self.peer = peer
        self.closed = False
        self.last_rx = 0.0
        self.lost: asyncio.Future[BaseException | None] | None = None
        self.transport: asyncio.Transport | None = None
        self.abort_reason = ""  # why we dropped the connection ourselves, for the client's log
        self.resync_running = False  # a resync QueueStatus is in flight (the client's gate)
        self.resync_wanted = False  # and another was asked for meanwhile

    # ----------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.closed = False
        loop = asyncio.get_running_loop()
        self.last_rx = loop.time()
        self.lost = loop.create_future()

    def data_received(self, data: bytes) -> None:
        # Runs inside asyncio's transport callback: it must never raise.
        loop_now = asyncio.get_running_loop().time()
        self.last_rx = loop_now
        if self.closed:
            return  # dropped for overrunning a bound: nothing more is read from this socket
        try:
            frames = self.decoder.feed(data)
        except Exception:
            self._internal_error("decoding %d bytes", len(data))
            return
        if self.decoder.violation is not None:
            self._limit_exceeded(self.decoder.violation)
            return
        if not frames:
            return
        wall = time.time()
        self._observe_clock(frames, wall)
        for frame in frames:
            try:
                if frame.reply:
                    self._dispatch(frame)
                else:
                    self._on_event(frame)  # a plain event: nothing to correlate
            except AmiLimitExceeded as exc:
                self._limit_exceeded(exc)
                return
            except Exception:
                self._internal_error("handling frame %r", _head(frame))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is not None and self.lost.done():
            return
        self.closed = True
        truncated = self.decoder.pending_bytes
        if truncated and not self.abort_reason:  # not when we cut it ourselves (a bound)
            # The half-received frame dies with this decoder: it is never parsed, never applied.
            self.counters.truncated += 1
            log.warning(
                "AMI connection to %s closed mid-frame: %d bytes of a truncated frame dropped",
                self.peer,
                truncated,
            )
        reason = f"AMI connection to {self.peer} lost" + (f": {exc}" if exc else "")
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(
                    AmiDisconnected(f"{reason} while action {pending.name!r} waited for its reply")
                )
        self.pending.clear()
        self.resync_ids.clear()
        self.listings.abandon_all()
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(exc)

    # ----------------------------------------------------------------- actions

    def send_action(self, headers: ActionHeaders | Action, *, resync: bool = False) -> Pending:
        """Write one action. ``resync`` marks a QueueStatus whose listing goes to ``on_status``."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise AmiDisconnected(f"not connected to AMI at {self.peer}")
        action = build_action(headers)
        loop = asyncio.get_running_loop()
        sent = self.clock.now()
        pending = Pending(str(action["action"]), str(action.action_id), sent, loop.create_future())
        self.pending[pending.action_id] = pending
        if resync:
            self.resync_ids[pending.action_id] = pending.sent_ts
        self.transport.write(str(action).encode("utf-8"))
        return pending

    def forget(self, pending: Pending) -> None:
        """The caller stopped waiting (timeout, cancel): a late reply is then ignored, and an
        EventList reply still open for it is dropped with everything it holds."""
        if self.pending.get(pending.action_id) is pending:
            del self.pending[pending.action_id]
        self.resync_ids.pop(pending.action_id, None)
        dropped = self.listings.drop(pending.action_id)
        if dropped is not None:
            self.counters.listings_dropped += 1
            log.warning(
                "AMI at %s: dropped the unfinished reply to %r (%d items) nobody waits for any more",
                self.peer,
                pending.name,
                len(dropped.items),
            )

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now, without waiting for buffered writes (a half-open socket)."""
        if self.transport is not None:
            self.transport.abort()

    # ----------------------------------------------------------------- routing

    def _observe_clock(self, frames: list[Frame], wall: float) -> None:
        """Learn Asterisk's clock from the newest ``Timestamp`` of this read (every frame of a
        read arrived at ``wall``): one header looked up per read, not one per frame."""
        for frame in reversed(frames):
            stamp = (frame.pick(_TIMESTAMP) or {}).get("Timestamp")
            if stamp:
                self.clock.observe(stamp, wall)
                return

    def _dispatch(self, frame: Frame) -> None:
        routed = self.listings.route(frame, self.clock.now())
        if routed.event is not None:
            self._on_event(routed.event)
        elif routed.response is not None:
            action_id = routed.response.get("ActionID", "")
            self.resync_ids.pop(action_id, None)  # an Error reply ends a resync too
            self._resolve(action_id, Message(routed.response))
        elif routed.listing is not None:
            listing = routed.listing
            requested_ts = self.resync_ids.pop(listing.action_id, None)
            if requested_ts is not None:
                # Synchronously, before the next frame: the snapshot keeps its stream position.
                self._on_status(listing, requested_ts)
            self._resolve(listing.action_id, listing)

    def _resolve(self, action_id: str, reply: Reply) -> None:
        pending = self.pending.pop(action_id, None)
        if pending is None:
            log.debug("AMI reply for unknown or abandoned ActionID %r", action_id)
            return
        if not pending.future.done():
            pending.future.set_result(reply)

    def _limit_exceeded(self, exc: AmiLimitExceeded) -> None:
        """The PBX overran a bound on what it feeds us: drop the connection now (the client
        reconnects and resyncs) rather than buffer without end."""
        counts = self.counters.limits_exceeded
        counts[exc.limit] = counts.get(exc.limit, 0) + 1
        self.abort_reason = f"{exc}; dropped the connection to stay within bounds"
        log.error("AMI at %s: %s", self.peer, self.abort_reason)
        self.closed = True
        self.listings.abandon_all()
        self.abort()

    def _internal_error(self, what: str, *args: object) -> None:
        self.counters.internal_errors += 1
        log.exception("internal error in the AMI socket callback (%s); the connection continues", what % args)


def _head(frame: Frame) -> str:
    return frame.name or frame.get("Response") or "?"
