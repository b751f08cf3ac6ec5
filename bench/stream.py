"""Synthetic AMI traffic, templated from the recorded Asterisk 22 fixtures.

Every frame of the stream is a frame of a real recording with its identities rewritten: uniqueids,
local channel numbers, queue and agent names (one set per tenant ``tNNN``), caller numbers and names
(including UTF-8 ones), action ids and timestamps. The recorded noise (VarSet, Newexten, ...) is
kept frame for frame, so the noise mix and the frame sizes are the real ones.

Call flows start at random times (a Poisson process over many tenants) and are merged by
timestamp, so calls overlap as they do on a busy PBX. Queue positions (``Position``, ``Count``,
``OriginalPosition``) are renumbered as the merged stream is written, so they stay consistent when
two callers of one queue overlap.

The stream opens like a real bridge session (banner, login reply, a full QueueStatus reply) and
repeats the QueueStatus resync now and then, listing the callers actually waiting at that moment,
as a bridge does after a reconnect.
"""

from __future__ import annotations

import heapq
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

FRAME_END = b"\r\n\r\n"
ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = Path(os.environ.get("PBX_FIXTURES_DIR", ROOT / "tests" / "fixtures" / "asterisk-22"))

# Recorded call flows and how often each starts (weights).
SCENARIOS: dict[str, int] = {
    "answered": 50,
    "abandoned": 20,
    "ringnoanswer": 15,
    "members": 10,
    "status_busy": 5,
}

CALLERS: tuple[tuple[str, str], ...] = (
    ("Zoë Özdemir-Müller", "06"),
    ("Jan de Vries", "020"),
    ("Anaïs Lefèvre", "010"),
    ("Søren Kjærgaard", "06"),
    ("Łukasz Wiśniewski", "030"),
    ("Ayşe Yılmaz", "06"),  # noqa: RUF001 (a real Turkish name)
    ("Piet Klaassen", "020"),
    ("Fatima El Amrani", "070"),
    ("José Muñoz", "06"),
    ("Ingrid Bäckström", "040"),
    ("Kees van den Berg", "06"),
    ("Noor Bakker", "050"),
)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
LOGIN = b"Response: Success\r\nActionID: a1\r\nMessage: Authentication accepted" + FRAME_END
DEFAULT_START_TS = 1795338000.0  # 2026-11-22 10:00 Europe/Amsterdam: no midnight in a long run

# Identities in a recorded frame, rewritten per call flow. Order matters only where two
# alternatives could start at the same position: a Timestamp is a time, not a uniqueid.
_SLOT_PATTERN = (
    rb"(?P<ts>(?<=Timestamp: )\d+\.\d+)"
    rb"|(?P<epoch>(?<=LastCall: )\d{10}|(?<=LastPause: )\d{10}|(?<=LoginTime: )\d{10})"
    rb"|(?P<uid>\b\d{10}\.\d+\b)"
    rb"|(?P<chan>(?<=-)[0-9a-f]{8}(?=;[12]))"
    rb"|(?P<queue>\bt1-(?:support|sales)\b)"
    rb"|(?P<agent>agent\d+)"
    rb"|(?P<aid>(?<=ActionID: )[^\r\n]+)"
    rb"|(?P<pos>(?<=\nPosition: )\d+)"
    rb"|(?P<count>(?<=\nCount: )\d+)"
    rb"|(?P<opos>(?<=\nOriginalPosition: )\d+)"
)
_CALLER_EVENTS = {
    b"Event: QueueCallerJoin": "join",
    b"Event: QueueCallerLeave": "leave",
    b"Event: QueueCallerAbandon": "abandon",
}

Slot = tuple[str, bytes]
Fields = list[tuple[str, str]]


@dataclass(slots=True, frozen=True)
class Template:
    """One recorded frame: literal byte runs and the slots between them."""

    t: float  # seconds after the flow's first frame
    parts: tuple[bytes | Slot, ...]
    kind: str = ""  # "join" / "leave" / "abandon": positions are renumbered on output
    caller_uid: bytes = b""
    queue: bytes = b""


