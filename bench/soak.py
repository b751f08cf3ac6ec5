"""``pbx-core bench soak``: the whole scale-out shape under load for minutes, Redis killed twice.

Processes, all on loopback, each its own:

  redis      a private redis-server on a free port (never the shared one), started, SIGKILLed and
             restarted empty by the soak (``--restarts`` times, down ``--outage`` seconds each)
  sim        the simulated Asterisk at ``--speed`` (10x: ten simulated seconds per second)
  bridge     ``pbx-core bridge`` (the same wiring) with a window on its engine for the final check
  web1, web2 ``pbx-core web`` exactly as deployed (``--web`` of them), sharing a SQLite database
  clients*   ``--clients`` websocket wallboards (``bench.wallboard_clients``, tenants round-robin,
             each process on one web process), each keeping its board as the browser does

For ``--minutes`` (10; 0.5 is a quick check) the traffic runs and the soak prints progress.
Then the simulator stops taking calls and it checks:

  RSS bounded    every process's RSS is sampled all along; in the last third of the run (after
                 every restart) it stays within 10 % + 8 MiB of its peak before that (a leak
                 grows through the last third; a process that settled does not)
  no delta lost  every delta a client got is its previous one + 1 (the hub protocol: a gap is
                 allowed only as a fresh snapshot), and the bridge's publisher dropped none
  connected      every client got its snapshot and stayed connected to the end
  restarts       Redis went down as often as asked, the bridge saw each outage, and deltas
                 still flowed after the last restart
  boards equal   every tenant's board in Redis (snapshot + stream) and every client's board
                 equal the engine's, queue for queue (polled until they agree, for up to a minute)

It prints a table per process (RSS at start, peak and end) and per criterion (PASS/FAIL), and
exits 1 if any criterion fails. ``--json`` prints the figures instead. Also shown, not judged:
how long the wallboards showed an empty board after Redis came back empty, and each process's
RSS trend over the last third. The streams are kept short (``--stream-maxlen``) so that Redis
trims them during the run and its own memory levels off as it would in production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .wallboard import ROOT, Child, children, scrape

RSS_GROWTH = 0.10  # the last third may exceed the peak before it by this share ...
RSS_SLACK_KIB = 8 * 1024  # ... plus this (allocator steps, a burst of buffered deltas)
EQUAL_GUARD_S = 60.0  # how long boards may take to agree once the traffic stops
START = 1795338000.0  # 10:00 in Amsterdam: a hundred sped-up minutes stay within the day

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------- RSS


def rss_kib(pid: int | None) -> int | None:
    """Resident set size of a process, or None if it is not running."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass(slots=True)
class Sampled:
    """One process's RSS over the run: (seconds since the start, KiB) pairs."""

    role: str
    pid: Callable[[], int | None]  # Redis has a new pid after each restart
    judged: bool = True  # the soak's own client processes are shown, not judged
    samples: list[tuple[float, int]] = field(default_factory=list)

    def sample(self, t: float) -> None:
        kib = rss_kib(self.pid())
        if kib is not None:
            self.samples.append((t, kib))


def rss_verdict(samples: list[tuple[float, float]], duration_s: float) -> dict[str, Any]:
    """Start, peak and end RSS (KiB) and whether it stayed bounded: the peak of the last third of
    the run is at most the peak before it plus ``RSS_GROWTH`` and ``RSS_SLACK_KIB``."""
    if not samples:
        return {
            "start_kib": None, "peak_kib": None, "end_kib": None, "bound_kib": None,
            "late_peak_kib": None, "late_mib_per_h": None, "bounded": False,
        }  # fmt: skip
    split = duration_s * 2 / 3
    before = [k for t, k in samples if t < split] or [samples[0][1]]
    late = [k for t, k in samples if t >= split] or [samples[-1][1]]
    bound = max(before) * (1 + RSS_GROWTH) + RSS_SLACK_KIB
    return {
        # The trend of the last third (least squares), shown beside the verdict: ten minutes
        # cannot tell a slow leak from an allocator step, so it is a figure, not a criterion.
        "late_mib_per_h": round(slope([(t, k) for t, k in samples if t >= split]) * 3600 / 1024, 1),
        "start_kib": samples[0][1],
        "peak_kib": max(k for _, k in samples),
        "end_kib": samples[-1][1],
        "bound_kib": round(bound),
        "late_peak_kib": max(late),
        "bounded": max(late) <= bound,
    }


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


