"""The bus's Redis layout: key names and the snapshot / entry encoding readers depend on."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from pbx_core.bus.keys import (
    Snapshot,
    connect,
    entry_fields,
    epoch_key,
    parse_entries,
    snapshot_key,
    stream_key,
)
from pbx_core.config import ConfigError, Settings
from pbx_core.domain.board import empty_board


def test_key_names_follow_the_design_with_the_tenant_as_hash_tag() -> None:
    assert stream_key("acme") == "pbx:{acme}:events"
    assert snapshot_key("acme") == "pbx:{acme}:snapshot"
    assert epoch_key("acme") == "pbx:{acme}:epoch"
    # One slot per tenant (what a Redis Cluster hashes), and tenants spread over the slots.
    for tenant in ("acme", "t1", "zz9"):
        keys = (stream_key(tenant), snapshot_key(tenant), epoch_key(tenant))
        assert len({key_slot(k.encode()) for k in keys}) == 1
    assert len({key_slot(stream_key(f"t{i}").encode()) for i in range(50)}) > 40


def test_a_cluster_url_gives_a_cluster_client_and_bad_urls_are_refused() -> None:
    assert isinstance(connect("redis://127.0.0.1:6379/0"), Redis)
    assert isinstance(connect("redis+cluster://127.0.0.1:7000"), RedisCluster)
    for good in ("redis://r:6379/0", "rediss://r:6380", "unix:///run/redis.sock", "redis+cluster://r:7000"):
        assert Settings.from_env({"PBX_REDIS_URL": good}).redis_url == good
    for bad, message in (("http://r:6379", "got scheme 'http'"), ("redis+cluster://r:7000/3", "no database"),
                         ("redis+cluster:///x", "names one node")):  # fmt: skip
        with pytest.raises(ConfigError, match=f"PBX_REDIS_URL.*{message}"):
            Settings.from_env({"PBX_REDIS_URL": bad})


def test_a_snapshot_round_trips_and_a_missing_one_is_the_empty_start() -> None:
    board = {"tenant": "acme", "queues": {"acme-support": {"waiting": [{"name": "Zoë"}]}}}
    snap = Snapshot("acme", board, "1700000000000-3", 42, epoch=2)
    assert Snapshot.decode("acme", snap.encode().encode()) == snap
    assert "Zoë" in snap.encode()  # UTF-8, not \\u escapes
    assert Snapshot.decode("acme", None) == Snapshot("acme", empty_board("acme"), "0-0", 0)


def test_entries_decode_to_id_sequence_and_delta_json() -> None:
    fields = entry_fields('{"type":"caller.left"}', 7)
    raw = [(b"1-0", {b"d": str(fields["d"]).encode(), b"n": str(fields["n"]).encode()})]
    assert parse_entries(raw) == [("1-0", 7, b'{"type":"caller.left"}')]
