"""``pbx-core bench wallboard``: AMI event -> wallboard websocket latency, throughput and memory.

For each client count (``--clients``, default 100, 1,000 and 5,000) and each phase:

  latency     the simulator at ``--rate`` calls/hour/queue (a busy call centre)
  throughput  the simulator at ``--load-rate`` (well past a real one)

a fresh server process runs the whole live path on this machine: simulated Asterisk (AMI over
TCP) -> bridge -> embedded Redis bus -> one web process (uvicorn) -> websockets. A separate
client process (``bench.wallboard_clients``, ``--client-procs`` of them) opens the websockets,
one per client, tenants round-robin, each getting every delta of its tenant.

Latency is measured per delivered ``caller.*`` delta as the client's receive time minus the
delta's ``ts``, which is the AMI ``Timestamp`` the simulator stamped from its clock when it
wrote the event. The simulator runs at speed 1 with its clock on this machine's wall clock (its
warm-up is played from the past up to now), so this is the full path on one clock, including
the client's own event-loop delay. Clients connect only once the warm-up has gone through the
bridge into Redis (live events would otherwise queue behind its backlog), and only events stamped
after the live traffic started are timed. Throughput is delta messages received per second across all
clients. Memory per idle client: the server's RSS (after ``gc.collect()``) with one client per
tenant connected, then with all of them connected and no traffic, divided by the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pbx_core.bridge import Bridge
    from pbx_core.bus import BusPublisher

TARGET_P99_RATIO = 1.5  # pbx-core's p99 over the bare broadcast's, same run ...
TARGET_P99_CLIENTS = 5000  # ... at this many clients ...
TARGET_P99_RATE = 1200.0  # ... and calls/hour/queue, with nothing dropped
TARGET_IDLE_KIB = 32.0
BUCKETS_PER_MS = 10  # as in bench.wallboard_clients
ROOT = Path(__file__).resolve().parent.parent

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------- the server process


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, separators=(",", ":"), default=str), flush=True)


async def caught_up(
    bridge: Bridge, publisher: BusPublisher, *, quiet_s: float = 0.3, limit_s: float = 120.0
) -> float:
    """Wait until the warm-up has gone through the bridge and into Redis; return the seconds.

    The simulator plays the warm-up as fast as the AMI socket takes it, far faster than the
    publisher writes it (tens of thousands of deltas at a high rate). Live events queue behind
    that backlog in the publisher's ordered buffer, so measuring before it is gone times the
    warm-up, not the live path. Quiet means: nothing left on the AMI socket (no new frames for
    ``quiet_s``), the engine queue empty and the publisher idle.
    """
    engine, events = bridge.engine, bridge.client.events
    loop = asyncio.get_running_loop()
    start = loop.time()
    with contextlib.suppress(TimeoutError):  # a stuck bridge shows in the figures, not as a hang
        async with asyncio.timeout(limit_s):
            while True:
                items = engine.counters.items
                await publisher.flush()
                await asyncio.sleep(quiet_s)
                if events.empty() and engine.counters.items == items and not publisher.stats.buffered:
                    break
    return loop.time() - start


async def _serve(opts: argparse.Namespace) -> int:
    from pbx_core.config import Settings
    from pbx_core.demo import demo_tokens
    from pbx_core.simulator.simulation import Simulation, SimulationConfig
    from pbx_core.simulator.traffic import TrafficConfig, tenant_slugs
    from pbx_core.stack import running_stack

    from .wallboard_clients import raise_nofile

    raise_nofile()
    traffic = TrafficConfig(
        tenants=opts.tenants,
        queues=opts.queues,
        agents=opts.agents,
        rate=opts.rate,
        seed=opts.seed,
        profile="flat",  # the same rate whatever the time of day
    )
    # Start the warm-up in the past so that, once it is played, the simulator's clock is the wall
    # clock again: event Timestamps are then comparable with the clients' receive times.
    start = time.time() - opts.warmup - 1.0 if opts.warmup > 0 else None
    sim = Simulation(SimulationConfig(traffic=traffic, speed=1.0, start=start))
    await sim.start(traffic=False)
    tenants = tenant_slugs(opts.tenants)
    settings = Settings.from_env({})  # embedded Redis, defaults: not whatever the shell has set
    try:
        async with running_stack(settings, sim.url, demo_tokens(tenants), host="127.0.0.1", port=0) as stack:
            async with asyncio.timeout(30):
                await stack.bridge.client.wait_connected()
            backlog_s = 0.0
            if opts.warmup > 0:
                await sim.fast_forward(opts.warmup)
                backlog_s = await caught_up(stack.bridge, stack.publisher)
            sim.clock.advance_to(time.time())  # only ever forward; the offset is reported anyway
            _emit(
                {
                    "event": "ready",
                    "url": stack.base_url,
                    "pid": os.getpid(),
                    "tokens": [f"demo-{t}" for t in tenants],
                    "clock_offset_s": sim.clock.now() - time.time(),
                    "backlog_s": round(backlog_s, 3),
                }
            )
            while line := await asyncio.to_thread(sys.stdin.readline):
                cmd = line.strip()
                if cmd == "rss":
                    gc.collect()
                    _emit({"event": "rss", "rss_kib": _rss_kib()})
                elif cmd == "traffic":
                    started = time.time()
                    sim.start_traffic()
                    _emit({"event": "traffic", "wall": started, "clock_offset_s": sim.clock.now() - started})
                elif cmd == "stats":
                    _emit({"event": "stats", "sim": sim.totals(), **stack.stats()})
                elif cmd == "quit":
                    break
    finally:
        await sim.stop()
    return 0


def serve_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="bench wallboard server: the live stack on simulated traffic")
    p.add_argument("--tenants", type=int, default=10)
    p.add_argument("--queues", type=int, default=2)
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--rate", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=1, help="traffic seed (default 1)")
    p.add_argument("--warmup", type=float, default=600.0, help="simulated seconds played before ready")
    return asyncio.run(_serve(p.parse_args(argv)))


# ---------------------------------------------------------------------------- the orchestrator


class Child:
    """A Python child process spoken to in JSON lines over stdin/stdout."""

    def __init__(
        self,
        name: str,
        module: str,
        argv: list[str],
        *,
        stderr: IO[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``stderr``: where its log goes (default: ours); ``env``: its environment (default: ours)."""
        self.name = name
        env = {
            **(os.environ if env is None else env),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str) -> dict[str, Any]:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        for line in out:
            msg: dict[str, Any] = json.loads(line)
            if msg.get("event") == event:
                return msg
            if msg.get("event") == "error":
                raise RuntimeError(f"{self.name}: {msg}")
        raise RuntimeError(f"{self.name} exited (code {self.proc.wait()}) before {event!r}")

    def ask(self, line: str, event: str) -> dict[str, Any]:
        self.send(line)
        return self.expect(event)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.send("quit")
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    procs: list[Child] = []
    try:
        yield procs
    finally:
        for child in reversed(procs):
            child.stop()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (the server is not our child's child, so no rusage)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(base_url: str) -> dict[str, float]:
    """The hub's counters from /metrics (summed over labels)."""
    wanted = {
        "pbx_web_deltas_out_total": "deltas_out",
        "pbx_web_dropped_messages_total": "dropped",
        "pbx_web_resyncs_total": "resyncs",
    }
    out = dict.fromkeys(wanted.values(), 0.0)
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in wanted:
                out[wanted[name]] += float(line.rsplit(" ", 1)[1])
    return out


def percentile(buckets: Counter[int], q: float) -> float:
    """The q-quantile (0..1) of a 0.1 ms histogram, in ms (the bucket's upper edge)."""
    total = sum(buckets.values())
    if not total:
        return float("nan")
    rank = q * total
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return (bucket + 1) / BUCKETS_PER_MS
    return (max(buckets) + 1) / BUCKETS_PER_MS


@dataclass(slots=True, frozen=True)
class Phase:
    name: str
    rate: float
    memory: bool


@dataclass(slots=True, frozen=True)
class Bare:
    """The baseline's traffic: deltas per second per tenant, replayed from the samples file."""

    per_tenant_s: float
    samples: str


def run_phase(
    args: argparse.Namespace, clients: int, phase: Phase, progress: Progress, bare: Bare | None = None
) -> dict[str, Any]:
    """One measurement; with ``bare``, of the bare broadcast baseline instead of pbx-core."""
    tenants = min(args.tenants, clients)
    with children() as procs:
        if bare is None:
            server = Child(
                "server",
                "bench.wallboard",
                [
                    "--tenants", str(tenants), "--queues", str(args.queues), "--agents", str(args.agents),
                    "--rate", str(phase.rate), "--seed", str(args.seed), "--warmup", str(args.warmup),
                ],
            )  # fmt: skip
        else:
            argv = ["--tenants", str(tenants), "--samples", bare.samples]
            server = Child("bare", "bench.wallboard_bare", argv)
        procs.append(server)
        ready = server.expect("ready")
        ws_url = ready["url"].replace("http://", "ws://") + "/ws/wallboard"
        per_proc = [
            clients // args.client_procs + (i < clients % args.client_procs) for i in range(args.client_procs)
        ]
        client_procs: list[Child] = []
        first = 0
        for i, count in enumerate(per_proc):
            argv = ["--url", ws_url, "--first", str(first), f"--clock-offset={ready['clock_offset_s']}"]
            argv += [x for t in ready["tokens"] for x in ("--token", t)]
            if args.uvloop:
                argv.append("--uvloop")
            child = Child(f"clients{i}", "bench.wallboard_clients", argv)
            procs.append(child)
            client_procs.append(child)
            child.expect("started")
            first += count
        result: dict[str, Any] = {
            "clients": clients,
            "tenants": tenants,
            "rate_per_queue_hour": phase.rate,
            "client_procs": args.client_procs,
        }

        # One client per tenant first, so the tenant feeds (bus readers, boards) exist before
        # the memory baseline: what is left is the cost of each further client.
        warm: list[int] = []
        for child, count in zip(client_procs, per_proc, strict=True):
            n = min(tenants - sum(warm), count)
            warm.append(n)
            if n:
                child.ask(f"connect {n}", "connected")
        time.sleep(0.5)
        rss0 = server.ask("rss", "rss")["rss_kib"]
        progress(
            f"{clients} clients, {phase.name}: server up ({rss0 / 1024:.0f} MiB, warm-up through the bus "
            f"{ready.get('backlog_s', 0):.1f} s after it was played), connecting ..."
        )
        t0 = time.perf_counter()
        for child, count, n in zip(client_procs, per_proc, warm, strict=True):
            child.send(f"connect {count - n}")
        connected = [child.expect("connected") for child in client_procs]
        connect_s = time.perf_counter() - t0
        snapshots = sum(c["snapshots"] for c in connected)  # each process counts all of its own
        failed: Counter[str] = Counter()
        for c in connected:
            failed.update(c["failed"])
        result["connect"] = {
            "seconds": round(connect_s, 2),
            "snapshots": snapshots,
            "failed": dict(failed),
        }
        progress(f"  {snapshots}/{clients} snapshots in {connect_s:.1f} s, failed {dict(failed) or 0}")
        if phase.memory:
            time.sleep(1.0)
            rss1 = server.ask("rss", "rss")["rss_kib"]
            idle = clients - tenants
            result["memory"] = {
                "rss_before_kib": rss0,
                "rss_after_kib": rss1,
                "idle_clients": idle,
                "kib_per_idle_client": round((rss1 - rss0) / idle, 1) if idle else None,
            }
            progress(f"  server RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB")

        traffic = server.ask("traffic" if bare is None else f"traffic {bare.per_tenant_s}", "traffic")
        time.sleep(args.settle)
        before = {} if bare else scrape(ready["url"])
        cpu0 = cpu_seconds(server.pid)
        progress(f"  measuring {args.seconds:g} s at {phase.rate:g} calls/hour/queue ...")
        for child in client_procs:
            child.send(f"measure {args.seconds} {traffic['wall']}")
        measured = [child.expect("measured") for child in client_procs]
        server_cpu = cpu_seconds(server.pid) - cpu0
        after = {} if bare else scrape(ready["url"])
        stats = server.ask("stats", "stats")

    buckets: Counter[int] = Counter()
    types: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for m in measured:
        buckets.update({int(k): v for k, v in m["latency_buckets"].items()})
        types.update(m["delta_types"])
        for key in ("messages", "deltas", "snapshots", "pings", "bytes", "gaps", "timed", "negative"):
            total[key] += m[key]
    wall = max(m["wall_s"] for m in measured)
    hub = {k: after[k] - before[k] for k in before} or dict.fromkeys(("deltas_out", "dropped", "resyncs"), 0)
    result[phase.name] = {
        "seconds": wall,
        "latency_ms": {
            "p50": percentile(buckets, 0.50),
            "p90": percentile(buckets, 0.90),
            "p99": percentile(buckets, 0.99),
            "max": percentile(buckets, 1.0),
            "samples": total["timed"],
            "negative": total["negative"],
        },
        "deltas_per_s": round(total["deltas"] / wall, 1),
        "messages_per_s": round(total["messages"] / wall, 1),
        "kib_per_s": round(total["bytes"] / wall / 1024, 1),
        "server_deltas_queued_per_s": round(hub["deltas_out"] / wall, 1),
        "server_dropped": int(hub["dropped"]),
        "server_resyncs": int(hub["resyncs"]),
        "client_gaps": total["gaps"],
        "client_resync_snapshots": total["snapshots"],
        "server_cpu_pct": round(100 * server_cpu / wall, 1),
        "client_cpu_pct": [round(100 * m["cpu_s"] / m["wall_s"], 1) for m in measured],
        "clients_open": sum(m["open"] for m in measured),
        "clients_closed_early": sum(m["closed_early"] for m in measured),
        "delta_types": dict(types.most_common()),
        "clock_offset_ms": round(1000 * traffic["clock_offset_s"], 3),
        "sim": stats.get("sim", {}),
    }
    result["samples"] = [d for m in measured for d in m["samples"]]
    p = result[phase.name]
    lat = p["latency_ms"]
    progress(
        f"  p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms ({lat['samples']} samples), "
        f"{p['deltas_per_s']:,.0f} deltas/s, server CPU {p['server_cpu_pct']}%, "
        f"client CPU {p['client_cpu_pct']}%"
    )
    return result


def baseline(
    args: argparse.Namespace, clients: int, phase: Phase, measured: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """The bare broadcast at the delta rate pbx-core was offered in ``measured``, with its deltas;
    pbx-core's p99 and throughput as ratios to it."""
    p = measured[phase.name]
    # Each client gets every delta of its tenant: per client is per tenant. The hub's queued count
    # is what was offered even when the sockets could not take it all.
    per_tenant_s = max(p["deltas_per_s"], p["server_deltas_queued_per_s"]) / clients
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(measured["samples"], f)
    try:
        progress(f"  baseline: bare broadcast at {per_tenant_s:.2f} deltas/s/tenant ...")
        bare = run_phase(
            args, clients, Phase(phase.name, phase.rate, False), progress, Bare(per_tenant_s, f.name)
        )
    finally:
        os.unlink(f.name)
    b = bare[phase.name]
    p99, bare_p99 = p["latency_ms"]["p99"], b["latency_ms"]["p99"]
    return {
        "latency_ms": b["latency_ms"],
        "deltas_per_s": b["deltas_per_s"],
        "server_cpu_pct": b["server_cpu_pct"],
        "client_gaps": b["client_gaps"],
        "p99_ratio": round(p99 / bare_p99, 2) if bare_p99 else None,
        "throughput_ratio": round(p["deltas_per_s"] / b["deltas_per_s"], 3) if b["deltas_per_s"] else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    def progress(message: str) -> None:
        if not args.quiet:
            print(f"bench wallboard: {message}", file=sys.stderr, flush=True)

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(args.clients) // args.client_procs + 200
    if hard < need:
        progress(f"warning: file-descriptor hard limit {hard} < {need}: some clients will fail")
    phases = [Phase("latency", args.rate, True)]
    if args.load_rate > 0:
        phases.append(Phase("throughput", args.load_rate, False))
    runs: list[dict[str, Any]] = []
    for n in args.clients:
        merged: dict[str, Any] = {}
        for phase in phases:
            r = run_phase(args, n, phase, progress)
            if args.baseline:
                r[phase.name]["baseline"] = baseline(args, n, phase, r, progress)
            r.pop("samples")
            rate = r.pop("rate_per_queue_hour")
            r[phase.name]["rate_per_queue_hour"] = rate
            if phase.name != "latency":
                r[phase.name]["connect"] = r.pop("connect")
                merged[phase.name] = r[phase.name]
            else:
                merged.update(r)
        runs.append(merged)
    at_target = [
        r[name]
        for r in runs
        for name in ("latency", "throughput")
        if r["clients"] == TARGET_P99_CLIENTS
        and name in r
        and r[name]["rate_per_queue_hour"] == TARGET_P99_RATE
        and r[name].get("baseline", {}).get("p99_ratio") is not None
    ]
    p99_met = None
    if at_target:
        p = at_target[0]
        p99_met = p["baseline"]["p99_ratio"] <= TARGET_P99_RATIO and not p["server_dropped"]
    idle = [
        r["memory"]["kib_per_idle_client"] for r in runs if r.get("memory", {}).get("kib_per_idle_client")
    ]
    return {
        "config": {
            "tenants": args.tenants,
            "queues_per_tenant": args.queues,
            "agents_per_queue": args.agents,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "client_procs": args.client_procs,
            "client_loop": "uvloop" if args.uvloop else "asyncio",
            "cpus": os.cpu_count(),
        },
        "runs": runs,
        "targets": {
            "p99_ratio": TARGET_P99_RATIO,
            "p99_at_clients": TARGET_P99_CLIENTS,
            "p99_at_rate": TARGET_P99_RATE,
            "kib_per_idle_client": TARGET_IDLE_KIB,
            "p99_met": p99_met,
            "memory_met": bool(idle) and max(idle) <= TARGET_IDLE_KIB,
        },
    }


def render(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [
        f"{c['tenants']} tenants x {c['queues_per_tenant']} queues x {c['agents_per_queue']} agents, "
        f"{c['seconds']:g} s per measurement, {c['client_procs']} client process(es) on {c['client_loop']}, "
        f"{c['cpus']} CPUs shared by server and clients",
        f"{'clients':>7} {'phase':<10} {'calls/h/q':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'deltas/s':>9} {'dropped':>7} {'srv CPU':>7} {'cli CPU':>7} {'KiB/idle':>8} "
        f"{'bare p99':>8} {'p99/bare':>8} {'tput/bare':>9}",
    ]
    for r in result["runs"]:
        for name in ("latency", "throughput"):
            p = r.get(name)
            if p is None:
                continue
            lat = p["latency_ms"]
            mem = r.get("memory", {}).get("kib_per_idle_client") if name == "latency" else None
            lines.append(
                f"{r['clients']:>7,} {name:<10} {p['rate_per_queue_hour']:>9g} {lat['p50']:>7.1f} "
                f"{lat['p99']:>7.1f} {lat['max']:>7.1f} {p['deltas_per_s']:>9,.0f} {p['server_dropped']:>7} "
                f"{p['server_cpu_pct']:>6.0f}% {max(p['client_cpu_pct']):>6.0f}% "
                f"{'' if mem is None else f'{mem:.1f}':>8}{_vs_bare(p.get('baseline'))}"
            )
    t = result["targets"]
    p99 = "not measured" if t["p99_met"] is None else ("meets" if t["p99_met"] else "misses")
    lines.append(
        f"target p99 <= {t['p99_ratio']:g}x the bare broadcast at {t['p99_at_clients']:,} clients and "
        f"{t['p99_at_rate']:g} calls/h/queue, nothing dropped: {p99}"
    )
    memory = "meets" if t["memory_met"] else "misses"
    lines.append(f"target <= {t['kib_per_idle_client']:g} KiB per idle client: {memory}")
    return "\n".join(lines)


def _vs_bare(b: dict[str, Any] | None) -> str:
    if b is None:
        return ""
    p99, tput = b["p99_ratio"], b["throughput_ratio"]
    return (
        f" {b['latency_ms']['p99']:>8.1f} {'-' if p99 is None else f'{p99:.2f}x':>8} "
        f"{'-' if tput is None else f'{tput:.2f}x':>9}"
    )


def main(args: argparse.Namespace) -> int:
    if args.client_procs < 1 or not args.clients or min(args.clients) < 1:
        print("bench wallboard: --clients and --client-procs must be >= 1", file=sys.stderr)
        return 2
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


def _counts(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "wallboard",
        help="AMI event -> websocket latency, throughput and memory per client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--clients", type=_counts, default=[100, 1000, 5000], help="comma-separated client counts")
    p.add_argument("--tenants", type=int, default=10, help="simulated tenants; clients are spread over them")
    p.add_argument("--queues", type=int, default=2, help="queues per tenant")
    p.add_argument("--agents", type=int, default=4, help="agents per queue")
    p.add_argument("--rate", type=float, default=120.0, help="calls/hour/queue in the latency phase")
    p.add_argument(
        "--load-rate", type=float, default=1200.0, help="calls/hour/queue in the throughput phase; 0 skips it"
    )
    p.add_argument("--seconds", type=float, default=20.0, help="length of each measurement")
    p.add_argument("--settle", type=float, default=2.0, help="seconds of traffic before measuring")
    p.add_argument("--warmup", type=float, default=600.0, help="simulated seconds played before clients join")
    p.add_argument("--seed", type=int, default=1, help="traffic seed (default 1)")
    p.add_argument("--client-procs", type=int, default=1, help="client processes sharing the clients")
    p.add_argument(
        "--no-uvloop", dest="uvloop", action="store_false", help="clients on plain asyncio, not uvloop"
    )
    p.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the bare websocket broadcast measured after each phase (same stack, clients, deltas)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=main)


if __name__ == "__main__":
    sys.exit(serve_main())
