"""``pbx-core simulate``: an AMI server that behaves like Asterisk 22, with seeded traffic."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from ..config import port_argument
from ..signals import on_stop_signals
from .simulation import Simulation, SimulationConfig, start_at_local_time
from .traffic import TrafficConfig

DESCRIPTION = """\
Run an AMI server on HOST:PORT that speaks like Asterisk 22 (same events, fields and order as
recorded from a real one) and generates call-centre traffic for several tenants:

  tenants t1, t2, ... each with queues {tenant}-support, {tenant}-sales, {tenant}-billing, ...
  agents Local/201@{tenant}-agents/n, ... (state hint:201@{tenant}-internal), as provisioned

Callers arrive as a Poisson process shaped by a daily profile (peaks around 10:00 and 14:00 in
the tenants' timezone), wait with limited patience (some abandon, some within seconds), are
rung to agents who sometimes do not answer (ring-no-answer, autopause), talk, then wrap up.
Agents pause for lunch, breaks, training and meetings. The same --seed gives the same traffic.

Connect the bridge with the printed URL:  PBX_AMI_URL=ami://pbx:s3cret@127.0.0.1:5038 pbx-core bridge
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="an AMI server that behaves like Asterisk 22, with seeded call-centre traffic",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = TrafficConfig()
    p.add_argument("--tenants", type=int, default=d.tenants, help=f"number of tenants (default {d.tenants})")
    p.add_argument("--queues", type=int, default=d.queues, help=f"queues per tenant (default {d.queues})")
    p.add_argument("--agents", type=int, default=d.agents, help=f"agents per queue (default {d.agents})")
    p.add_argument(
        "--rate",
        type=float,
        default=d.rate,
        metavar="CALLS_PER_HOUR",
        help=f"calls per hour per queue at the daily peak (default {d.rate:g}); "
        "the daily profile scales it down off-peak",
    )
    p.add_argument(
        "--seed", type=int, default=d.seed, help=f"random seed: same seed, same traffic (default {d.seed})"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="virtual seconds per real second (default 1; 60 = an hour per minute). Event "
        "timestamps follow the simulator's clock, so the engine stays consistent",
    )
    p.add_argument(
        "--start",
        metavar="HH:MM",
        help="start the simulated day at this local time (e.g. 09:00, to see peak traffic at "
        "any hour); default: now",
    )
    p.add_argument("--flat", action="store_true", help="no daily profile: the peak rate around the clock")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=port_argument, default=5038, help="AMI port (default 5038; 0 = any free port)"
    )
    p.add_argument("--username", default="pbx", help="AMI username clients log in with (default pbx)")
    p.add_argument("--secret", default="s3cret", help="AMI secret clients log in with (default s3cret)")
    p.add_argument(
        "--status-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="print a status line this often, in real seconds (0: never; default 5)",
    )
    p.add_argument(
        "--config-dir",
        type=Path,
        metavar="DIR",
        help="a directory playing /etc/asterisk (e.g. asterisk-config/): loaded at start and on "
        "`module reload`, so `pbx-core asterisk apply` and the live suite can run against the simulator",
    )
    p.add_argument(
        "--no-noise",
        action="store_true",
        help="send only queue events, not the channel/dialplan noise a real Asterisk sends",
    )
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    traffic = TrafficConfig(
        tenants=args.tenants,
        queues=args.queues,
        agents=args.agents,
        rate=args.rate,
        seed=args.seed,
        profile="flat" if args.flat else "daily",
    )
    start = start_at_local_time(args.start, traffic.timezone) if args.start else None
    return SimulationConfig(
        traffic=traffic,
        speed=args.speed,
        start=start,
        host=args.host,
        port=args.port,
        username=args.username,
        secret=args.secret,
        noise=not args.no_noise,
        config_dir=args.config_dir,
    )


async def serve(config: SimulationConfig, status_every_s: float) -> None:
    """Run until cancelled or SIGINT/SIGTERM."""
    stop = asyncio.Event()
    with on_stop_signals(stop.set):
        async with Simulation(config) as sim:
            cfg = config.traffic
            print(f"AMI simulator listening: {sim.url_text}", flush=True)
            print(
                f"  {cfg.tenants} tenants x {cfg.queues} queues x {cfg.agents} agents, "
                f"{cfg.rate:g} calls/h/queue at peak, seed {cfg.seed}, speed {config.speed:g}x",
                flush=True,
            )
            print(f"  connect the bridge: PBX_AMI_URL={sim.url_text} pbx-core bridge", flush=True)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), status_every_s if status_every_s > 0 else None)
                if status_every_s > 0 and not stop.is_set():
                    print(sim.status_line(), flush=True)
            print(f"stopping: {sim.status_line()}", flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        if config.speed <= 0:
            raise ValueError("--speed must be > 0")
    except ValueError as exc:
        print(f"pbx-core simulate: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config, args.status_every))
    except OSError as exc:
        print(
            f"pbx-core simulate: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0
