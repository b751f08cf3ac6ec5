"""Closing open wallboard sockets whose access is gone, on every web replica.

A websocket is authorised once, at connect; what it rests on can go later. Three ways close it
(code 4401, which the browser treats as final):

- **A revocation notice.** ``DELETE /api-keys/{id}`` (and ``pbx-core keys revoke``) append the
  key's public id to the ``pbx:revoked`` stream in Redis. Every web process follows that stream
  (a blocking XREAD, like the bus readers) and closes its sockets of that key, and of tokens it
  minted, within moments. A stream rather than pub/sub: a replica that lost Redis for a while
  reads the notices it missed, and it works the same on a Redis Cluster.
- **A re-check.** Every ``PBX_WALLBOARD_RECHECK_S`` each process asks the database, in one query
  for all its sockets, whether each (key, tenant) grant still holds: a key revoked while Redis
  was down, deleted with its tenant, or revoked by anything that sent no notice. A re-check also
  runs at once after the notice stream comes back from an error, and on a ``recheck`` notice,
  which the API sends when it deletes a tenant. A database error keeps the
  sockets open (a database outage must not blank every wall screen) and is logged.
- **Expiry.** A short-lived token's socket has a timer for its expiry (in the hub).

Before a "call back" request is booked the grant is checked against the database too, so a
revoked key can book nothing even in the moment before its notice arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..bus.keys import REDIS_ERRORS, REVOKED_KEY, RedisClient
from ..tasks import cancel_and_wait
from .auth import GrantChecker
from .hub import Client, Hub

log = logging.getLogger(__name__)

NOTICES_MAXLEN = 10_000  # approximate: notices are only needed for a few seconds
READ_BLOCK_MS = 5_000
RETRY_MAX_S = 5.0


async def announce_revoked(redis: RedisClient, key_id: str) -> None:
    """Tell every web replica that ``key_id`` is revoked (its sockets close)."""
    await redis.xadd(REVOKED_KEY, {"key": key_id}, maxlen=NOTICES_MAXLEN, approximate=True)


async def announce_recheck(redis: RedisClient, tenant: str) -> None:
    """Ask every web replica to re-check its sockets' grants now: ``tenant`` was deleted (its keys
    with it, and reseller keys no longer reach it). A re-check rather than "close the tenant's
    sockets": a socket of a new tenant that already reuses the slug is still valid and stays."""
    await redis.xadd(REVOKED_KEY, {"recheck": tenant}, maxlen=NOTICES_MAXLEN, approximate=True)


def revocation_announcer(redis: RedisClient) -> Callable[[str], Awaitable[None]]:
    """:func:`announce_revoked` as a hook for ``LiveHooks.revoked``."""

    async def announce(key_id: str) -> None:
        await announce_revoked(redis, key_id)
        log.info("revocation of key %s announced to every web process", key_id)

    return announce


def recheck_announcer(redis: RedisClient) -> Callable[[str], Awaitable[None]]:
    """:func:`announce_recheck` as a hook for ``LiveHooks.forgotten`` (a tenant deleted)."""

    async def announce(tenant: str) -> None:
        await announce_recheck(redis, tenant)

    return announce


class RevocationWatch:
    """One per web app: follows the notices and re-checks the hub's grants (see module doc)."""

    def __init__(
        self,
        hub: Hub,
        redis: RedisClient,
        checker: GrantChecker | None,
        *,
        recheck_s: float = 15.0,
        block_ms: int = READ_BLOCK_MS,
    ) -> None:
        self.hub = hub
        self.redis = redis
        self.checker = checker
        self.recheck_s = recheck_s
        self.block_ms = block_ms
        self.notices = 0  # revocation notices read
        self.rechecks = 0
        self.check_errors = 0
        self._recheck_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self._follow(), name="wallboard-revocations"))
        if self.checker is not None:  # static tokens only: nothing in a database to re-check
            self._tasks.append(asyncio.create_task(self._recheck_loop(), name="wallboard-recheck"))

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    # ------------------------------------------------------------------ notices

    async def _follow(self) -> None:
        last: str | None = None  # None: start at the stream's end
        delay = 0.1
        failing = False
        while True:
            try:
                if last is None:
                    newest: Any = await self.redis.xrevrange(REVOKED_KEY, count=1)
                    last = _text(newest[0][0]) if newest else "0-0"
                reply: Any = await self.redis.xread({REVOKED_KEY: last}, count=500, block=self.block_ms)
                if failing:
                    log.info("revocation notices: Redis is back; re-checking every socket's access")
                    failing, delay = False, 0.1
                    self._recheck_now.set()  # notices written while we could not read may be lost
                keys: set[str] = set()
                for sid, fields in reply[0][1] if reply else ():
                    last = _text(sid)
                    key = fields.get(b"key", fields.get("key"))
                    if key:
                        keys.add(_text(key))
                    elif b"recheck" in fields or "recheck" in fields:
                        self._recheck_now.set()
                if keys:
                    self.notices += len(keys)
                    closed = self.hub.revoke_grants(_keys_not_in(keys), "revoked")
                    if closed:
                        log.info("closed %d wallboard socket(s) of revoked key(s) %s", closed,
                                 ", ".join(sorted(keys)))
            except REDIS_ERRORS as exc:
                if not failing:
                    log.warning("revocation notices: cannot read Redis (%s); retrying, and the "
                                "database re-check still closes revoked sockets", exc)
                # ``last`` is kept: the notices written meanwhile are read next (stream ids are
                # times, so a restarted Redis's new ones are later still); the re-check after
                # recovery covers notices a restarted Redis lost.
                failing = True
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)

    # ------------------------------------------------------------------ re-check

    async def _recheck_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.recheck_s):
                    await self._recheck_now.wait()
            except TimeoutError:
                pass
            self._recheck_now.clear()
            await self.recheck()

    async def recheck(self) -> int:
        """Ask the database about every grant this process holds; close the sockets of those that
        no longer hold. Returns how many were closed."""
        if self.checker is None:
            return 0
        grants = {(c.key, c.tenant) for c in self.hub.clients() if c.key is not None and c.close_code is None}
        if not grants:
            return 0
        self.rechecks += 1
        try:
            valid = await self.checker.valid_grants(grants)
        except Exception as exc:
            self.check_errors += 1
            log.warning("wallboard access re-check failed (%s: %s); sockets stay open until the next one",
                        type(exc).__name__, exc)
            return 0
        # Sockets that connected while the query ran were not asked about: they stay.
        closed = self.hub.revoke_grants(
            lambda c: c.key is None or (c.key, c.tenant) not in grants or (c.key, c.tenant) in valid,
            "revoked",
        )
        if closed:
            log.info("closed %d wallboard socket(s) whose key was revoked or deleted", closed)
        return closed

    async def still_valid(self, client: Client) -> bool:
        """For a booking: the client's grant holds right now (raises on a database error)."""
        if client.close_code is not None:
            return False
        if client.expires is not None and client.expires <= time.time():
            return False
        if client.key is None or self.checker is None:
            return True
        grant = (client.key, client.tenant)
        return grant in await self.checker.valid_grants({grant})


def _keys_not_in(keys: set[str]) -> Callable[[Client], bool]:
    return lambda c: c.key not in keys


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
