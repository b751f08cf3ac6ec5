"""What the bus looks like in Redis: key names, entry and snapshot encoding, client settings.

Every key of a tenant carries the tenant as a hash tag (the braces are literal: ``pbx:{acme}:
events``), so on a Redis Cluster all of a tenant's keys live in one slot, on one master: the
snapshot and the stream it points into fail over together and never disagree, and a tenant's
commands may be pipelined (or MULTI'd) together. Tenants spread over the slots.

- ``pbx:{tenant}:events``: a stream; each entry has ``d`` (the delta JSON, ``delta_dict`` shape)
  and ``n`` (the tenant's entry sequence number, consecutive, so a reader can tell a gap).
- ``pbx:{tenant}:snapshot``: JSON ``{v, tenant, last_id, seq, epoch, board}``; the board is exact
  up to stream entry ``last_id``, whose ``n`` is ``seq``.
- ``pbx:{tenant}:epoch``: an integer the API moves on (INCR) when it deletes the tenant, together
  with deleting the two keys above. A snapshot written at an older epoch belongs to the deleted
  tenant: readers ignore it and the publisher starts the tenant afresh (slug reuse never shows
  the previous tenant's data). Absent: epoch 0.
- ``pbx:tenants``: a set of the tenants that have a stream. Not tenant-tagged (it is one key for
  all tenants): on a cluster it lives in its own slot, written only at snapshot rewrites, read by
  /metrics, and always in non-transactional pipelines, which a cluster client splits per node.

``connect`` takes ``redis://``, ``rediss://``, ``unix://``, or ``redis+cluster://host:port``
(``rediss+cluster://``) for a Redis Cluster: any one node, the client learns the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.typing import EncodableT, FieldT

from ..domain.board import BUS_VERSION, Board, DeltaDict, empty_board

TENANTS_KEY = "pbx:tenants"
# Revoked API keys' public ids, read by every web replica (pbx_core.web.revocation). Two parts,
# so it can never be a tenant's ``pbx:{tenant}:…`` key.
REVOKED_KEY = "pbx:revoked"
RedisClient = Redis | RedisCluster
# What a dead, restarting or failing-over Redis (or Redis Cluster) raises at a client.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
NO_ID = "0-0"
# A stream entry of this type carries no change: the publisher rewrote the snapshot (its ``n``
# skips a number, so readers following the stream see a gap at once and reload).
MARKER_TYPE = "snapshot.rewritten"


def stream_key(tenant: str) -> str:
    return f"pbx:{{{tenant}}}:events"


def snapshot_key(tenant: str) -> str:
    return f"pbx:{{{tenant}}}:snapshot"


def epoch_key(tenant: str) -> str:
    return f"pbx:{{{tenant}}}:epoch"


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def entry_fields(delta_json: str, seq: int) -> dict[FieldT, EncodableT]:
    return {"d": delta_json, "n": seq}


def marker(tenant: str, ts: float) -> DeltaDict:
    return {"v": BUS_VERSION, "type": MARKER_TYPE, "tenant": tenant, "queue": "", "ts": ts, "data": {}}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A tenant's board, exact up to stream entry ``last_id`` (sequence number ``seq``)."""

    tenant: str
    board: Board
    last_id: str = NO_ID
    seq: int = 0
    epoch: int = 0  # the tenant's epoch when it was written (see ``epoch_key``)
    # The PBX's clock minus the publisher's wall clock, learnt from the last delta's ``ts``
    # (None before any): a reader of an idle tenant still knows what time it is on the PBX.
    clock_offset_s: float | None = None

    def encode(self) -> str:
        return dumps(
            {"v": BUS_VERSION, "tenant": self.tenant, "last_id": self.last_id, "seq": self.seq,
             "epoch": self.epoch, "clock_offset_s": self.clock_offset_s, "board": self.board}
        )  # fmt: skip

    @classmethod
    def decode(cls, tenant: str, raw: bytes | str | None) -> Snapshot:
        if raw is None:  # nothing published yet: the empty board before the first entry
            return cls(tenant, empty_board(tenant))
        obj = json.loads(raw)
        offset = obj.get("clock_offset_s")
        return cls(
            tenant, obj["board"], str(obj["last_id"]), int(obj["seq"]), int(obj.get("epoch", 0)),
            float(offset) if isinstance(offset, int | float) else None,
        )  # fmt: skip


def parse_epoch(raw: bytes | str | None) -> int:
    return int(raw) if raw is not None else 0


def parse_entries(raw: Any) -> list[tuple[str, int, bytes]]:
    """XRANGE's ``[(id, {field: value})]`` reply as ``(id, seq, delta JSON)``."""
    return [(raw_id.decode(), int(fields[b"n"]), fields[b"d"]) for raw_id, fields in raw]


def id_ms(stream_id: str) -> int:
    return int(stream_id.partition("-")[0])


async def ping(redis: RedisClient) -> bool:
    """Is every server that holds data answering? On a cluster: every master, so a dead master
    keeps the publisher buffering until its replica has taken over (a random node would not)."""
    if isinstance(redis, RedisCluster):
        return bool(await redis.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await redis.ping())


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


def connect(url: str, *, socket_timeout: float | None = None) -> RedisClient:
    """A client that surfaces every connection error instead of retrying: a retried command may
    land on a restarted, empty Redis, and the publisher must notice that to rewrite the
    snapshots. RESP2 keeps the reply shapes (XREAD, XRANGE) the same on every server version.
    Readers blocking in XREAD need ``socket_timeout`` None or longer than their block time.

    A cluster client (``redis+cluster://``) does not retry either: a master that died may have
    acknowledged writes its replica never got (replication is asynchronous), so the publisher
    must see the error (or the MOVED that follows a failover) and rewrite its snapshots at what
    the new master really has, and readers must reload. Its per-node pool is unbounded like the
    single-node client's: every followed tenant holds one connection in a blocking XREAD."""
    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(
            f"{CLUSTER_SCHEMES[scheme]}://{rest}",
            protocol=2,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=3.0,
            socket_timeout=socket_timeout,
            decode_responses=False,
            max_connections=2**31,
        )
    return Redis.from_url(
        url,
        protocol=2,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=3.0,
        socket_timeout=socket_timeout,
        decode_responses=False,
    )
