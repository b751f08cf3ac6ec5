"""Wallboard tokens: who may see which tenant's board, and which of its queues.

A :class:`TokenVerifier` turns a bearer token into a :class:`Scope` (or ``None``: unknown).
:class:`StaticTokens` reads them from ``PBX_WALLBOARD_TOKENS``; real API keys (provisioning)
implement the same one-method protocol and are passed to ``create_app`` instead.

``PBX_WALLBOARD_TOKENS`` format: ``token=tenant[:queue,queue];token2=tenant2``. Queue names
may be full Asterisk names (``acme-support``) or short ones (``support``), which get the
tenant's prefix.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..domain.tenants import SLUG_RE, UNSCOPED_TENANT, tenant_of

# Websocket close codes the browser treats as final (wallboard/connection.js FATAL_CODES).
CLOSE_UNAUTHORISED = 4401
CLOSE_FORBIDDEN = 4403


class Forbidden(Exception):
    """The token is valid, but not for what was asked."""


def full_queue_name(tenant: str, name: str) -> str:
    """``support`` -> ``acme-support``; a name already in the tenant is kept; a name in another
    tenant is refused (never silently re-prefixed: the caller asked for someone else's queue)."""
    name = name.strip()
    owner = tenant_of(name)
    if owner == tenant:
        return name
    if owner == UNSCOPED_TENANT and name:
        return f"{tenant}-{name}" if tenant != UNSCOPED_TENANT else name
    raise Forbidden(f"queue {name!r} is not in tenant {tenant!r}")


@dataclass(frozen=True, slots=True)
class Scope:
    """One tenant; ``queues`` None means all of its queues. ``key`` and ``expires`` say what the
    grant rests on, so an open websocket can be closed when that goes: the public id of the API
    key (the client's own, or the one that minted its token) and, for a short-lived token, its
    expiry (unix seconds). Both None: a static token from configuration, valid for the process."""

    tenant: str
    queues: frozenset[str] | None = None
    key: str | None = field(default=None, compare=False)
    expires: float | None = field(default=None, compare=False)

    def authorise(self, tenant: str | None, requested: Iterable[str]) -> frozenset[str] | None:
        """The queues a client may follow for this request (None: all of the tenant's).
        Raises :class:`Forbidden` for another tenant or a queue outside the scope."""
        if tenant and tenant != self.tenant:
            raise Forbidden(f"token is not valid for tenant {tenant!r}")
        wanted = frozenset(full_queue_name(self.tenant, q) for q in requested if q.strip())
        if not wanted:
            return self.queues
        if self.queues is not None and not wanted <= self.queues:
            raise Forbidden("token does not cover " + ", ".join(sorted(wanted - self.queues)))
        return wanted


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Scope | None:
        """The token's scope, or None if the token is unknown (or expired, revoked...)."""
        ...


Grant = tuple[str, str]  # (API key public id, tenant slug): what an open socket's access rests on


class GrantChecker(Protocol):
    async def valid_grants(self, grants: Collection[Grant]) -> set[Grant]:
        """Of these grants, the ones that still hold (key not revoked or deleted, tenant still
        there and still reached by the key). Raises on a database error: the caller decides."""
        ...


def grant_checker(verifier: TokenVerifier) -> GrantChecker | None:
    """The verifier (or the first of a :class:`FirstMatch`) that can re-check grants, if any."""
    if hasattr(verifier, "valid_grants"):
        return verifier  # type: ignore[return-value]
    for inner in getattr(verifier, "verifiers", ()):
        found = grant_checker(inner)
        if found is not None:
            return found
    return None


class StaticTokens:
    """Tokens from configuration. Comparison is constant-time per token."""

    def __init__(self, tokens: Mapping[str, Scope]) -> None:
        self._tokens = dict(tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    async def verify(self, token: str) -> Scope | None:
        found = None
        for known, scope in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = scope
        return found

    @classmethod
    def parse(cls, text: str, name: str = "PBX_WALLBOARD_TOKENS") -> StaticTokens:
        """``token=tenant[:queue,queue];token2=tenant2`` (whitespace around parts is ignored)."""
        from ..config import ConfigError

        tokens: dict[str, Scope] = {}
        for raw in text.split(";"):
            item = raw.strip()
            if not item:
                continue
            token, sep, rest = item.partition("=")
            token = token.strip()
            tenant, _, queue_text = rest.partition(":")
            tenant = tenant.strip()
            if not sep or not token:
                raise ConfigError(f"{name}: expected token=tenant[:queue,queue], got {item!r}")
            if not (SLUG_RE.fullmatch(tenant) or tenant == UNSCOPED_TENANT):
                raise ConfigError(f"{name}: {tenant!r} is not a tenant slug ([a-z][a-z0-9]{{0,15}})")
            if token in tokens:
                raise ConfigError(f"{name}: token {token[:4]}… is listed twice")
            queues: frozenset[str] | None = None
            names = [q.strip() for q in queue_text.split(",") if q.strip()]
            if names:
                try:
                    queues = frozenset(full_queue_name(tenant, q) for q in names)
                except Forbidden as exc:
                    raise ConfigError(f"{name}: {exc}") from None
            tokens[token] = Scope(tenant, queues)
        return cls(tokens)


class FirstMatch:
    """A TokenVerifier trying several in turn: e.g. API keys, then PBX_WALLBOARD_TOKENS."""

    def __init__(self, *verifiers: TokenVerifier) -> None:
        self.verifiers = verifiers

    async def verify(self, token: str) -> Scope | None:
        for verifier in self.verifiers:
            scope = await verifier.verify(token)
            if scope is not None:
                return scope
        return None
