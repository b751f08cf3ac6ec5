"""``pbx-core replay FILE.ami``: a recorded raw AMI byte stream through the live parser and engine.

The JSON it prints is a stable interface (the field names of issue #2 are kept; new fields may
be added, none renamed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .callbacks.core.announce import AnnouncementMeter
from .domain.queue_state import (
    DEFAULT_SHORT_ABANDON_S,
    DEFAULT_TIMEZONE,
    EngineSettings,
    QueueSettings,
    QueueState,
    abandoned_view,
    caller_view,
    member_view,
)
from .ingest import Ingest

CHUNK_BYTES = 64 * 1024  # replay in socket-sized reads, so frames split across reads are exercised


_FIRST_TIMESTAMP = re.compile(rb"\r\nTimestamp: (\d+(?:\.\d+)?)\r\n")


@dataclass(frozen=True, slots=True)
class ReplayClock:
    """When the events of a recording happened, as far as the recording says.

    Asterisk stamps events only with ``timestampevents = yes`` in manager.conf. Without it the
    replay must still put them on a day (the live bridge uses its clock); the epoch would show
    every queue on 1970-01-01. ``source`` says what the time was taken from.
    """

    start_ts: float
    source: str  # "timestamps" | "--at" | "file modification time" | "now"

    @property
    def stamped(self) -> bool:
        return self.source == "timestamps"


def first_timestamp(data: bytes) -> float | None:
    m = _FIRST_TIMESTAMP.search(data)
    return float(m.group(1)) if m else None


def replay_clock(data: bytes, *, at: float | None = None, mtime: float | None = None) -> ReplayClock:
    """Frames before the first ``Timestamp`` are stamped with it; a recording without any takes
    ``at`` (the user's word), else the file's modification time (when the capture was written),
    else now (standard input)."""
    if at is not None:
        return ReplayClock(at, "--at")
    first = first_timestamp(data)
    if first is not None:
        return ReplayClock(first, "timestamps")
    if mtime is not None:
        return ReplayClock(mtime, "file modification time")
    return ReplayClock(time.time(), "now")


def replay_bytes(
    data: bytes,
    settings: EngineSettings | None = None,
    clock: ReplayClock | None = None,
    meter: AnnouncementMeter | None = None,
) -> Ingest:
    """``meter``: also measure the wait announcements (each frame's deltas with the state right
    after it)."""
    clock = clock or replay_clock(data)
    ingest = Ingest(settings, start_ts=clock.start_ts)
    for start in range(0, len(data), CHUNK_BYTES):
        chunk = data[start : start + CHUNK_BYTES]
        if meter is None:
            ingest.feed(chunk)
            continue
        for frame in ingest.decoder.feed(chunk):
            meter.observe(ingest.state, ingest.frame(frame))
    return ingest


def announcement_report(meter: AnnouncementMeter) -> dict[str, Any]:
    """Per queue: what pbx-core's announcement and Asterisk's announce-holdtime would have told
    each answered caller on joining, against the wait they had (share within +-30% / +-30 s,
    median error)."""
    return {
        name: {"ours": acc["ours"].as_dict(), "asterisk_announce_holdtime": acc["asterisk"].as_dict()}
        for name, acc in meter.results().items()
    }


def _iso(ts: float, timezone: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(timezone)).isoformat(timespec="milliseconds")


def queue_report(q: QueueState) -> dict[str, Any]:
    stats = q.counters
    from .domain.kpi import kpis

    k = kpis(stats)
    tz = q.settings.timezone
    return {
        "tenant": q.tenant,
        "offered": stats.offered,
        "answered": stats.answered,
        "abandoned": stats.abandoned,
        "short_abandoned": stats.short_abandoned,
        "answered_within_sl": stats.answered_within_sl,
        "sl_pct": k["sl_pct"],
        "asa_s": k["asa_s"],
        # Issue #2: the longest wait *seen* among answered and abandoned callers.
        "longest_wait_s": stats.longest_wait_s,
        "abandon_pct": k["abandon_pct"],
        "waiting": [{**caller_view(c), "joined_at": _iso(c.joined_at, tz)} for c in q.callers.values()],
        "members": [member_view(m) for m in q.members.values()],
        "abandoned_callers": [
            {**abandoned_view(a), "at": _iso(a.at, tz)} for a in reversed(q.abandoned)
        ],
        # Beyond the stable core:
        "service_level_s": q.service_level_s,
        "sl_answered_pct": k["sl_answered_pct"],
        "aht_s": k["aht_s"],
        "other_exits": stats.other_exits,
        "ring_no_answer": stats.ring_no_answer,
        "handled": stats.handled,
        "day": q.day,
    }


def report(
    ingest: Ingest, clock: ReplayClock | None = None, timezone: str = DEFAULT_TIMEZONE
) -> dict[str, Any]:
    s = ingest.decoder.stats
    rep: dict[str, Any] = {
        "queues": {name: queue_report(q) for name, q in sorted(ingest.state.queues.items())},
        "stream": {
            "bytes": s.bytes,
            "frames": s.frames,
            "parsed": s.parsed,
            "noise": s.noise,
            "malformed": s.malformed,
            "oversized": s.oversized,
            "events_applied": ingest.state.events_applied,
        },
    }
    if clock is not None:
        rep["stream"]["clock"] = {
            "timestamps": clock.stamped,
            "source": clock.source,
            "start": _iso(clock.start_ts, timezone),
            "note": clock_note(clock, timezone),
        }
    return rep


def clock_note(clock: ReplayClock, timezone: str) -> str | None:
    """What a reader must know when the recording carries no time of its own."""
    if clock.stamped:
        return None
    return (
        "the recording has no Timestamp headers (Asterisk's manager.conf lacks "
        f"`timestampevents = yes`): every event is stamped {_iso(clock.start_ts, timezone)} "
        f"({clock.source}); waits and hold times come from the events themselves"
    )


def _text(rep: dict[str, Any]) -> str:
    lines = []
    for name, q in rep["queues"].items():
        lines.append(
            f"{name} (tenant {q['tenant']}): offered {q['offered']}, answered {q['answered']}, "
            f"abandoned {q['abandoned']} ({q['short_abandoned']} short), "
            f"SL {_or_dash(q['sl_pct'], '%')} @{q['service_level_s']}s, ASA {_or_dash(q['asa_s'], 's')}, "
            f"longest wait {_or_dash(q['longest_wait_s'], 's')}, waiting {len(q['waiting'])}"
        )
        for m in q["members"]:
            reason = f" ({m['paused_reason']})" if m["paused_reason"] else ""
            lines.append(f"    agent {m['name']}: {m['state']}{reason}, calls today {m['calls_today']}")
        for a in q["abandoned_callers"]:
            lines.append(f"    abandoned {a['number']} {a['name']} waited {a['waited_s']}s at {a['at']}")
    for name, a in rep.get("wait_announcements", {}).items():
        ours, ast = a["ours"], a["asterisk_announce_holdtime"]
        lines.append(
            f"{name}: wait announcements for {ours['callers']} answered callers: pbx-core "
            f"{ours['within_pct']}% within +-30%/+-30 s (median error {ours['median_error_s']} s), "
            f"Asterisk's announce-holdtime {ast['within_pct']}% ({ast['median_error_s']} s)"
        )
    s = rep["stream"]
    lines.append(
        f"stream: {s['frames']} frames, {s['noise']} noise skipped, {s['malformed']} malformed, "
        f"{s['oversized']} oversized, {s['events_applied']} events applied"
    )
    note = s.get("clock", {}).get("note")
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def parse_at(text: str, timezone: str) -> float:
    """``--at``: epoch seconds, or an ISO 8601 time (without an offset: in ``timezone``)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("expected an ISO 8601 time such as 2026-11-22T10:00 or epoch seconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    return when.timestamp()


def _or_dash(value: float | None, unit: str) -> str:
    """A KPI without calls is "-", never "-s" or "None%"."""
    return "-" if value is None else f"{value}{unit}"


def looks_like_ami(rep: dict[str, Any]) -> bool:
    """At least one frame parsed as AMI (an event, or a reply we skip as noise)."""
    stream = rep["stream"]
    return bool(stream["parsed"] or stream["noise"])


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else path.read_bytes()
        mtime = None if args.file == "-" else path.stat().st_mtime
    except OSError as exc:
        print(f"pbx-core replay: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        at = None if args.at is None else parse_at(args.at, args.timezone)
    except ValueError as exc:
        print(f"pbx-core replay: --at {args.at!r}: {exc}", file=sys.stderr)
        return 2
    clock = replay_clock(data, at=at, mtime=mtime)
    settings = EngineSettings(
        default=QueueSettings(
            service_level_s=args.service_level,
            short_abandon_s=args.short_abandon,
            timezone=args.timezone,
        )
    )
    meter = AnnouncementMeter()
    rep = report(replay_bytes(data, settings, clock, meter), clock, args.timezone)
    if not looks_like_ami(rep):
        print(
            f"pbx-core replay: {args.file} is not an AMI capture: no AMI frames in its "
            f"{len(data):,} bytes (expected the raw bytes of an AMI session: 'Event: ...' lines in "
            "blocks separated by blank lines, CRLF line ends, as captured from TCP port 5038)",
            file=sys.stderr,
        )
        return 2
    rep["wait_announcements"] = announcement_report(meter)
    if args.json:
        json.dump(rep, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(_text(rep))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="replay a recorded raw AMI stream through the parser and engine",
        description="Feed a recorded raw AMI byte stream (the bytes of an AMI session as captured "
        "from TCP port 5038, e.g. with `tcpflow` or `tshark -z follow,tcp,raw`; examples in "
        "tests/fixtures/asterisk-22/) through the same parser and queue engine as the live bridge, "
        "and print the final state of every queue. A file with no AMI frames in it is refused "
        "(exit status 2).",
    )
    p.add_argument("file", help="the .ami recording ('-' reads standard input)")
    p.add_argument(
        "--service-level",
        type=int,
        metavar="SECONDS",
        help="service-level threshold T for every queue (default: each queue's own `servicelevel` "
        "from a QueueStatus in the recording, else 30)",
    )
    p.add_argument(
        "--short-abandon",
        type=int,
        default=DEFAULT_SHORT_ABANDON_S,
        metavar="SECONDS",
        help=f"abandons quicker than this are short abandons (default {DEFAULT_SHORT_ABANDON_S})",
    )
    p.add_argument(
        "--timezone",
        default=DEFAULT_TIMEZONE,
        help=f"timezone of 'today' and of printed times (default {DEFAULT_TIMEZONE})",
    )
    p.add_argument(
        "--at",
        metavar="TIME",
        help="when a recording without Timestamp headers (Asterisk without `timestampevents = yes`) "
        "happened: ISO 8601 (e.g. 2026-11-22T10:00, in --timezone) or epoch seconds (default: "
        "the file's modification time; standard input: now). Recordings with timestamps ignore it.",
    )
    p.add_argument("--json", action="store_true", help="print the state as JSON (a stable interface)")
    p.set_defaults(func=run)