@dataclass(slots=True)
class Scenario:
    name: str
    frames: list[Template]
    t0: float = 0.0  # the recorded epoch of the first frame; templates keep times relative to it
    numbers: list[bytes] = field(default_factory=list)  # recorded callers, in order of appearance
    names: list[bytes] = field(default_factory=list)


def split_frames(data: bytes) -> list[bytes]:
    """The frames of a recording, without terminators and without the banner line."""
    if data.startswith(b"Asterisk Call Manager/"):
        data = data[data.index(b"\r\n") + 2 :]
    return [f for f in data.split(FRAME_END) if f.strip()]


def event_name(frame: bytes) -> str:
    eol = frame.find(b"\r\n")
    return (frame[7:eol] if eol >= 0 else frame[7:]).decode() if frame.startswith(b"Event: ") else ""


MANAGER_CONF = ROOT / "asterisk-config" / "manager.conf"
_EVENTFILTER = re.compile(r"^eventfilter\(action\(include\),name\(([^)]+)\)\)", re.MULTILINE)


def manager_conf_events(path: Path = MANAGER_CONF) -> frozenset[str]:
    """The event names ``asterisk-config/manager.conf`` lets through (its include eventfilters):
    what the bridge receives from a PBX set up as the README says."""
    names = frozenset(_EVENTFILTER.findall(path.read_text()))
    if not names:
        raise ValueError(f"{path} has no eventfilter(action(include),name(...)) lines")
    return names


def header(frame: bytes, name: bytes) -> bytes:
    m = re.search(rb"(?:^|\r\n)" + re.escape(name) + rb": ([^\r\n]*)", frame)
    return m.group(1) if m else b""


def _timestamp(frame: bytes) -> float | None:
    raw = header(frame, b"Timestamp")
    return float(raw) if raw else None


def _fields(frame: bytes) -> Fields:
    return [(k, v) for k, _, v in (line.partition(": ") for line in frame.decode().split("\r\n"))]


@dataclass(slots=True)
class Library:
    """The recorded fixtures, cut into templates."""

    scenarios: dict[str, Scenario]
    listing: list[bytes]  # the recorded QueueStatus reply (response, items, complete)
    entry: Fields  # a recorded QueueEntry item (a caller waiting, as QueueStatus lists it)
    member_added: Fields  # a recorded QueueMemberAdded event
    join: Fields  # a recorded QueueCallerJoin event
    slot_re: re.Pattern[bytes]

    @classmethod
    def load(cls, fixtures_dir: Path = FIXTURES_DIR, *, events: frozenset[str] | None = None) -> Library:
        """The recordings cut into templates. ``events``: keep only the events with these names
        (what Asterisk sends through an ``eventfilter``); replies to actions always pass."""
        raw: dict[str, list[bytes]] = {}
        for name in SCENARIOS:
            path = fixtures_dir / f"{name}.ami"
            if not path.exists():
                raise FileNotFoundError(f"recorded fixture {path} is missing (set PBX_FIXTURES_DIR)")
            raw[name] = split_frames(path.read_bytes())
        numbers: set[bytes] = set()
        names: set[bytes] = set()
        for frames in raw.values():
            for f in frames:
                for key, into in ((b"CallerIDNum", numbers), (b"CallerIDName", names)):
                    value = header(f, key)
                    if value and value != b"<unknown>":
                        into.add(value)
        # Longest first, so "Waiting 1" never shadows a longer literal.
        alts = [
            (kind, b"|".join(re.escape(v) for v in sorted(vals, key=len, reverse=True)))
            for kind, vals in (("num", numbers), ("name", names))
        ]
        slot_re = re.compile(_SLOT_PATTERN + b"".join(rb"|(?P<%s>%s)" % (k.encode(), a) for k, a in alts))

        def first(scenario: str, prefix: bytes) -> Fields:
            return _fields(next(f for f in raw[scenario] if f.startswith(prefix)))

        return cls(
            scenarios={name: _scenario(name, raw[name], slot_re, events) for name in SCENARIOS},
            listing=_recorded_listing(raw["members"]),
            entry=first("status_busy", b"Event: QueueEntry"),
            member_added=first("members", b"Event: QueueMemberAdded"),
            join=first("answered", b"Event: QueueCallerJoin"),
            slot_re=slot_re,
        )


