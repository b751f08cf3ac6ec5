"""``pbx-core bench ingest``'s callbacks rows: the bridge with its callbacks part on.

  (e) one engine      what ``pbx-core bridge --callbacks`` does now: one parse and one ``apply``,
                      and after each read the callbacks' pure ``step`` (pacing, abandoned-caller
                      bookings, the dial decisions) over the same deltas, ticking once a second
  (f) two engines     the shape before: the bridge's engine, and the callback worker's own AMI
                      session parsing and applying the same bytes again, then the callbacks

Every queue in the stream has a policy that offers callbacks and calls back abandoned callers, so
the callbacks have real work: bookings, deadlines and dial decisions whenever a queue's line
moves. Their commands (SQL saves, Originates) are the shell's I/O and are not carried out here;
each dialled callback's result (answered) comes back with the next read.
Compare (e) with (c), the bridge alone, measured in the same rounds: the target is e/c close to 1.
"""

from __future__ import annotations

import logging
import time

from pbx_core.callbacks.core.events import WATCHED_EVENTS
from pbx_core.callbacks.core.policy import QueueInfo, QueuePolicy
from pbx_core.callbacks.core.scheduler import Dial
from pbx_core.callbacks.core.service import CallbackService, Mark, PoliciesLoaded, Reconciled, Restored
from pbx_core.domain.queue_state import Delta
from pbx_core.ingest import Ingest

# Every measured run restores a fresh service: its "restored 0 callbacks" line is not news here.
logging.getLogger("pbx_core.callbacks.core.service").setLevel(logging.WARNING)

POLICY = QueuePolicy(offer=True, abandoned_callbacks=True, abandoned_in_line=True)
TICK_S = 1.0  # the engine ticks once a second of wall time
TARGET_WITH_CALLBACKS = 0.95  # "no slower than the bridge alone", within a shared machine's noise


class _Bridge:
    """The engine's loop without asyncio: per read, apply the frames in order (collecting the
    callbacks' watched frames at their places), then the callbacks' step."""

    def __init__(self) -> None:
        self.ingest = Ingest()
        self.service = CallbackService()
        self.service.take(self.ingest.state, Restored(0, (), (), {}), 0.0)
        self.service.take(self.ingest.state, Reconciled(0, frozenset(), 0.0), 0.0)
        self.known_queues = 0
        self.next_tick = time.perf_counter() + TICK_S
        self.results: list[dict[str, str]] = []  # the dialled callbacks' results, due next read

    def feed(self, chunk: bytes) -> list[Delta]:
        ingest = self.ingest
        deltas: list[Delta] = []
        marks: list[Mark] = [(0, result) for result in self.results]
        self.results = []
        for frame in ingest.decoder.feed(chunk):
            if frame.get("Event") in WATCHED_EVENTS:
                marks.append((len(deltas), frame))
            deltas += ingest.frame(frame)
        state = ingest.state
        if len(state.queues) >= 2 * self.known_queues:
            # New queues: their callback policies, as the shell loads them from the database
            # (whenever the queues seen have doubled: in production they are re-read every 30 s).
            self.known_queues = max(1, len(state.queues))
            infos = {_key(name): QueueInfo(POLICY, "Europe/Amsterdam") for name in state.queues}
            marks.append((len(deltas), PoliciesLoaded(0, infos, ingest.clock)))
        now = time.perf_counter()
        ticked = now >= self.next_tick
        if ticked:
            self.next_tick = now + TICK_S
        out, commands = self.service.step(state, deltas, marks, ingest.clock, ticked)
        for command in commands:
            if isinstance(command, Dial):
                # The call happens elsewhere; its result arrives with the next read, as the
                # dialplan's UserEvent would, so the calls in flight stay as few as in production.
                self.results.append(_result(command))
        return deltas + out


def _result(dial: Dial) -> dict[str, str]:
    return {
        "Event": "UserEvent",
        "UserEvent": "PbxCallbackResult",
        "CallbackId": dial.callback.id,
        "OriginateId": dial.originate_id,
        "DialStatus": "ANSWER",
    }


def _key(queue: str) -> tuple[str, str]:
    tenant, _, name = queue.partition("-")
    return tenant, name


def one_engine(chunks: list[bytes]) -> int:
    """(e) The bridge with callbacks: one parse, one apply, the callbacks' step on its deltas."""
    bridge = _Bridge()
    for chunk in chunks:
        bridge.feed(chunk)
    return bridge.ingest.decoder.stats.frames


def two_engines(chunks: list[bytes]) -> int:
    """(f) The shape before: the bridge's engine, plus a worker parsing and applying it all again."""
    bridge = Ingest()
    worker = _Bridge()
    for chunk in chunks:
        bridge.feed(chunk)
        worker.feed(chunk)
    return bridge.decoder.stats.frames


def booked(chunks: list[bytes]) -> int:
    """Callbacks the one-engine run booked on this stream: the callbacks had work to do."""
    bridge = _Bridge()
    for chunk in chunks:
        bridge.feed(chunk)
    return len(bridge.service.state.callbacks)
