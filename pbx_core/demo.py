"""``pbx-core demo``: the whole product on one machine with nothing set up.

The simulator plays a multi-tenant call centre (at peak hour, whatever the real time), the
bridge follows it over real AMI/TCP, deltas go through a private embedded Redis, and the web
app serves the wallboard. Each tenant gets a demo token; the URLs are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import ConfigError, Settings, port_argument
from .demo_seed import seed_demo
from .provisioning.db import upgrade
from .simulator.simulation import Simulation, SimulationConfig, start_at_local_time
from .simulator.traffic import TrafficConfig, tenant_slugs
from .stack import running_stack, until_signal_or
from .web.auth import FirstMatch, Scope, StaticTokens
from .web.provisioning import API_PREFIX, provisioning
from .web.server import listen_or_explain

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="live wallboard on simulated multi-tenant traffic; nothing to set up",
        description="Run the simulator, the bridge, an embedded Redis and the wallboard in one "
        "process, then open the printed URL. PBX_REDIS_URL, PBX_HTTP_HOST/PORT and the KPI "
        "settings (PBX_SERVICE_LEVEL_S, ...) are honoured; PBX_AMI_URL is ignored.",
    )
    p.add_argument("--tenants", type=int, default=3, help="simulated tenants (default 3)")
    p.add_argument("--queues", type=int, default=2, help="queues per tenant (default 2)")
    p.add_argument("--agents", type=int, default=4, help="agents per queue (default 4)")
    p.add_argument(
        "--rate", type=float, default=70.0, help="calls per hour per queue at the peak (default 70)"
    )
    p.add_argument("--seed", type=int, default=1, help="traffic seed (default 1)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)"
    )
    p.add_argument(
        "--start",
        default="09:15",
        metavar="HH:MM",
        help="simulated time of day the traffic starts (default 09:15)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=45.0,
        metavar="MINUTES",
        help="simulated minutes played at full speed once the bridge is connected, so the "
        "wallboard opens on a busy morning instead of an empty one (default 45: live from 10:00)",
    )
    p.add_argument("--host", help="listen address (default PBX_HTTP_HOST, 127.0.0.1)")
    p.add_argument("--port", type=port_argument, help="listen port (default PBX_HTTP_PORT, 8000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        traffic = TrafficConfig(
            tenants=args.tenants, queues=args.queues, agents=args.agents, rate=args.rate, seed=args.seed
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.speed <= 0:
        raise ConfigError("--speed must be greater than 0")
    config = SimulationConfig(
        traffic=traffic,
        speed=args.speed,
        start=start_at_local_time(args.start, traffic.timezone),
    )
    try:
        return asyncio.run(_demo(settings, config, args.warmup * 60, args.host, args.port))
    except KeyboardInterrupt:  # Ctrl-C before the demo was up (e.g. while warming up)
        say("stopped")
        return 0


def demo_asterisk_dir(workdir: Path) -> Path:
    """The simulator's /etc/asterisk: base files that include what `apply` writes to pbx-core/,
    so POST /api/v1/tenants/t1/apply in the demo renders, writes and reloads for real."""
    etc = workdir / "asterisk"
    (etc / "pbx-core").mkdir(parents=True)
    for name in ("pjsip.conf", "queues.conf", "extensions.conf", "voicemail.conf"):
        (etc / name).write_text(f"#tryinclude pbx-core/{name}\n")
    return etc


def demo_tokens(tenants: list[str]) -> StaticTokens:
    """One token per tenant: ``demo-t1``, ``demo-t2``, ..."""
    return StaticTokens({f"demo-{t}": Scope(t) for t in tenants})


async def _demo(
    settings: Settings, config: SimulationConfig, warmup_s: float, host: str | None, port: int | None
) -> int:
    tenants = tenant_slugs(config.traffic.tenants)
    listener = listen_or_explain(host or settings.http_host, settings.http_port if port is None else port)
    say("starting the simulator, an embedded Redis, the bridge and the web app ...")
    workdir = Path(tempfile.mkdtemp(prefix="pbx-core-demo-"))
    etc_asterisk = demo_asterisk_dir(workdir)
    sim = Simulation(dataclasses.replace(config, config_dir=etc_asterisk))
    try:
        await sim.start(traffic=False)
        # The demo never touches PBX_DATABASE_URL: its tenants live in a throwaway SQLite file.
        database_url = f"sqlite:///{workdir / 'demo.db'}"
        await upgrade(database_url)
        async with contextlib.AsyncExitStack() as exits:
            prov = await exits.enter_async_context(provisioning(
                settings, database_url=database_url, ami_url=sim.url, config_dir=etc_asterisk / "pbx-core"
            ))
            reseller_key = await seed_demo(prov.sessions, config.traffic)
            verifier = FirstMatch(demo_tokens(tenants), prov.verifier)
            stack = await exits.enter_async_context(running_stack(
                settings, sim.url, verifier, host=host, port=port, extra_routes=prov.routes,
                callback_requester=prov.callback_requester, callback_sessions=prov.sessions,
                listener=listener,
                live_hooks=prov.live, history_sessions=prov.sessions,
            ))
            async with asyncio.timeout(30):
                await stack.bridge.client.wait_connected()
            if warmup_s > 0:
                say(f"warming up: {warmup_s / 60:g} simulated minutes of traffic ...")
                await sim.fast_forward(warmup_s)
            sim.start_traffic()
            say(f"simulated PBX (AMI)   {sim.url_text}")
            say(f"Redis                 {stack.redis_url}")
            say("wallboards (one per tenant; add &tv=1 for TV mode):")
            for tenant in tenants:
                say(f"  {tenant:<6} {stack.base_url}/?token=demo-{tenant}")
            say(f"REST API              {stack.base_url}{API_PREFIX}/docs")
            say(f"  reseller key        {reseller_key}")
            say(f"  try: curl -H 'Authorization: Bearer {reseller_key}' {stack.base_url}{API_PREFIX}/tenants")
            say(f"metrics {stack.base_url}/metrics · health {stack.base_url}/healthz · Ctrl-C stops")
            status = asyncio.create_task(_status(sim, stack.stats))
            try:
                await until_signal_or(stack.bridge_task)
            finally:
                status.cancel()
    finally:
        listener.close()
        await sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say("stopped")
    return 0


async def _status(sim: Simulation, stats: Callable[[], dict[str, Any]]) -> None:
    while True:
        await asyncio.sleep(10)
        s = stats()
        say(
            f"{sim.status_line()} | bridge: AMI {'up' if s['ami']['connected'] else 'DOWN'}, "
            f"{s['ami']['events_queued']} events · Redis {'up' if s['bus']['redis_up'] else 'DOWN'}"
        )


def say(text: str) -> None:
    print(f"pbx-core demo: {text}", file=sys.stdout, flush=True)