def _listing_ids(frames: list[bytes]) -> set[bytes]:
    return {
        header(f, b"ActionID")
        for f in frames
        if f.startswith(b"Response: ") and header(f, b"EventList").lower() == b"start"
    }


def _recorded_listing(frames: list[bytes]) -> list[bytes]:
    start = next(f for f in frames if b"Queue status will follow" in f)
    aid = header(start, b"ActionID")
    return [f for f in frames if header(f, b"ActionID") == aid]


def _scenario(
    name: str, frames: list[bytes], slot_re: re.Pattern[bytes], events: frozenset[str] | None = None
) -> Scenario:
    """Keep what any AMI listener sees during the flow: every event, except the replies to the
    recorder's own actions (responses and their EventList items) and the once-per-login events;
    with ``events``, only the events a server-side filter lets through."""
    listings = _listing_ids(frames)
    kept = [
        f
        for f in frames
        if f.startswith(b"Event: ")
        and not f.startswith((b"Event: FullyBooted", b"Event: SuccessfulAuth"))
        and header(f, b"ActionID") not in listings
        and (events is None or event_name(f) in events)
    ]
    t0 = next(t for f in kept if (t := _timestamp(f)) is not None)
    scenario = Scenario(name, [], t0)
    t = 0.0
    for f in kept:
        ts = _timestamp(f)
        if ts is not None:
            t = ts - t0
        kind = _CALLER_EVENTS.get(f.split(b"\r\n", 1)[0], "")
        parts = _cut(f, slot_re)
        scenario.frames.append(
            Template(
                t=t,
                parts=parts,
                kind=kind,
                caller_uid=header(f, b"Uniqueid") if kind else b"",
                queue=header(f, b"Queue") if kind else b"",
            )
        )
        for part in parts:
            if isinstance(part, tuple) and part[0] in ("num", "name"):
                seen = scenario.numbers if part[0] == "num" else scenario.names
                if part[1] not in seen:
                    seen.append(part[1])
    return scenario


def _cut(frame: bytes, slot_re: re.Pattern[bytes]) -> tuple[bytes | Slot, ...]:
    parts: list[bytes | Slot] = []
    pos = 0
    for m in slot_re.finditer(frame):
        parts.append(frame[pos : m.start()])
        assert m.lastgroup is not None
        parts.append((m.lastgroup, m.group()))
        pos = m.end()
    parts.append(frame[pos:])
    return tuple(p for p in parts if p != b"")


# --------------------------------------------------------------------------- rendering


@dataclass(slots=True)
class _Ids:
    """Identity counters shared by every flow of a stream, so no two calls share an id."""

    uid: int = 1000
    chan: int = 0x100
    action: int = 100


@dataclass(slots=True, frozen=True)
class Waiting:
    uniqueid: bytes
    channel: bytes
    number: bytes
    name: bytes
    joined: float


@dataclass(slots=True)
class _Queues:
    """Who waits where in the merged stream: renumbers positions and feeds the resync listings."""

    waiting: dict[bytes, dict[bytes, Waiting]] = field(default_factory=dict)  # queue -> uid -> caller
    original: dict[bytes, int] = field(default_factory=dict)

    def fill(self, kind: str, queue: bytes, uid: bytes) -> dict[str, bytes]:
        line = self.waiting.setdefault(queue, {})
        if kind == "join":
            self.original[uid] = len(line) + 1
            return {"pos": b"%d" % (len(line) + 1), "count": b"%d" % (len(line) + 1)}
        pos = list(line).index(uid) + 1 if uid in line else 1
        if kind == "abandon":
            return {"pos": b"%d" % pos, "opos": b"%d" % self.original.get(uid, pos)}
        line.pop(uid, None)
        self.original.pop(uid, None)
        return {"pos": b"%d" % pos, "count": b"%d" % len(line)}

    def joined(self, queue: bytes, frame: bytes) -> None:
        uid = header(frame, b"Uniqueid")
        self.waiting.setdefault(queue, {})[uid] = Waiting(
            uid,
            header(frame, b"Channel"),
            header(frame, b"CallerIDNum"),
            header(frame, b"CallerIDName"),
            float(header(frame, b"Timestamp")),
        )


