"""What the bus looks like in Redis: key names, entry and snapshot encoding, client settings.

- ``pbx:{tenant}:events``: a stream; each entry has ``d`` (the delta JSON, ``delta_dict`` shape)
  and ``n`` (the tenant's entry sequence number, consecutive, so a reader can tell a gap).
- ``pbx:{tenant}:snapshot``: JSON ``{v, tenant, last_id, seq, epoch, board}``; the board is exact
  up to stream entry ``last_id``, whose ``n`` is ``seq``.
- ``pbx:{tenant}:epoch``: an integer the API moves on (INCR) when it deletes the tenant, together
  with deleting the two keys above. A snapshot written at an older epoch belongs to the deleted
  tenant: readers ignore it and the publisher starts the tenant afresh (slug reuse never shows
  the previous tenant's data). Absent: epoch 0.
- ``pbx:tenants``: a set of the tenants that have a stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.typing import EncodableT, FieldT

from ..domain.board import BUS_VERSION, Board, DeltaDict, empty_board

TENANTS_KEY = "pbx:tenants"
NO_ID = "0-0"
# A stream entry of this type carries no change: the publisher rewrote the snapshot (its ``n``
# skips a number, so readers following the stream see a gap at once and reload).
MARKER_TYPE = "snapshot.rewritten"


def stream_key(tenant: str) -> str:
    return f"pbx:{tenant}:events"


def snapshot_key(tenant: str) -> str:
    return f"pbx:{tenant}:snapshot"


def epoch_key(tenant: str) -> str:
    return f"pbx:{tenant}:epoch"


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

    def encode(self) -> str:
        return dumps(
            {"v": BUS_VERSION, "tenant": self.tenant, "last_id": self.last_id, "seq": self.seq,
             "epoch": self.epoch, "board": self.board}
        )  # fmt: skip

    @classmethod
    def decode(cls, tenant: str, raw: bytes | str | None) -> Snapshot:
        if raw is None:  # nothing published yet: the empty board before the first entry
            return cls(tenant, empty_board(tenant))
        obj = json.loads(raw)
        return cls(tenant, obj["board"], str(obj["last_id"]), int(obj["seq"]), int(obj.get("epoch", 0)))


def parse_epoch(raw: bytes | str | None) -> int:
    return int(raw) if raw is not None else 0


def parse_entries(raw: Any) -> list[tuple[str, int, bytes]]:
    """XRANGE's ``[(id, {field: value})]`` reply as ``(id, seq, delta JSON)``."""
    return [(raw_id.decode(), int(fields[b"n"]), fields[b"d"]) for raw_id, fields in raw]


def id_ms(stream_id: str) -> int:
    return int(stream_id.partition("-")[0])


def connect(url: str, *, socket_timeout: float | None = None) -> Redis:
    """A client that surfaces every connection error instead of retrying: a retried command may
    land on a restarted, empty Redis, and the publisher must notice that to rewrite the
    snapshots. RESP2 keeps the reply shapes (XREAD, XRANGE) the same on every server version.
    Readers blocking in XREAD need ``socket_timeout`` None or longer than their block time."""
    return Redis.from_url(
        url,
        protocol=2,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=3.0,
        socket_timeout=socket_timeout,
        decode_responses=False,
    )
