"""EventList replies (QueueStatus, QueueSummary, ...) assembled in stream order.

A reply opens with ``Response: Success`` + ``EventList: start``, continues with events carrying
the same ``ActionID`` and closes with a ``...Complete`` event. The same assembler serves the live
client (which also resolves the action's future) and replay (which has no futures), so a
recorded QueueStatus becomes the same resync as a live one, at the same point in the stream.

Everything held here is fed by the PBX, so it is bounded: at most ``max_items`` items across the
open replies and ``max_open`` replies at once (:class:`AmiLimitExceeded` past either), and the
live client opens a reply only for an action it is waiting on (``expects``) and drops it when
it stops waiting (:meth:`ListingAssembler.drop`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..domain.headers import Headers
from .errors import AmiLimitExceeded
from .framing import Frame

DEFAULT_MAX_LIST_ITEMS = 200_000  # a QueueStatus of 1,000 tenants x 5 queues x 20 members fits
DEFAULT_MAX_OPEN_LISTINGS = 64


@dataclass(slots=True)
class Listing:
    action_id: str
    response: Frame
    opened_ts: float
    items: list[Frame] = field(default_factory=list)
    complete_event: str = ""

    @property
    def is_queue_status(self) -> bool:
        return self.complete_event == "QueueStatusComplete"


@dataclass(slots=True)
class Routed:
    """What one frame turned out to be. Exactly one of the fields is set (or none, if consumed)."""

    event: Frame | None = None
    response: Frame | None = None
    listing: Listing | None = None


_CONSUMED = Routed()


class ListingAssembler:
    __slots__ = ("_expects", "_items", "_open", "max_items", "max_open")

    def __init__(
        self,
        *,
        max_items: int = DEFAULT_MAX_LIST_ITEMS,
        max_open: int = DEFAULT_MAX_OPEN_LISTINGS,
        expects: Callable[[str], bool] | None = None,
    ) -> None:
        self._open: dict[str, Listing] = {}
        self._items = 0  # across every open listing
        self._expects = expects
        self.max_items = max_items
        self.max_open = max_open

    @property
    def open_count(self) -> int:
        return len(self._open)

    @property
    def buffered_items(self) -> int:
        return self._items

    def route(self, frame: Frame, now: float) -> Routed:
        if type(frame) is Headers and not frame.reply:
            return Routed(event=frame)  # a plain event: no ActionID, not a Response
        action_id = frame.get("ActionID")
        # A frame with an ``Event:`` header is an event even when it also has ``Response:``:
        # OriginateResponse carries both (and the Originate's ActionID), and it is the outcome
        # of an Async Originate, not the action's reply (that came earlier as "Response: Success").
        if "Response" in frame and "Event" not in frame:
            expected = self._expects is None or self._expects(action_id or "")
            if action_id and expected and frame.get("EventList", "").lower() == "start":
                self._start(action_id, frame, now)
                return _CONSUMED
            return Routed(response=frame)
        if action_id:
            listing = self._open.get(action_id)
            if listing is not None:
                if frame.get("EventList", "").lower() == "complete":
                    del self._open[action_id]
                    self._items -= len(listing.items)
                    listing.complete_event = frame.get("Event", "")
                    return Routed(listing=listing)
                if self._items >= self.max_items:
                    raise AmiLimitExceeded(
                        "listing_items",
                        f"EventList replies passed {self.max_items} items without completing "
                        f"({listing.response.get('Message') or 'ActionID ' + action_id})",
                    )
                listing.items.append(frame)
                self._items += 1
                return _CONSUMED
        return Routed(event=frame)

    def _start(self, action_id: str, frame: Frame, now: float) -> None:
        if action_id in self._open:
            self.drop(action_id)  # reopened: the first one will never complete
        elif len(self._open) >= self.max_open:
            raise AmiLimitExceeded(
                "open_listings", f"more than {self.max_open} EventList replies open at once"
            )
        self._open[action_id] = Listing(action_id, frame, now)

    def drop(self, action_id: str) -> Listing | None:
        """Nobody waits for this reply any more (the action timed out): forget what it holds.
        Items that still arrive for it pass through as plain events."""
        listing = self._open.pop(action_id, None)
        if listing is not None:
            self._items -= len(listing.items)
        return listing

    def abandon_all(self) -> list[Listing]:
        """The connection dropped: these replies will never complete."""
        dropped = list(self._open.values())
        self._open.clear()
        self._items = 0
        return dropped