@dataclass(slots=True)
class Flow:
    """One call flow in flight: a scenario with its own tenant, callers and identities."""

    scenario: Scenario
    tenant: bytes
    offset: float  # added to every recorded timestamp
    callers: dict[bytes, tuple[bytes, bytes]]  # recorded number or name -> new (number, name)
    ids: _Ids
    uids: dict[bytes, bytes] = field(default_factory=dict)
    chans: dict[bytes, bytes] = field(default_factory=dict)
    actions: dict[bytes, bytes] = field(default_factory=dict)

    def render(self, tpl: Template, queues: _Queues | None = None) -> bytes:
        late: dict[str, bytes] = {}
        if tpl.kind and queues is not None:
            late = queues.fill(tpl.kind, self._queue(tpl.queue), self._uid(tpl.caller_uid))
        out: list[bytes] = []
        for part in tpl.parts:
            if isinstance(part, bytes):
                out.append(part)
                continue
            kind, value = part
            if kind in late:
                out.append(late[kind])
            elif kind == "ts":
                out.append(b"%.6f" % (float(value) + self.offset))
            elif kind == "epoch":
                out.append(b"%d" % (int(value) + int(self.offset)))
            elif kind == "uid":
                out.append(self._uid(value))
            elif kind == "chan":
                out.append(self._chan(value))
            elif kind == "queue":
                out.append(self._queue(value))
            elif kind == "agent":
                out.append(self.tenant + b"-" + value)
            elif kind == "aid":
                out.append(self._action(value))
            elif kind in ("num", "name"):
                pair = self.callers.get(value)
                out.append(value if pair is None else pair[kind == "name"])
            else:  # a position outside a caller event: keep the recorded one
                out.append(value)
        frame = b"".join(out)
        if tpl.kind == "join" and queues is not None:
            queues.joined(self._queue(tpl.queue), frame)
        return frame

    def _queue(self, recorded: bytes) -> bytes:
        return self.tenant + recorded[2:]  # "t1-support" -> "t042-support"

    def _uid(self, recorded: bytes) -> bytes:
        new = self.uids.get(recorded)
        if new is None:
            self.ids.uid += 1
            new = self.uids[recorded] = b"%d.%d" % (int(float(recorded) + self.offset), self.ids.uid)
        return new

    def _chan(self, recorded: bytes) -> bytes:
        new = self.chans.get(recorded)
        if new is None:
            self.ids.chan += 1
            new = self.chans[recorded] = b"%08x" % (self.ids.chan & 0xFFFFFFFF)
        return new

    def _action(self, recorded: bytes) -> bytes:
        new = self.actions.get(recorded)
        if new is None:
            self.ids.action += 1
            new = self.actions[recorded] = b"b%d" % self.ids.action
        return new


def _draw_callers(rng: random.Random, scenario: Scenario) -> dict[bytes, tuple[bytes, bytes]]:
    """Fresh callers for a flow. The recordings pair numbers and names 1:1 in order of appearance."""
    callers: dict[bytes, tuple[bytes, bytes]] = {}
    for number, name in zip(scenario.numbers, scenario.names, strict=True):
        person, prefix = rng.choice(CALLERS)
        digits = "".join(rng.choice("0123456789") for _ in range(10 - len(prefix)))
        callers[number] = callers[name] = ((prefix + digits).encode(), person.encode())
    return callers