# ---------------------------------------------------------------------------- web processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def pbx_core(args: list[str], env: dict[str, str], log: IO[str]) -> asyncio.subprocess.Process:
    """``pbx-core ARGS`` as a process of its own, its output to ``log``."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbx_core", *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
    )  # fmt: skip


async def healthy(url: str, proc: asyncio.subprocess.Process, limit_s: float = 60.0) -> None:
    async with asyncio.timeout(limit_s):
        while proc.returncode is None:
            try:
                await asyncio.to_thread(urllib.request.urlopen, f"{url}/healthz", timeout=5)
                return
            except (urllib.error.URLError, OSError):
                await asyncio.sleep(0.2)
    raise RuntimeError(f"{url}: the web process exited with {proc.returncode} before it answered")


async def stop_process(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                return await proc.wait()
        except TimeoutError:
            proc.kill()
    return await proc.wait()


# ---------------------------------------------------------------------------- the run


@dataclass(slots=True)
class Interval:
    start_s: float
    end_s: float
    deltas: int
    snapshots: int
    gaps: int


async def ask(child: Child, line: str, event: str) -> dict[str, Any]:
    return await asyncio.to_thread(child.ask, line, event)


async def soak(args: argparse.Namespace, logdir: Path, progress: Progress) -> dict[str, Any]:
    """Run the soak with the processes' logs in ``logdir``; the figures for ``verdicts``."""
    from pbx_core.bus import BusReader, EmbeddedRedis, connect
    from pbx_core.signals import on_stop_signals

    duration = args.minutes * 60.0
    tenants = [f"t{i}" for i in range(1, args.tenants + 1)]
    logs: list[IO[str]] = []

    def log_file(name: str) -> IO[str]:
        f = open(logdir / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed at the end
        logs.append(f)
        return f

    redis = EmbeddedRedis()  # its own port; kill() and start() bring it back on the same one
    await redis.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env |= {
        "PBX_REDIS_URL": redis.url,
        "PBX_DATABASE_URL": f"sqlite:///{logdir / 'pbx.db'}",
        "PBX_WALLBOARD_TOKENS": ";".join(f"soak-{t}={t}" for t in tenants),
        "PBX_LOG_LEVEL": "WARNING",
        "PBX_REDIS_STREAM_MAXLEN": str(args.stream_maxlen),
    }
    webs: list[asyncio.subprocess.Process] = []
    admin = connect(redis.url)
    result: dict[str, Any] = {}
    main = asyncio.current_task()
    assert main is not None
    try:
        # Ctrl-C or kill: stop every process in order rather than leave web processes behind.
        with on_stop_signals(main.cancel), children() as procs:
            sim = Child(
                "sim", "bench.soak_children",
                ["sim", "--tenants", str(args.tenants), "--queues", str(args.queues),
                 "--agents", str(args.agents), "--rate", str(args.rate), "--seed", str(args.seed),
                 "--speed", str(args.speed), "--start", str(START)],
                stderr=log_file("sim"), env=env,
            )  # fmt: skip
            procs.append(sim)
            sim_url = (await asyncio.to_thread(sim.expect, "ready"))["url"]
            bridge = Child(
                "bridge", "bench.soak_children", ["bridge"], stderr=log_file("bridge"),
                env=env | {"PBX_AMI_URL": sim_url},
            )  # fmt: skip
            procs.append(bridge)
            await asyncio.to_thread(bridge.expect, "ready")
            if args.warmup > 0:
                await ask(sim, f"forward {args.warmup}", "forwarded")
                await ask(bridge, "caught-up", "caught-up")
            progress(
                f"Redis {redis.url}, simulator and bridge up (warm-up of {args.warmup:g} simulated s played)"
            )

            upgrade = await pbx_core(["db", "upgrade"], env, log_file("db"))
            if await upgrade.wait() != 0:
                raise RuntimeError(f"pbx-core db upgrade failed: see {logdir / 'db.log'}")
            ports = [free_port() for _ in range(args.web)]
            for i, port in enumerate(ports, 1):
                webs.append(await pbx_core(["web", "--port", str(port)], env, log_file(f"web{i}")))
            for port, web in zip(ports, webs, strict=True):
                await healthy(f"http://127.0.0.1:{port}", web)
            progress(f"{args.web} web processes up on ports {', '.join(map(str, ports))}")

            tokens = [x for t in tenants for x in ("--token", f"soak-{t}")]
            clients: list[Child] = []
            per_proc = [args.clients // args.client_procs + (i < args.clients % args.client_procs)
                        for i in range(args.client_procs)]  # fmt: skip
            first = 0
            for i, count in enumerate(per_proc):
                url = f"ws://127.0.0.1:{ports[i % len(ports)]}/ws/wallboard"
                child = Child(
                    f"clients{i}", "bench.wallboard_clients",
                    ["--url", url, "--first", str(first), "--boards", *tokens],
                    stderr=log_file(f"clients{i}"), env=env,
                )  # fmt: skip
                procs.append(child)
                clients.append(child)
                await asyncio.to_thread(child.expect, "started")
                first += count
            connected = await asyncio.gather(
                *(ask(c, f"connect {n}", "connected") for c, n in zip(clients, per_proc, strict=True))
            )
            refused: Counter[str] = Counter()
            for c in connected:
                refused.update(c["failed"])
            progress(
                f"{sum(c['snapshots'] for c in connected)}/{args.clients} websocket clients have their "
                f"snapshot (refused: {dict(refused) or 0}); traffic at {args.speed:g}x "
                f"for {args.minutes:g} min"
            )

            sampled = [Sampled("redis", lambda: redis.pid), Sampled("sim", lambda: sim.pid),
                       Sampled("bridge", lambda: bridge.pid)]  # fmt: skip
            sampled += [Sampled(f"web{i}", lambda w=w: w.pid) for i, w in enumerate(webs, 1)]
            sampled += [Sampled(c.name, lambda c=c: c.pid, judged=False) for c in clients]

            await ask(sim, "traffic", "traffic")
            loop = asyncio.get_running_loop()
            t0 = loop.time()

            def now() -> float:
                return loop.time() - t0

            for s in sampled:
                s.sample(0.0)
            restarts: list[dict[str, float]] = []
            outage = {"down": False}

            async def sampler() -> None:
                every = max(0.2, min(args.sample_every, duration / 30))
                while True:
                    await asyncio.sleep(every)
                    for s in sampled:
                        s.sample(now())

            async def chaos() -> None:
                for i in range(args.restarts):
                    at = duration * (i + 1) / (args.restarts + 2)
                    await asyncio.sleep(max(0.0, at - now()))
                    killed = now()
                    outage["down"] = True
                    await redis.kill()
                    progress(
                        f"{killed:6.0f}s  Redis SIGKILLed ({i + 1}/{args.restarts}), "
                        f"down for {args.outage:g} s"
                    )
                    await asyncio.sleep(args.outage)
                    await redis.start()
                    outage["down"] = False
                    restarts.append({"killed_s": round(killed, 1), "restarted_s": round(now(), 1)})
                    progress(f"{now():6.0f}s  Redis restarted, empty")

            background = [asyncio.create_task(sampler()), asyncio.create_task(chaos())]
            intervals: list[Interval] = []
            totals: Counter[str] = Counter()
            blank_max = 0.0
            step = max(1.0, min(args.progress_every, duration / 10))
            try:
                while (left := duration - now()) > 0.05:
                    start = now()
                    measured = await asyncio.gather(
                        *(ask(c, f"measure {min(step, left):.3f} inf", "measured") for c in clients)
                    )
                    iv = Interval(
                        start, now(), *(sum(m[k] for m in measured) for k in ("deltas", "snapshots", "gaps"))
                    )
                    intervals.append(iv)
                    for key in ("deltas", "snapshots", "gaps", "messages", "bytes", "blanked", "blank_s"):
                        totals[key] += sum(m[key] for m in measured)
                    blank_max = max([blank_max, *(m["blank_max_s"] for m in measured)])
                    still_open = sum(m["open"] for m in measured)
                    rss = "  ".join(
                        f"{s.role} {s.samples[-1][1] / 1024:.0f}" for s in sampled if s.judged and s.samples
                    )
                    progress(
                        f"{iv.end_s:6.0f}s  {iv.deltas / max(iv.end_s - iv.start_s, 1e-9):7,.0f} deltas/s  "
                        f"gaps {totals['gaps']}  resync snapshots {totals['snapshots']} "
                        f"(empty {totals['blanked']})  "
                        f"open {still_open}/{args.clients}  Redis {'DOWN' if outage['down'] else 'up'}  "
                        f"RSS MiB: {rss}"
                    )
                await background[1]  # a restart still under way (a very short run) finishes first
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
            for s in sampled:
                s.sample(now())
            open_at_end = sum(m["open"] for m in measured)
            closed_early = sum(m["closed_early"] for m in measured)

            paused = await ask(sim, "pause", "paused")
            progress(
                f"traffic stopped after {now():.0f} s ({paused['sim'].get('offered', 0):,} calls "
                "offered); comparing boards ..."
            )
            equal = await boards_equal(bridge, clients, admin, BusReader, tenants, logdir, progress)
            stats = await ask(bridge, "stats", "stats")
            hub: Counter[str] = Counter()
            for port in ports:
                with contextlib.suppress(OSError):
                    hub.update(await asyncio.to_thread(scrape, f"http://127.0.0.1:{port}"))

            after_last = sum(
                iv.deltas for iv in intervals if restarts and iv.start_s >= restarts[-1]["restarted_s"]
            )
            result = {
                "config": {
                    "minutes": args.minutes,
                    "clients": args.clients,
                    "client_procs": args.client_procs,
                    "web": args.web,
                    "tenants": args.tenants,
                    "queues": args.queues,
                    "agents": args.agents,
                    "rate": args.rate,
                    "speed": args.speed,
                    "restarts": args.restarts,
                    "outage_s": args.outage,
                    "cpus": os.cpu_count(),
                },
                "seconds": round(now(), 1),
                "sim": paused["sim"],
                "restarts": restarts,
                "rss": {
                    s.role: {
                        **rss_verdict(s.samples, duration),
                        "judged": s.judged,
                        "samples": len(s.samples),
                        "series": [[round(t, 1), k] for t, k in s.samples],  # seconds, KiB
                    }
                    for s in sampled
                },
                "clients": {
                    **dict(totals),
                    "open_at_end": open_at_end,
                    "closed_early": closed_early,
                    "refused": dict(refused),
                    "deltas_after_last_restart": after_last,
                    "blank_s": round(totals["blank_s"], 2),
                    "blank_max_s": round(blank_max, 2),
                },
                "bridge": {
                    "publisher": stats["bus"],
                    "engine": stats["engine"],
                    "ami_connects": stats["ami"].get("connects"),
                },
                "web": {k: int(v) for k, v in hub.items()},
                "boards": equal,
            }
    finally:
        for web in webs:
            await stop_process(web)
        await admin.aclose()
        await redis.stop()
        for f in logs:
            f.close()
    return result


async def boards_equal(
    bridge: Child,
    clients: list[Child],
    admin: Any,
    reader: Any,
    tenants: list[str],
    logdir: Path,
    progress: Progress,
) -> dict[str, Any]:
    """Poll until the engine's board of every tenant equals Redis's and every client's."""
    from pbx_core.bus.keys import REDIS_ERRORS
    from pbx_core.domain.board import Board

    from .wallboard_clients import board_difference

    path = logdir / "engine-boards.json"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EQUAL_GUARD_S
    attempts = 0
    while True:
        attempts += 1
        engine: dict[str, Board] = (await ask(bridge, "boards", "boards"))["boards"]
        path.write_text(json.dumps(engine), encoding="utf-8")
        redis_equal, example = 0, ""
        for t in tenants:
            try:
                stored = json.loads(json.dumps((await reader(admin, t).current()).board))
            except REDIS_ERRORS as exc:
                example = example or f"{t}: Redis: {exc}"
                continue
            if t in engine and stored == engine[t]:
                redis_equal += 1
            elif not example:
                example = f"{t} in Redis: {board_difference(stored, engine.get(t))}"
        compared = await asyncio.gather(*(ask(c, f"compare {path}", "compared") for c in clients))
        clients_equal = sum(c["equal"] for c in compared)
        clients_differ = sum(sum(c["differ"].values()) for c in compared)
        example = example or next((c["example"] for c in compared if c["example"]), "")
        missing = [t for t in tenants if t not in engine]
        done = redis_equal == len(tenants) and clients_differ == 0 and not missing
        if done or loop.time() > deadline:
            if missing:
                example = f"the engine has no board for {', '.join(missing)}: the traffic did not reach it"
            return {
                "equal": done, "attempts": attempts, "tenants": len(tenants), "redis_equal": redis_equal,
                "clients_equal": clients_equal, "clients_differ": clients_differ,
                "difference": "" if done else example,
            }  # fmt: skip
        if attempts == 1:
            progress(f"  not equal yet ({example}); polling for up to {EQUAL_GUARD_S:g} s")
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------------------- verdicts and report


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    """PASS/FAIL per criterion, with the figures that decide it."""
    c, bus, boards = result["clients"], result["bridge"]["publisher"], result["boards"]
    cfg = result["config"]
    unbounded = [role for role, r in result["rss"].items() if r["judged"] and not r["bounded"]]
    restarted = len(result["restarts"])
    checks = [
        (
            "RSS bounded",
            not unbounded,
            "every process within its bound" if not unbounded else f"grew: {', '.join(unbounded)}",
        ),
        (
            "no delta lost",
            c["gaps"] == 0 and bus["dropped"] == 0 and c["deltas"] > 0,
            f"{c['deltas']:,} deltas to {cfg['clients']} clients, {c['gaps']} gaps, "
            f"{bus['dropped']} dropped by the publisher, {c['snapshots']:,} resync snapshots",
        ),
        (
            "clients connected throughout",
            c["open_at_end"] == cfg["clients"] and c["closed_early"] == 0 and not c["refused"],
            f"{c['open_at_end']}/{cfg['clients']} open at the end, {c['closed_early']} closed, "
            f"{sum(c['refused'].values())} refused",
        ),
        (
            f"Redis killed and restarted {cfg['restarts']}x",
            restarted == cfg["restarts"] and bus["outages"] >= cfg["restarts"]
            and (cfg["restarts"] == 0 or c["deltas_after_last_restart"] > 0),
            f"{restarted} restarts, {bus['outages']} outages seen by the bridge, "
            f"{bus['snapshot_rewrites']} snapshot rewrites, "
            f"{c['deltas_after_last_restart']:,} deltas after the last",
        ),
        (
            "every board equals the engine",
            boards["equal"],
            f"Redis {boards['redis_equal']}/{boards['tenants']} tenants, websockets "
            f"{boards['clients_equal']}/{cfg['clients']} (attempt {boards['attempts']})"
            + (f"; {boards['difference']}" if boards["difference"] else ""),
        ),
    ]  # fmt: skip
    return {
        "checks": [{"criterion": n, "passed": ok, "figures": f} for n, ok, f in checks],
        "passed": all(ok for _, ok, _ in checks),
    }


def render(result: dict[str, Any]) -> str:
    cfg = result["config"]
    mib = lambda kib: "-" if kib is None else f"{kib / 1024:.1f}"  # noqa: E731
    lines = [
        f"{cfg['minutes']:g} min ({result['seconds']:g} s), {cfg['clients']} clients in "
        f"{cfg['client_procs']} processes over {cfg['web']} web processes, "
        f"{cfg['tenants']} tenants x {cfg['queues']} queues x "
        f"{cfg['agents']} agents at {cfg['rate']:g} calls/h/queue, simulator at {cfg['speed']:g}x "
        f"({result['sim'].get('offered', 0):,} calls), Redis down {cfg['outage_s']:g} s x {cfg['restarts']}, "
        f"{cfg['cpus']} CPUs",
        "",
        f"{'process':<10} {'start MiB':>9} {'peak MiB':>9} {'end MiB':>8} {'bound MiB':>9} "
        f"{'last third MiB/h':>16}  bounded",
    ]
    for role, r in result["rss"].items():
        judged = ("yes" if r["bounded"] else "NO") if r["judged"] else "(not judged)"
        lines.append(
            f"{role:<10} {mib(r['start_kib']):>9} {mib(r['peak_kib']):>9} {mib(r['end_kib']):>8} "
            f"{mib(r['bound_kib']):>9} {r.get('late_mib_per_h', '-')!s:>16}  {judged}"
        )
    v = verdicts(result)
    lines += ["", f"{'criterion':<32} {'result':<6}  figures"]
    for check in v["checks"]:
        lines.append(
            f"{check['criterion']:<32} {'PASS' if check['passed'] else 'FAIL':<6}  {check['figures']}"
        )
    c = result["clients"]
    if c.get("blanked"):
        lines.append(
            f"{'(seen, not judged)':<32} {'':<6}  {c['blanked']:,} snapshots with an empty board after a "
            f"board with queues: blank for {c['blank_s'] / c['blanked']:.1f} s on average, "
            f"{c['blank_max_s']:.1f} s at most"
        )
    lines.append(f"soak {'PASSED' if v['passed'] else 'FAILED'}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    problems = [
        f"{name} must be {rule}"
        for name, bad, rule in (
            ("--minutes", args.minutes <= 0, "> 0"),
            ("--clients", args.clients < 1, ">= 1"),
            ("--client-procs", args.client_procs < 1, ">= 1"),
            ("--web", args.web < 1, ">= 1"),
            ("--restarts", args.restarts < 0, ">= 0"),
            ("--outage", args.outage < 0, ">= 0"),
            ("--speed", args.speed <= 0, "> 0"),
        )
        if bad
    ]
    spacing = args.minutes * 60 / (args.restarts + 2)
    if args.restarts and args.outage >= spacing:
        problems.append(
            f"--outage {args.outage:g} s must be shorter than the {spacing:.0f} s between restarts"
        )
    if problems:
        print("bench soak: " + "; ".join(problems), file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"bench soak: {message}", file=sys.stderr, flush=True)

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < args.clients // args.client_procs + 200:
        progress(f"warning: file-descriptor hard limit {hard}: some clients will be refused")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pbx-soak-") as tmp:
        keep = args.keep_logs
        try:
            result = asyncio.run(soak(args, Path(tmp), progress))
            result["verdicts"] = verdicts(result)
            keep = keep or not result["verdicts"]["passed"]
        except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C or kill: every process is stopped
            keep = True
            progress("stopped before the end: no verdict")
            return 130
        except BaseException:
            keep = True
            raise
        finally:
            if keep:  # the processes' own words, for whoever looks into a failure
                kept = shutil.copytree(tmp, tempfile.mkdtemp(prefix="pbx-soak-logs-"), dirs_exist_ok=True)
                progress(f"the processes' logs are kept in {kept}")
    progress(f"done in {time.monotonic() - started:.0f} s")
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0 if result["verdicts"]["passed"] else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "soak",
        help="bridge + 2 web processes + 500 wallboards for 10 minutes, Redis killed twice: "
        "RSS bounded, no delta lost, boards equal the engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--minutes", type=float, default=10.0, help="length of the soak (default 10; 0.5 for a quick check)"
    )
    p.add_argument("--clients", type=int, default=500, help="websocket wallboards (default 500)")
    p.add_argument("--client-procs", type=int, default=2, help="processes sharing the clients (default 2)")
    p.add_argument("--web", type=int, default=2, help="pbx-core web processes (default 2)")
    p.add_argument(
        "--restarts", type=int, default=2, help="times Redis is SIGKILLed and restarted (default 2)"
    )
    p.add_argument(
        "--outage", type=float, default=10.0, help="seconds Redis stays down each time (default 10)"
    )
    p.add_argument("--speed", type=float, default=10.0, help="simulated seconds per second (default 10)")
    p.add_argument("--tenants", type=int, default=10, help="simulated tenants (default 10)")
    p.add_argument("--queues", type=int, default=2, help="queues per tenant (default 2)")
    p.add_argument("--agents", type=int, default=4, help="agents per queue (default 4)")
    p.add_argument("--rate", type=float, default=60.0, help="calls/hour/queue, simulated (default 60)")
    p.add_argument("--seed", type=int, default=1, help="traffic seed (default 1)")
    p.add_argument(
        "--stream-maxlen",
        type=int,
        default=300,
        help="PBX_REDIS_STREAM_MAXLEN for the run (default 300, against 100,000 in production): "
        "short enough that every stream is trimmed a minute or two after each restart, so Redis's "
        "RSS levels off within the run as it would in production after hours",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=300.0,
        help="simulated seconds played before clients join (default 300)",
    )
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    p.add_argument(
        "--progress-every", type=float, default=30.0, help="seconds between progress lines (default 30)"
    )
    p.add_argument(
        "--keep-logs", action="store_true", help="keep the processes' logs (kept anyway on failure)"
    )
    p.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=main)
