"""Connection state and counters of one AMI client, for logs and ``/metrics``.

Plain attributes on one object shared by the client and each connection's protocol: everything
runs on the event loop thread, so reading them never needs a lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .framing import FramingStats


@dataclass(slots=True)
class AmiCounters:
    connected: bool = False
    connects: int = 0  # successful logins
    connect_failures: int = 0  # refused, unreachable, timed out, closed during login
    auth_failures: int = 0
    disconnects: int = 0  # established sessions that ended
    pings: int = 0  # watchdog Pings sent after silence
    ping_timeouts: int = 0  # half-open sockets the watchdog aborted
    truncated: int = 0  # connections that ended mid-frame
    internal_errors: int = 0  # exceptions caught in the socket callback
    events_queued: int = 0
    dropped_overflow: int = 0  # events dropped because the engine queue was full
    dropped_extra: int = 0  # of those, extra events (UserEvent, OriginateResponse): not resynced
    resyncs: int = 0  # QueueStatus snapshots pushed into the engine queue
    filter_denied: int = 0  # sessions where Asterisk refused the event Filter
    user_events_ignored: int = 0  # UserEvents that are not pbx-core's own (AmiOptions.user_events)
    listings_dropped: int = 0  # EventList replies dropped unfinished when their action timed out
    # Connections dropped because the PBX overran a bound, by bound: listing_items,
    # open_listings, banner.
    limits_exceeded: dict[str, int] = field(default_factory=dict)
    last_error: str = ""
    framing: FramingStats = field(default_factory=FramingStats)

    def as_dict(self) -> dict[str, Any]:
        f = self.framing
        return {
            "connected": self.connected,
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "auth_failures": self.auth_failures,
            "disconnects": self.disconnects,
            "pings": self.pings,
            "ping_timeouts": self.ping_timeouts,
            "truncated": self.truncated,
            "internal_errors": self.internal_errors,
            "events_queued": self.events_queued,
            "dropped_overflow": self.dropped_overflow,
            "dropped_extra": self.dropped_extra,
            "resyncs": self.resyncs,
            "filter_denied": self.filter_denied,
            "user_events_ignored": self.user_events_ignored,
            "listings_dropped": self.listings_dropped,
            "limits_exceeded": dict(self.limits_exceeded),
            "last_error": self.last_error,
            "frames": f.frames,
            "parsed": f.parsed,
            "noise": f.noise,
            "malformed": f.malformed,
            "oversized": f.oversized,
            "bytes": f.bytes,
        }
