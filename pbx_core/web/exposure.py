"""Who may read what the web app says about itself.

``/metrics`` names every tenant, queue and live KPI of the process, so it is served only where
configured: with ``PBX_METRICS_TOKEN`` to a scraper presenting ``Authorization: Bearer <token>``
(401 otherwise); without it only to a scrape from the same host - a loopback peer whose request
no proxy forwarded - and as a 404 (not served here) to everyone else. ``/healthz`` says only
whether the process can serve (``{"status": "ok"}`` or 503), for load balancers and container
healthchecks; the details (Redis, AMI, clients) are metrics.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

# Headers a reverse proxy adds: a request carrying one came from elsewhere, whatever its peer.
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local(request: Request) -> bool:
    """A request from this host that no proxy forwarded (the peer is the client, after
    PBX_TRUSTED_PROXIES' rewriting)."""
    peer = request.client.host if request.client else ""
    return _is_loopback(peer) and not any(h in request.headers for h in FORWARDING_HEADERS)


def metrics_refusal(request: Request, token: str | None) -> Response | None:
    """None if ``request`` may read /metrics, else the answer to give it."""
    if token:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return None
        return PlainTextResponse("metrics need Authorization: Bearer <PBX_METRICS_TOKEN>\n", 401,
                                 headers={"WWW-Authenticate": "Bearer"})
    if is_local(request):
        return None
    return PlainTextResponse("Not Found\n", 404)
