"""EventList replies (QueueStatus, QueueSummary, ...) assembled in stream order.

A reply opens with ``Response: Success`` + ``EventList: start``, continues with events carrying
the same ``ActionID`` and closes with a ``...Complete`` event. The same assembler serves the live
client (which also resolves the action's future) and replay (which has no futures), so a
recorded QueueStatus becomes the same resync as a live one, at the same point in the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .framing import Frame


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
    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[str, Listing] = {}

    @property
    def open_count(self) -> int:
        return len(self._open)

    def route(self, frame: Frame, now: float) -> Routed:
        action_id = frame.get("ActionID")
        # A frame with an ``Event:`` header is an event even when it also has ``Response:``:
        # OriginateResponse carries both (and the Originate's ActionID), and it is the outcome
        # of an Async Originate, not the action's reply (that came earlier as "Response: Success").
        if "Response" in frame and "Event" not in frame:
            if action_id and frame.get("EventList", "").lower() == "start":
                self._open[action_id] = Listing(action_id, frame, now)
                return _CONSUMED
            return Routed(response=frame)
        if action_id:
            listing = self._open.get(action_id)
            if listing is not None:
                if frame.get("EventList", "").lower() == "complete":
                    del self._open[action_id]
                    listing.complete_event = frame.get("Event", "")
                    return Routed(listing=listing)
                listing.items.append(frame)
                return _CONSUMED
        return Routed(event=frame)

    def abandon_all(self) -> list[Listing]:
        """The connection dropped: these replies will never complete."""
        dropped = list(self._open.values())
        self._open.clear()
        return dropped
