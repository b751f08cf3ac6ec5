"""``pbx-core bench ingest``: AMI ingest throughput against three yardsticks, on the same bytes.

  (a) split       split the bytes into frames at ``\\r\\n\\r\\n`` and nothing else (a C-level split)
  (b) panoramisk  panoramisk 1.4's own parser alone: its ``data_received`` loop (ASCII decode,
                  split, strip, ``Message.from_line`` per frame) without the dispatch
  (d) dict        a plain parse: every frame decoded and split into a dict of all its headers
  (c) pbx-core    our whole path: ``Ingest.feed`` = FrameDecoder -> ListingAssembler -> normalise ->
                  apply, deltas included
  (e), (f)        (c) with the callbacks on: in the bridge's one engine (e, ``bridge --callbacks``),
                  and the old shape with a worker parsing and applying everything again (f); see
                  ``bench/ingest_callbacks.py``

Two mixes, generated from the recorded Asterisk 22 streams (``bench/stream.py``):

  production  what a bridge receives from an Asterisk set up with ``asterisk-config/manager.conf``:
              its ``eventfilter`` lines applied to the recordings (only the ~27 event names pbx-core
              consumes reach it), every frame at its recorded header count (~22 per event)
  noise       everything an unfiltered Asterisk sends (~88 % VarSet, Newexten, ... skipped unparsed)

Targets (printed as met or below): on the production mix c/b >= 5, c/d >= 1.0 and e/c >= 0.95,
on the noise mix c/a >= 0.5. Every measure reads each mix in the same chunks (``--chunk``, like socket
reads). Measurements are interleaved (all measures of all mixes, round after round) and the
median of each is reported.
Time is this process's CPU time, not the wall clock: on a shared machine a descheduled process
would otherwise be charged for other processes' work. Then the peak memory of a big live state
is measured with tracemalloc while the state is built by applying events.
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
from .stream import FRAME_END, Library, StreamInfo, generate, live_state_stream, manager_conf_events

MiB = 1024 * 1024

Measure = Callable[[list[bytes]], int]

# (mix, numerator, denominator) -> the least the ratio of their rates should be.
TARGETS: dict[tuple[str, str, str], float] = {
    ("production", "c", "b"): 5.0,  # 5x panoramisk's parser
    ("production", "c", "d"): 1.0,  # at least a plain parse into dicts
    ("noise", "c", "a"): 0.5,  # half the raw split
    # The bridge with its callbacks part is no slower than the bridge alone (within the noise of
    # a shared machine): one AMI session and one engine per PBX (issue 14).
    ("production", "e", "c"): ingest_callbacks.TARGET_WITH_CALLBACKS,
}
RATIOS: dict[str, tuple[tuple[str, str], ...]] = {
    "production": (("c", "b"), ("c", "d"), ("c", "a"), ("e", "c"), ("f", "c")),
    "noise": (("c", "a"), ("c", "b"), ("c", "d"), ("e", "c"), ("f", "c")),
}


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


def dict_parse(chunks: list[bytes]) -> int:
    """(d) A plain parse: each frame decoded and split into a dict of every header, as a simple
    AMI client does (wazo-amid's parser is this with a function call per line). ``partition``
    rather than ``split(": ", 1)``: it is the faster of the two and takes any line."""
    rest = b""
    frames = 0
    for chunk in chunks:
        parts = (rest + chunk).split(FRAME_END)
        rest = parts.pop()
        for part in parts:
            fields = {}
            for line in part.decode("utf-8", "replace").split("\r\n"):
                key, _, value = line.partition(": ")
                fields[key] = value
            frames += 1
    return frames


def full_path(chunks: list[bytes]) -> int:
    """(c) pbx-core: bytes -> frames -> typed events -> apply -> deltas."""
    ingest = Ingest(start_ts=0.0)
    for chunk in chunks:
        ingest.feed(chunk)
    return ingest.decoder.stats.frames


MEASURES: dict[str, tuple[str, Measure]] = {
    "a": ("split only (the limit)", split_only),
    "b": ("panoramisk 1.4 parser", panoramisk_parse),
    "d": ("plain parse to dicts", dict_parse),
    "c": ("pbx-core full path", full_path),
    "e": ("(c) + callbacks, one engine", ingest_callbacks.one_engine),
    "f": ("(c) + callbacks, two engines", ingest_callbacks.two_engines),
}


def _cpu_seconds(measure: Measure, chunks: list[bytes]) -> float:
    gc.collect()  # start each run from the same heap, not with the previous run's garbage
    start = time.process_time()
    measure(chunks)
    return time.process_time() - start


@dataclass(slots=True)
class Mix:
    name: str
    info: StreamInfo
    chunks: list[bytes]
    frames: int
    stats: dict[str, Any]


def throughput(mixes: list[Mix], rounds: int, progress: Callable[[str], None]) -> dict[str, Any]:
    samples: dict[str, dict[str, list[float]]] = {m.name: {k: [] for k in MEASURES} for m in mixes}
    for r in range(1, rounds + 1):
        for mix in mixes:
            for key, (_, measure) in MEASURES.items():
                samples[mix.name][key].append(_cpu_seconds(measure, mix.chunks))
        progress(
            f"round {r}/{rounds}: "
            + "; ".join(
                f"{m.name} " + " ".join(f"{k} {m.frames / samples[m.name][k][-1]:,.0f}/s" for k in MEASURES)
                for m in mixes
            )
        )
    out: dict[str, Any] = {}
    for mix in mixes:
        median = {k: statistics.median(v) for k, v in samples[mix.name].items()}
        rate = {k: mix.frames / median[k] for k in MEASURES}
        ratios = {f"{n}_over_{d}": round(rate[n] / rate[d], 3) for n, d in RATIOS[mix.name]}
        targets = {
            f"{n}_over_{d}": {"target": t, "met": rate[n] / rate[d] >= t}
            for (m, n, d), t in TARGETS.items()
            if m == mix.name
        }
        out[mix.name] = {
            "stream": mix.stats,
            "frames_per_cpu_s": {k: round(v) for k, v in rate.items()},
            "median_cpu_s": {k: round(v, 4) for k, v in median.items()},
            "samples_cpu_s": {k: [round(s, 4) for s in v] for k, v in samples[mix.name].items()},
            "ratios": ratios,
            "targets": targets,
        }
    return out


def breakdown(chunks: list[bytes], frames: int, rounds: int = 3) -> dict[str, float]:
    """Where (c)'s time goes, in CPU microseconds per frame: the decoder (frames out of bytes),
    ``normalise`` (typed events out of frames) and ``apply`` (deltas out of events), each timed
    alone on the same stream, next to (d)'s whole plain parse."""
    from pbx_core.ami.framing import FrameDecoder
    from pbx_core.domain.events import Event, normalise
    from pbx_core.domain.queue_state import LiveState, apply

    def decode() -> list[Any]:
        decoder = FrameDecoder()
        out: list[Any] = []
        for chunk in chunks:
            out += decoder.feed(chunk)
        return out

    def events(frames_: list[Any]) -> list[Event]:
        return [e for e in (normalise(f, 0.0) for f in frames_ if not f.reply) if e is not None]

    def stage(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(rounds):
            gc.collect()
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        return round(statistics.median(times) / frames * 1e6, 2)

    decoded = decode()
    evs = events(decoded)

    def apply_all() -> None:
        state = LiveState()
        for event in evs:
            apply(state, event)

    return {
        "decode_us": stage(decode),
        "normalise_us": stage(lambda: events(decode())) - stage(decode),
        "apply_us": stage(apply_all),
        "plain_dict_parse_us": stage(lambda: dict_parse(chunks)),
    }


def check_stream(chunks: list[bytes]) -> Ingest:
    """Run the stream once through the full path; refuse to benchmark a stream that is not valid."""
    ingest = Ingest(start_ts=0.0)
    for chunk in chunks:
        ingest.feed(chunk)
    stats = ingest.decoder.stats
    bad = [q.name for q in ingest.state.queues.values() if not q.counters.is_consistent(len(q.callers))]
    if stats.malformed or stats.oversized or bad:
        raise RuntimeError(f"synthetic stream is not valid: {stats}, inconsistent queues {bad[:5]}")
    return ingest


def headers_per_event(data: bytes) -> float:
    """Mean header count of the event frames (``Event:`` first), as Asterisk sent them."""
    frames = [f for f in data.split(FRAME_END) if f.startswith(b"Event: ")]
    return round(sum(f.count(b"\r\n") + 1 for f in frames) / max(1, len(frames)), 1)


def build_mix(name: str, frames: int, args: argparse.Namespace, progress: Callable[[str], None]) -> Mix:
    events = manager_conf_events() if name == "production" else None
    lib = Library.load(events=events)
    progress(f"{name}: generating ~{frames:,} frames ({args.tenants} tenants, seed {args.seed}) ...")
    info = generate(frames, tenants=args.tenants, seed=args.seed, library=lib)
    chunks = chunked(info.data, args.chunk)
    checked = check_stream(chunks).decoder.stats
    count = split_only(chunks)  # the stream ends on a terminator, so this counts every frame
    stats = {
        "frames": count,
        "bytes": len(info.data),
        "chunk_bytes": args.chunk,
        "noise_pct": round(100 * checked.noise / checked.frames, 1),
        "parsed_frames": checked.parsed,
        "headers_per_event": headers_per_event(info.data),
        "event_filter": sorted(events) if events else None,
        "tenants": info.tenants,
        "flows": info.flows,
        "resyncs": info.resyncs,
        "span_s": info.span_s,
        "seed": args.seed,
    }
    progress(
        f"{name}: {count:,} frames, {len(info.data) / MiB:.1f} MiB, {stats['noise_pct']}% noise, "
        f"{stats['headers_per_event']} headers per event"
    )
    return Mix(name, info, chunks, count, stats)


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
        ingest = Ingest(start_ts=0.0)
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    def progress(message: str) -> None:
        if not args.quiet:
            print(f"bench ingest: {message}", file=sys.stderr, flush=True)

    sizes = {"production": args.production_events, "noise": args.noise_events}
    names = ["production", "noise"] if args.mix == "both" else [args.mix]
    mixes = [build_mix(name, sizes[name], args, progress) for name in names]
    result: dict[str, Any] = {
        "rounds": args.rounds,
        "time": "process CPU time",
        "mixes": throughput(mixes, args.rounds, progress),
    }
    for mix in mixes:
        if mix.name == "production":
            progress("production: where (c)'s time goes ...")
            result["mixes"]["production"]["breakdown"] = breakdown(mix.chunks, mix.frames)
    if args.profile:
        progress("profiling (c) on the first mix ...")
        print(profile_full_path(mixes[0].chunks, args.profile), file=sys.stderr)
    del mixes
    if args.memory_tenants > 0:
        shape = MemoryShape(args.memory_tenants, args.memory_queues, args.memory_agents, args.memory_waiting)
        progress(
            f"memory: live state of {shape.tenants} tenants x {shape.queues} queues x {shape.agents} agents"
        )
        result["memory"] = live_state_memory(Library.load(), shape, progress)
    return result


def render(result: dict[str, Any]) -> str:
    lines = [f"median of {result['rounds']} interleaved rounds, frames per CPU-second of this process:"]
    for name, mix in result["mixes"].items():
        s = mix["stream"]
        rate = mix["frames_per_cpu_s"]
        lines.append(
            f"{name} mix: {s['frames']:,} frames, {s['bytes'] / MiB:.1f} MiB, {s['noise_pct']}% noise, "
            f"{s['headers_per_event']} headers per event, {s['tenants']} tenants, "
            f"{s['resyncs']} QueueStatus resyncs, read in {s['chunk_bytes']:,}-byte chunks"
        )
        for key, (label, _) in MEASURES.items():
            lines.append(f"  ({key}) {label:<24} {rate[key]:>12,} frames/s")
        parts = mix.get("breakdown")
        if parts:
            lines.append(
                f"  (c) per frame, CPU: decode {parts['decode_us']:.2f} us + normalise "
                f"{parts['normalise_us']:.2f} us + apply {parts['apply_us']:.2f} us; (d) parses a frame "
                f"in {parts['plain_dict_parse_us']:.2f} us"
            )
        for ratio, value in mix["ratios"].items():
            target = mix["targets"].get(ratio)
            verdict = (
                ""
                if target is None
                else (f"   (target >= {target['target']}: {'meets' if target['met'] else 'below'})")
            )
            lines.append(f"  {ratio.replace('_over_', '/')} = {value:.3f}{verdict}")
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
        help="AMI ingest throughput on the production and the noise mix, against three yardsticks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--mix", choices=["both", "production", "noise"], default="both", help="which mix (default both)"
    )
    p.add_argument(
        "--production-events",
        type=int,
        default=60_000,
        help="frames in the production mix (default %(default)s)",
    )
    p.add_argument(
        "--noise-events", type=int, default=300_000, help="frames in the noise mix (default %(default)s)"
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    p.add_argument(
        "--chunk", type=int, default=65536, help="bytes per read fed to each parser (default %(default)s)"
    )
    p.add_argument("--tenants", type=int, default=200, help="tenants in the synthetic streams")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same streams")
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
