"""``pbx-core serve``: bridge + bus + web app in one process, against a real Asterisk and Redis.

The production twin of ``demo``: everything comes from ``PBX_*`` configuration. For more than
one web process, run ``pbx-core bridge`` once and ``pbx-core web`` as often as needed instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from .config import ConfigError, Settings, port_argument
from .stack import running_stack, until_signal_or
from .web.provisioning import API_PREFIX, provisioning

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="bridge a real Asterisk (PBX_AMI_URL) and serve the wallboard, in one process",
        description="Connect to the Asterisk in PBX_AMI_URL, stream its queue state into the Redis "
        "in PBX_REDIS_URL (unset: a private embedded one) and serve the wallboard, /metrics and "
        "/healthz on PBX_HTTP_HOST:PBX_HTTP_PORT, with the provisioning REST API at /api/v1 over "
        "PBX_DATABASE_URL (run `pbx-core db upgrade` first). Wallboard tokens: supervisor API keys, "
        "tokens minted by the API, or PBX_WALLBOARD_TOKENS. "
        "See `pbx-core config` for every setting.",
    )
    p.add_argument("--host", help="listen address (default PBX_HTTP_HOST)")
    p.add_argument("--port", type=port_argument, help="listen port (default PBX_HTTP_PORT)")
    p.add_argument(
        "--summary-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="log a one-line-per-queue summary this often (default 60; 0 = never)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.ami_url is None:
        raise ConfigError(
            "PBX_AMI_URL is not set: serve needs ami://user:secret@host:5038 "
            "(or run `pbx-core demo` for the built-in simulator)"
        )
    try:
        return asyncio.run(_serve(settings, args))
    except KeyboardInterrupt:
        return 0


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    assert settings.ami_url is not None
    summary = args.summary_every or None
    async with (
        provisioning(settings, ami_url=settings.ami_url) as prov,
        running_stack(
            settings, settings.ami_url, prov.verifier, host=args.host, port=args.port,
            summary_every_s=summary, extra_routes=prov.routes,
            callback_requester=prov.callback_requester, callback_sessions=prov.sessions,
            live_hooks=prov.live, history_sessions=prov.sessions,
        ) as stack,
    ):
        print(
            f"pbx-core serve: wallboard {stack.base_url}/?token=…  "
            f"REST API {stack.base_url}{API_PREFIX}/docs  (metrics /metrics, health /healthz)",
            flush=True,
        )
        await until_signal_or(stack.bridge_task)
    return 0
