"""The provisioning REST API: a FastAPI app mounted at /api/v1 on the web app.

``build_api(ctx)`` is the only entry point; everything it talks to is in :class:`ApiContext`.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.routing import Mount

from . import errors
from .context import ApiContext
from .docs import add_offline_docs
from .guard import RequestGuard
from .ratelimit import RateLimiter, RateLimitHeaders
from .routes import routers
from .routes.api_keys import KEY_CREATIONS_PER_MIN
from .wallboard import ApiKeyVerifier, TokenSigner

DESCRIPTION = """Provision tenants, users, queues, IVR menus, business hours and DIDs of pbx-core.

Authenticate with an API key: `Authorization: Bearer pbx_<id>_<secret>`. A key reaches its
reseller's tenants (reseller keys) or one tenant (tenant-admin, supervisor, agent keys); anything
else is 404. One exception, by design: tenant slugs are global (they name Asterisk objects), so
creating a tenant (POST /tenants, or PUT /tenants/{slug}) with a slug in use by any reseller is a
409 "already taken" - the same answer for one's own slug and another reseller's, naming nothing.
Supervisor and agent keys may be limited to some queues; they see nothing of other queues.

Limits: the key is checked before the body is read; bodies over the server's limit are a 413,
JSON nested deeper than 32 levels a 422; requests per minute are limited per key and per tenant
(429 with `Retry-After`). Types are strict (`0` is not a boolean, `5.0` not an integer) and no
text holds a control character (422).

Every error has the shape `{"error": {"status", "code", "message", "fields"}}`.
Items carry an `ETag`; send it back in `If-Match` to update safely. Rules that span objects
(a destination's target must exist in the tenant, counts within the tenant's `limits`, a DID
routed in one place, an object still referred to cannot be deleted) are in each schema's and
operation's description: 422 naming the field, or 409.
"""


def build_api(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="pbx-core provisioning API",
        version="1",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # served below from packaged assets, never a CDN
        redoc_url=None,
        responses=errors.responses(401, 422, 429),
    )
    app.state.ctx = ctx
    app.state.rate_limiter = RateLimiter(ctx.rate_limit_per_min) if ctx.rate_limit_per_min > 0 else None
    app.state.tenant_rate_limiter = (
        RateLimiter(ctx.tenant_rate_limit_per_min) if ctx.tenant_rate_limit_per_min > 0 else None)
    app.state.auth_failures = RateLimiter(max(ctx.auth_failures_per_min, 1))
    app.state.key_creations = RateLimiter(KEY_CREATIONS_PER_MIN)
    app.state.key_touched = {}
    app.state.signer = TokenSigner(ctx.sessions, ctx.secret_key)
    errors.install(app)
    # The last added runs first: the rate-limit headers also go on the guard's own 429s.
    app.add_middleware(RequestGuard, max_body_bytes=ctx.max_body_bytes)
    app.add_middleware(RateLimitHeaders)
    for router in routers():
        app.include_router(router)
    add_offline_docs(app)
    return app


def api_mount(ctx: ApiContext, path: str = "/api/v1") -> Mount:
    """The API as a route for the web app: ``create_app(..., extra_routes=[api_mount(ctx)])``.

    Starlette's Mount pattern does not match a path with an (encoded) newline in it; such a
    request would fall through to the wallboard's plain-text 404. Matching every character keeps
    all of /api/v1 answering in the API's own JSON error shape."""
    mount = Mount(path, app=build_api(ctx))
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount


__all__ = ["ApiContext", "ApiKeyVerifier", "api_mount", "build_api"]