def tenant_slug(index: int) -> str:
    return f"t{index:03d}"


# --------------------------------------------------------------------------- the stream


@dataclass(slots=True, frozen=True)
class StreamInfo:
    data: bytes
    frames: int
    flows: dict[str, int]
    tenants: int
    resyncs: int
    span_s: float


def generate(
    frames: int = 500_000,
    *,
    tenants: int = 200,
    seed: int = 1,
    mean_gap_s: float = 90.0,
    resync_every_s: float = 600.0,
    start_ts: float = DEFAULT_START_TS,
    library: Library | None = None,
) -> StreamInfo:
    """About ``frames`` frames of realistic AMI traffic (whole call flows, so a little over).

    Each tenant starts a call flow every ``mean_gap_s`` on average, so a flow often overlaps others
    of other tenants and sometimes one of its own tenant. Every ``resync_every_s`` of stream time
    a full QueueStatus reply lists every tenant's queues, members and waiting callers.
    """
    lib = library or Library.load()
    rng = random.Random(seed)
    names = list(SCENARIOS)
    weights = [SCENARIOS[n] for n in names]
    ids = _Ids()
    flows: list[Flow] = []
    counts = dict.fromkeys(names, 0)
    total = 0
    t = start_ts + 5.0
    rate = tenants / mean_gap_s
    while total < frames:
        t += rng.expovariate(rate)
        scenario = lib.scenarios[rng.choices(names, weights)[0]]
        flows.append(
            Flow(
                scenario=scenario,
                tenant=tenant_slug(rng.randrange(1, tenants + 1)).encode(),
                offset=t - scenario.t0,
                callers=_draw_callers(rng, scenario),
                ids=ids,
            )
        )
        counts[scenario.name] += 1
        total += len(scenario.frames)

    slugs = [tenant_slug(i).encode() for i in range(1, tenants + 1)]
    queues = _Queues()
    out = [BANNER, LOGIN]
    written = 0
    resyncs = 0

    def resync(at: float) -> None:
        nonlocal written, resyncs
        resyncs += 1
        listing = resync_listing(lib, slugs, at, queues.waiting, action_id=b"resync-%d" % resyncs)
        out.extend(f + FRAME_END for f in listing)
        written += len(listing)

    resync(start_ts)
    next_resync = start_ts + resync_every_s
    last_ts = start_ts
    for ts, _, _, tpl, flow in _merged(flows):
        if ts >= next_resync:
            resync(last_ts)  # the listing describes the stream as it stands before this frame
            next_resync += resync_every_s
        out.append(flow.render(tpl, queues) + FRAME_END)
        written += 1
        last_ts = ts
    return StreamInfo(
        data=b"".join(out),
        frames=1 + written,
        flows=counts,
        tenants=tenants,
        resyncs=resyncs,
        span_s=round(last_ts - start_ts, 1),
    )


def _merged(flows: list[Flow]) -> Iterator[tuple[float, int, int, Template, Flow]]:
    def frames_of(index: int, flow: Flow) -> Iterator[tuple[float, int, int, Template, Flow]]:
        base = flow.offset + flow.scenario.t0
        for seq, tpl in enumerate(flow.scenario.frames):
            yield base + tpl.t, index, seq, tpl, flow

    return heapq.merge(*(frames_of(i, f) for i, f in enumerate(flows)))


