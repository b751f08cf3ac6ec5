"""``pbx-core bench ingest``: AMI ingest throughput against two yardsticks, on the same bytes.

  (a) limit       split the bytes into frames at ``\\r\\n\\r\\n`` and nothing else (a C-level split)
  (b) panoramisk  panoramisk 1.4's own parser alone: its ``data_received`` loop (ASCII decode,
                  split, strip, ``Message.from_line`` per frame) without the dispatch
  (c) pbx-core    our whole path: ``Ingest.feed`` = FrameDecoder -> ListingAssembler -> normalise ->
                  apply, deltas included

All three read the stream in the same chunks (``--chunk``, like socket reads). Measurements are
interleaved a, b, c, a, b, c, ... and the median of each is reported, since the machine is shared.
Then the peak memory of a big live state (tenants x queues x agents members, callers waiting) is
measured with tracemalloc while the state is built by applying events.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pbx_core.ingest import Ingest

from . import ingest_callbacks
from .stream import FRAME_END, Library, StreamInfo, generate, live_state_stream

TARGET_C_OVER_A = 0.5
TARGET_C_OVER_B = 5.0
MiB = 1024 * 1024

Measure = Callable[[list[bytes]], int]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def split_only(chunks: list[bytes]) -> int:
    """(a) The limit: frames found by splitting, carrying the unfinished tail to the next read."""
    rest = b""
    frames = 0
    for chunk in chunks:
        parts = (rest + chunk).split(FRAME_END)
        rest = parts.pop()
        frames += len(parts)
    return frames


def panoramisk_parse(chunks: list[bytes]) -> int:
    """(b) panoramisk 1.4's parser: the body of ``AMIProtocol.data_received`` minus the dispatch."""
    from panoramisk.message import Message  # type: ignore[import-untyped]
    from panoramisk.utils import EOL  # type: ignore[import-untyped]

    sep = EOL + EOL
    pending = ""
    frames = 0
    for chunk in chunks:
        lines = (pending + chunk.decode("ascii", "ignore")).split(sep)
        pending = lines.pop()
        for line in lines:
            if Message.from_line(line.strip()) is not None:
                frames += 1
    return frames


def full_path(chunks: list[bytes]) -> int:
    """(c) pbx-core: bytes -> frames -> typed events -> apply -> deltas."""
    ingest = Ingest()
    for chunk in chunks:
        ingest.feed(chunk)
    return ingest.decoder.stats.frames


MEASURES: dict[str, tuple[str, Measure]] = {
    "a": ("split only (limit)", split_only),
    "b": ("panoramisk 1.4 parser", panoramisk_parse),
    "c": ("pbx-core full path", full_path),
    "d": ("(c) + callbacks, one engine", ingest_callbacks.one_engine),
    "e": ("(c) + callbacks, two engines", ingest_callbacks.two_engines),
}


def _timed(measure: Measure, chunks: list[bytes]) -> float:
    gc.collect()  # start each run from the same heap, not with the previous run's garbage
    start = time.perf_counter()
    measure(chunks)
    return time.perf_counter() - start


