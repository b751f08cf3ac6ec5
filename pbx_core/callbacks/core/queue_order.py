"""The virtual line: live callers and callbacks ordered by when they took their place.

A caller who accepts a callback leaves Asterisk's queue but keeps their original join time as
their place. Whoever took their place earliest is served first, live or callback, so a callback
requested at position 3 is served after positions 1-2 and before everyone who joined later.

Callbacks of the fill tier (by default: automatic callbacks to callers who hung up) stand behind
everyone in line: they take an agent only when no live caller and no in-line callback is
waiting for it, so under load they soak up idle time instead of pushing live callers back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from heapq import merge

from .model import Callback

LIVE = 0
CALLBACK = 1


@dataclass(frozen=True, slots=True, order=True)
class Place:
    tier: int  # 0: in line; 1: fill (behind everyone in line)
    at: float
    kind: int  # at equal times a live caller (already on the line) goes first
    id: str


def live_place(caller_id: str, joined_at: float) -> Place:
    return Place(0, joined_at, LIVE, caller_id)


def callback_place(callback: Callback) -> Place:
    return Place(callback.tier, callback.place_at, CALLBACK, callback.id)


def line(live: Iterable[Place], callbacks: Iterable[Callback]) -> list[Place]:
    """Everyone waiting, in the order they are to be served."""
    return list(merge(sorted(live), sorted(callback_place(c) for c in callbacks)))


def position(places: Sequence[Place], place_id: str) -> int | None:
    """1-based position in the line (the number to announce), None if not in it."""
    for index, place in enumerate(places, start=1):
        if place.id == place_id:
            return index
    return None


def callbacks_first_in_line(
    live_joined_at: Sequence[float],
    callbacks: Sequence[Callback],
    free_agents: int,
    fill_reserve: int = 0,
    max_fill: int | None = None,
) -> list[Callback]:
    """The callbacks whose turn it is when ``free_agents`` agents are free: those among the first
    ``free_agents`` places of the line. Live callers ahead of them take the agents before them.

    A fill callback is taken only while ``fill_reserve`` agents stay free after it: an agent
    kept idle answers the next live caller at once, which is what keeps the service level; and at
    most ``max_fill`` of them (None: no limit), the pacing's allowance."""
    if free_agents <= 0 or not callbacks:
        return []
    live = sorted(live_joined_at)
    ordered = sorted(callbacks, key=callback_place)
    chosen: list[Callback] = []
    li = ci = fills = 0
    for slot in range(free_agents):
        if ci >= len(ordered):
            break
        if ordered[ci].tier > 0 and li >= len(live):
            # Only fill work is left: it must leave the reserve free and stay within the allowance.
            if free_agents - slot - 1 < fill_reserve or (max_fill is not None and fills >= max_fill):
                break
            fills += 1
        if li < len(live) and live_place("", live[li]) < callback_place(ordered[ci]):
            li += 1  # a live caller who joined earlier takes this agent
        else:
            chosen.append(ordered[ci])
            ci += 1
    return chosen