def resync_listing(
    lib: Library,
    tenants: list[bytes],
    at: float,
    waiting: dict[bytes, dict[bytes, Waiting]] | None = None,
    *,
    action_id: bytes = b"resync-1",
) -> list[bytes]:
    """A full QueueStatus reply: the recorded reply's queues and members for every tenant, and a
    QueueEntry (with its real ``Wait``) for every caller in ``waiting`` at ``at``."""
    response, *items, complete = lib.listing
    recorded_at = next(float(v) for f in items if (v := header(f, b"LoginTime")) and v != b"0")
    recorded_aid = header(response, b"ActionID")
    frames = [set_header(response, b"ActionID", action_id)]
    aid = action_id.decode()

    def entries(queue: bytes) -> None:
        for pos, w in enumerate((waiting or {}).get(queue, {}).values(), 1):
            frames.append(
                _frame(
                    lib.entry,
                    Queue=queue.decode(),
                    Position=str(pos),
                    Channel=w.channel.decode(),
                    Uniqueid=w.uniqueid.decode(),
                    CallerIDNum=w.number.decode(),
                    CallerIDName=w.name.decode(),
                    ConnectedLineNum=w.number.decode(),
                    ConnectedLineName=w.name.decode(),
                    Wait=str(max(0, int(at - w.joined))),
                    ActionID=aid,
                )
            )

    for tenant in tenants:
        flow = Flow(Scenario("listing", []), tenant, at - recorded_at, {}, _Ids())
        flow.actions[recorded_aid] = action_id
        queue = b""
        for f in items:
            if f.startswith(b"Event: QueueParams"):
                if queue:
                    entries(queue)
                queue = flow._queue(header(f, b"Queue"))
            frames.append(flow.render(Template(0.0, _cut(f, lib.slot_re))))
        if queue:
            entries(queue)
    done = set_header(complete, b"ActionID", action_id)
    frames.append(set_header(done, b"ListItems", b"%d" % (len(frames) - 1)))
    return frames


def set_header(frame: bytes, name: bytes, value: bytes) -> bytes:
    return re.sub(rb"(?m)^(" + re.escape(name) + rb": )[^\r\n]*", lambda m: m.group(1) + value, frame)


def _frame(fields: Fields, **values: str) -> bytes:
    """A recorded frame's headers in their recorded order, some with new values (no terminator)."""
    return "\r\n".join(f"{k}: {values.get(k, v)}" for k, v in fields).encode()


# --------------------------------------------------------------------------- large live states


def live_state_stream(
    lib: Library,
    *,
    tenants: int,
    queues: int,
    agents: int,
    waiting: int,
    at: float = DEFAULT_START_TS,
) -> Iterator[bytes]:
    """The events that build a big live state, one tenant per chunk: ``agents`` members join each
    of a tenant's ``queues`` (QueueMemberAdded), then ``waiting`` callers join each queue
    (QueueCallerJoin). Built from the recorded frames, so they parse like real ones."""
    suffixes = ("support", "sales", "billing", "tech", "renewals", "vip", "nl", "en")
    uid = 0
    yield BANNER
    for ti in range(1, tenants + 1):
        tenant = f"t{ti:04d}"
        out: list[bytes] = []
        for qi in range(queues):
            queue = f"{tenant}-{suffixes[qi] if qi < len(suffixes) else f'q{qi}'}"
            for ai in range(1, agents + 1):
                out.append(
                    _frame(
                        lib.member_added,
                        Timestamp=f"{at:.6f}",
                        Queue=queue,
                        MemberName=f"{CALLERS[(ti + ai) % len(CALLERS)][0]} {ai}",
                        Interface=f"Local/{tenant}-agent{ai}@agents/n",
                        StateInterface=f"Custom:{tenant}-agent{ai}",
                        LoginTime=str(int(at)),
                        Status="1",
                    )
                )
            for wi in range(1, waiting + 1):
                uid += 1
                person, prefix = CALLERS[(ti + qi + wi) % len(CALLERS)]
                number = f"{prefix}{uid:08d}"[:10]
                out.append(
                    _frame(
                        lib.join,
                        Timestamp=f"{at + wi:.6f}",
                        Channel=f"Local/wait@patience-{uid:08x};1",
                        CallerIDNum=number,
                        CallerIDName=person,
                        ConnectedLineNum=number,
                        ConnectedLineName=person,
                        Uniqueid=f"{int(at)}.{uid}",
                        Linkedid=f"{int(at)}.{uid}",
                        Queue=queue,
                        Position=str(wi),
                        Count=str(wi),
                    )
                )
        yield b"".join(f + FRAME_END for f in out)