def throughput(
    chunks: list[bytes], frames: int, rounds: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {k: [] for k in MEASURES}
    for r in range(1, rounds + 1):
        for key, (_, measure) in MEASURES.items():
            samples[key].append(_timed(measure, chunks))
        progress(
            f"round {r}/{rounds}: " + "  ".join(f"{k} {frames / samples[k][-1]:,.0f}/s" for k in MEASURES)
        )
    median = {k: statistics.median(v) for k, v in samples.items()}
    rate = {k: frames / median[k] for k in MEASURES}
    return {
        "events_per_s": {k: round(v) for k, v in rate.items()},
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "samples_s": {k: [round(s, 4) for s in v] for k, v in samples.items()},
        "ratios": {
            "c_over_a": round(rate["c"] / rate["a"], 3),
            "c_over_b": round(rate["c"] / rate["b"], 2),
            "d_over_c": round(rate["d"] / rate["c"], 3),
            "e_over_c": round(rate["e"] / rate["c"], 3),
        },
    }


def check_stream(chunks: list[bytes]) -> Ingest:
    """Run the stream once through the full path; refuse to benchmark a stream that is not valid."""
    ingest = Ingest()
    for chunk in chunks:
        ingest.feed(chunk)
    stats = ingest.decoder.stats
    bad = [q.name for q in ingest.state.queues.values() if not q.counters.is_consistent(len(q.callers))]
    if stats.malformed or stats.oversized or bad:
        raise RuntimeError(f"synthetic stream is not valid: {stats}, inconsistent queues {bad[:5]}")
    return ingest


def profile_full_path(chunks: list[bytes], top: int) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(full_path, chunks)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


@dataclass(slots=True, frozen=True)
class MemoryShape:
    tenants: int = 1000
    queues: int = 5
    agents: int = 20
    waiting: int = 3

    @property
    def members(self) -> int:
        return self.tenants * self.queues * self.agents


def live_state_memory(lib: Library, shape: MemoryShape, progress: Callable[[str], None]) -> dict[str, Any]:
    """Build the live state by applying QueueMemberAdded / QueueCallerJoin events through the full
    path, under tracemalloc. ``current`` is what the state keeps; ``peak`` includes the transient
    frames, events and deltas of one read."""
    gc.collect()
    tracemalloc.start()
    try:
        ingest = Ingest()
        for i, chunk in enumerate(
            live_state_stream(
                lib, tenants=shape.tenants, queues=shape.queues, agents=shape.agents, waiting=shape.waiting
            )
        ):
            ingest.feed(chunk)
            if i and i % 250 == 0:
                progress(f"memory: {i}/{shape.tenants} tenants applied")
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    state = ingest.state
    members = sum(len(q.members) for q in state.queues.values())
    callers = sum(len(q.callers) for q in state.queues.values())
    if members != shape.members or callers != shape.tenants * shape.queues * shape.waiting:
        raise RuntimeError(f"live state has {members} members and {callers} callers, not {shape}")
    return {
        "tenants": shape.tenants,
        "queues": len(state.queues),
        "members": members,
        "waiting_callers": callers,
        "current_mib": round(current / MiB, 1),
        "peak_mib": round(peak / MiB, 1),
        "bytes_per_member": round(current / members),
    }


def _events_for(seconds: float, rounds: int, chunk: int, lib: Library, seed: int, tenants: int) -> int:
    """Size the stream so that all the rounds take about ``seconds``: time one round on a sample."""
    sample = generate(20_000, tenants=tenants, seed=seed, library=lib)
    chunks = chunked(sample.data, chunk)
    per_round = sum(_timed(m, chunks) for _, m in MEASURES.values())
    return max(20_000, int(seconds / rounds / per_round * sample.frames))


def run(args: argparse.Namespace) -> dict[str, Any]:
    def progress(message: str) -> None:
        if not args.quiet:
            print(f"bench ingest: {message}", file=sys.stderr, flush=True)

    lib = Library.load()
    events = args.events
    if args.seconds is not None:
        events = _events_for(args.seconds, args.rounds, args.chunk, lib, args.seed, args.tenants)
    progress(f"generating ~{events:,} frames ({args.tenants} tenants, seed {args.seed}) ...")
    info: StreamInfo = generate(events, tenants=args.tenants, seed=args.seed, library=lib)
    chunks = chunked(info.data, args.chunk)
    progress(f"{info.frames:,} frames, {len(info.data) / MiB:.1f} MiB; checking it replays cleanly ...")
    checked = check_stream(chunks).decoder.stats
    frames = split_only(chunks)  # the stream ends on a terminator, so this counts every frame
    result: dict[str, Any] = {
        "stream": {
            "frames": frames,
            "bytes": len(info.data),
            "chunk_bytes": args.chunk,
            "noise_pct": round(100 * checked.noise / checked.frames, 1),
            "parsed_frames": checked.parsed,
            "tenants": info.tenants,
            "flows": info.flows,
            "resyncs": info.resyncs,
            "span_s": info.span_s,
            "seed": args.seed,
        },
        "rounds": args.rounds,
        **throughput(chunks, frames, args.rounds, progress),
        "targets": {"c_over_a": TARGET_C_OVER_A, "c_over_b": TARGET_C_OVER_B},
    }
    if args.profile:
        progress("profiling (c) ...")
        print(profile_full_path(chunks, args.profile), file=sys.stderr)
    del chunks, info
    if args.memory_tenants > 0:
        shape = MemoryShape(args.memory_tenants, args.memory_queues, args.memory_agents, args.memory_waiting)
        progress(
            f"memory: live state of {shape.tenants} tenants x {shape.queues} queues x {shape.agents} agents"
        )
        result["memory"] = live_state_memory(lib, shape, progress)
    return result


def render(result: dict[str, Any]) -> str:
    s = result["stream"]
    rate = result["events_per_s"]
    ratios = result["ratios"]
    lines = [
        f"stream: {s['frames']:,} frames, {s['bytes'] / MiB:.1f} MiB, {s['noise_pct']}% noise, "
        f"{s['tenants']} tenants, {s['resyncs']} QueueStatus resyncs, read in {s['chunk_bytes']}-byte chunks",
        f"median of {result['rounds']} interleaved rounds (events = AMI frames):",
    ]
    for key, (label, _) in MEASURES.items():
        lines.append(f"  ({key}) {label:<24} {rate[key]:>12,} events/s")
    a_ok = "meets" if ratios["c_over_a"] >= TARGET_C_OVER_A else "below"
    b_ok = "meets" if ratios["c_over_b"] >= TARGET_C_OVER_B else "below"
    lines.append(f"  c/a = {ratios['c_over_a']:.3f}   (target >= {TARGET_C_OVER_A}: {a_ok})")
    lines.append(f"  c/b = {ratios['c_over_b']:.2f}    (target >= {TARGET_C_OVER_B}: {b_ok})")
    lines.append(ingest_callbacks.render_ratios(ratios))
    mem = result.get("memory")
    if mem:
        lines.append(
            f"live state: {mem['queues']:,} queues, {mem['members']:,} members, {mem['waiting_callers']:,} "
            f"callers waiting: {mem['current_mib']} MiB held (peak {mem['peak_mib']} MiB while building), "
            f"{mem['bytes_per_member']:,} bytes per member"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="AMI ingest throughput against the raw-split limit and panoramisk's parser",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--events", type=int, default=300_000, help="frames in the synthetic stream (default %(default)s)"
    )
    size.add_argument("--seconds", type=float, help="size the stream so all the rounds take about this long")
    p.add_argument("--rounds", type=int, default=5, help="interleaved a/b/c rounds; the median is reported")
    p.add_argument(
        "--chunk", type=int, default=4096, help="bytes per read fed to each parser (default %(default)s)"
    )
    p.add_argument("--tenants", type=int, default=200, help="tenants in the synthetic stream")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same stream")
    p.add_argument("--memory-tenants", type=int, default=1000, help="live-state memory test size; 0 skips it")
    p.add_argument("--memory-queues", type=int, default=5, help="queues per tenant in it")
    p.add_argument("--memory-agents", type=int, default=20, help="members in each queue")
    p.add_argument("--memory-waiting", type=int, default=3, help="callers waiting in each queue")
    p.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile (c) once, print the top N to stderr"
    )
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=main)
