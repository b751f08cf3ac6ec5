"""``pbx-core web``: only the web app, reading the bus from the Redis at PBX_REDIS_URL.

Run as many as you like (on as many machines): every process reads the same streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import Any

from ..config import ConfigError, Settings, port_argument
from ..signals import on_stop_signals
from .server import listen_or_explain

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "web",
        help="only the web app (wallboard, REST API, metrics) reading Redis",
        description="Serve the wallboard, its websocket, the provisioning REST API (/api/v1, over "
        "PBX_DATABASE_URL), /metrics and /healthz, from the bus in the Redis at PBX_REDIS_URL. "
        "Stateless: run as many as you like behind a load balancer. Wallboard tokens: supervisor "
        "API keys, tokens minted by the API, or PBX_WALLBOARD_TOKENS (token=tenant[:queue,queue]).",
    )
    p.add_argument("--host", help="listen address (default: PBX_HTTP_HOST)")
    p.add_argument("--port", type=port_argument, help="listen port (default: PBX_HTTP_PORT)")
    p.add_argument("--wallboard-dir", type=Path, help="serve the wallboard UI from this directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not settings.redis_url:
        # An embedded Redis here would be private and empty: nothing would ever show.
        raise ConfigError(
            "PBX_REDIS_URL must point at the Redis the bridge writes to (pbx-core web "
            "has no bus of its own; `pbx-core demo` runs everything in one process)"
        )
    host = args.host or settings.http_host
    port = settings.http_port if args.port is None else args.port
    listener = listen_or_explain(host, port)  # before the URL is printed: a busy port is one line
    try:
        asyncio.run(_serve(settings, listener, args.wallboard_dir))
    finally:
        listener.close()
    return 0


async def _serve(settings: Settings, listener: socket.socket, wallboard_dir: Path | None) -> None:
    import uvicorn

    from ..bus.tenants import bus_forgetter
    from .app import create_app, thresholds_for
    from .provisioning import API_PREFIX, provisioning
    from .revocation import recheck_announcer, revocation_announcer
    from .server import uvicorn_config

    host, port = listener.getsockname()[:2]

    # PBX_AMI_URL is optional here: with it, "apply" and queue-membership changes made through
    # the API reach Asterisk at once; without it they are written and wait for an apply.
    async with provisioning(settings, ami_url=settings.ami_url) as prov:
        app = create_app(
            verifier=prov.verifier,
            redis_url=settings.redis_url,
            wallboard_dir=wallboard_dir,
            thresholds=thresholds_for(settings.wallboard_thresholds),
            extra_routes=prov.routes,
            callback_requester=prov.callback_requester,
            metrics_token=settings.metrics_token,
            recheck_s=settings.wallboard_recheck_s,
            labels=prov.labels,
        )
        if prov.live is not None:  # a deleted tenant's bus keys go; the bridge notices the epoch
            prov.live.forgotten.add(bus_forgetter(app.state.redis))
            prov.live.revoked.add(revocation_announcer(app.state.redis))
            prov.live.forgotten.add(recheck_announcer(app.state.redis))
        server = uvicorn.Server(uvicorn_config(app, host, port, trusted_proxies=settings.trusted_proxies))
        print(
            f"pbx-core web: http://{host}:{port}/?token=…  REST API http://{host}:{port}{API_PREFIX}/docs "
            "(metrics /metrics, health /healthz)",
            flush=True,
        )
        await _serve_until_signal(server, listener)


async def _serve_until_signal(server: Any, listener: socket.socket) -> None:
    # Our own handlers instead of uvicorn's: it re-raises the signal after a graceful shutdown,
    # so a clean stop would exit with -15 and look like a crash to supervisors and tests.
    server.capture_signals = contextlib.nullcontext
    with on_stop_signals(lambda: setattr(server, "should_exit", True)):
        await server.serve(sockets=[listener])
