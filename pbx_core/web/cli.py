"""``pbx-core web``: only the web app, reading the bus from the Redis at PBX_REDIS_URL.

Run as many as you like (on as many machines): every process reads the same streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from ..config import ConfigError, Settings
from ..signals import on_stop_signals

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "web",
        help="only the web app (wallboard, metrics) reading Redis",
        description="Serve the wallboard, its websocket, /metrics and /healthz from the bus in "
        "the Redis at PBX_REDIS_URL. Tokens come from PBX_WALLBOARD_TOKENS "
        "(token=tenant[:queue,queue];token2=tenant2).",
    )
    p.add_argument("--host", help="listen address (default: PBX_HTTP_HOST)")
    p.add_argument("--port", type=int, help="listen port (default: PBX_HTTP_PORT)")
    p.add_argument("--wallboard-dir", type=Path, help="serve the wallboard UI from this directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .app import create_app, thresholds_for
    from .auth import StaticTokens
    from .server import uvicorn_config

    settings = Settings.from_env()
    if not settings.redis_url:
        # An embedded Redis here would be private and empty: nothing would ever show.
        raise ConfigError(
            "PBX_REDIS_URL must point at the Redis the bridge writes to (pbx-core web "
            "has no bus of its own; `pbx-core demo` runs everything in one process)"
        )
    tokens = StaticTokens.parse(settings.wallboard_tokens)
    if not len(tokens):
        log.warning("PBX_WALLBOARD_TOKENS is empty: every wallboard connection will be refused (4401)")
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    app = create_app(
        verifier=tokens,
        redis_url=settings.redis_url,
        wallboard_dir=args.wallboard_dir,
        thresholds=thresholds_for(settings.wallboard_thresholds),
    )
    import uvicorn

    server = uvicorn.Server(uvicorn_config(app, host, port))
    print(f"pbx-core web: http://{host}:{port}/?token=…  (metrics: /metrics, health: /healthz)", flush=True)
    asyncio.run(_serve_until_signal(server))
    return 0


async def _serve_until_signal(server: Any) -> None:
    # Our own handlers instead of uvicorn's: it re-raises the signal after a graceful shutdown,
    # so a clean stop would exit with -15 and look like a crash to supervisors and tests.
    server.capture_signals = contextlib.nullcontext
    with on_stop_signals(lambda: setattr(server, "should_exit", True)):
        await server.serve()
