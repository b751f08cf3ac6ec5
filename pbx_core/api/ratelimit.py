"""Token buckets per API key, per tenant, per client address (failed logins) and per tenant
for callback bookings and key creation, in this process.

A bucket holds up to ``per_min`` tokens and refills continuously at ``per_min`` per minute, so
a client may burst a minute's worth and then go at the steady rate. Several web processes each
keep their own buckets: the limit is per process, as documented for PBX_API_RATE_LIMIT.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BUCKETS = 100_000  # forget idle clients beyond this many (memory bound under address churn)


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int


class RateLimiter:
    def __init__(self, per_min: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_min = per_min
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._evict_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.per_min), now)
        else:
            rate = self.per_min / 60.0
            bucket.tokens = min(float(self.per_min), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        return bucket

    def _evict_full(self, now: float) -> None:
        rate = self.per_min / 60.0
        for key in [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * rate >= self.per_min]:
            del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()

    def take(self, key: str) -> Verdict:
        """Spend one token for ``key`` if there is one."""
        now = self._clock()
        bucket = self._bucket(key, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Verdict(True, self.per_min, int(bucket.tokens), 0)
        wait = (1.0 - bucket.tokens) * 60.0 / self.per_min
        return Verdict(False, self.per_min, 0, max(1, math.ceil(wait)))

    def peek(self, key: str) -> Verdict:
        """Whether ``key`` has a token, without spending it."""
        now = self._clock()
        bucket = self._bucket(key, now)
        if bucket.tokens >= 1.0:
            return Verdict(True, self.per_min, int(bucket.tokens), 0)
        wait = (1.0 - bucket.tokens) * 60.0 / self.per_min
        return Verdict(False, self.per_min, 0, max(1, math.ceil(wait)))


def take_all(buckets: Sequence[tuple[RateLimiter, str]]) -> tuple[Verdict, Verdict | None]:
    """Spend one token from each ``(limiter, key)`` bucket, or from none of them: a request
    refused by one bucket (say its tenant's) costs nothing from the others (its key's).

    Returns (the verdict to report: the refusal, else the one with the fewest tokens left, the
    index-0 bucket's on a tie; the refusal or None)."""
    verdicts = [limiter.peek(key) for limiter, key in buckets]
    refused = next((v for v in verdicts if not v.allowed), None)
    if refused is not None:
        return refused, refused
    taken = [limiter.take(key) for limiter, key in buckets]
    return min(taken, key=lambda v: v.remaining), None


STATE_KEY = "ratelimit"


class RateLimitHeaders:
    """Adds RateLimit-Limit / RateLimit-Remaining to the response of a request whose key was
    counted (the auth dependency leaves its verdict in the request state)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                verdict = scope.get("state", {}).get(STATE_KEY)
                if isinstance(verdict, Verdict):
                    headers = list(message.get("headers", []))
                    headers.append((b"ratelimit-limit", str(verdict.limit).encode()))
                    headers.append((b"ratelimit-remaining", str(verdict.remaining).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
