"""The history writer's pure core: one tenant's stream of deltas folded into rows.

A row is the whole truth about one call (``CallRow``) or one agent session (``SessionRow``); the
shell upserts changed rows by their natural key, so writing a row again after a redelivered
entry changes nothing. What the core holds in memory is only a cache of the rows still open:
before folding a batch the shell asks which rows it names that are not cached (``wants``) and
loads them from SQL (``preload``), so a restart in the middle of a call, or a redelivered batch,
folds onto exactly the state that was written.

The rules mirror the engine's counters (``domain.queue_state``), so the rows of a day add up to
the engine's day figures: a Leave is an exit until a Connect turns it into an answer; a caller
first seen at its abandon or answer was offered all the same; a call first seen at its
AgentComplete was handled but never offered (``joined_at`` stays None).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..domain.queue_state import DEFAULT_SHORT_ABANDON_S

WAITING = "waiting"
ANSWERED = "answered"
ABANDONED = "abandoned"
SHORT_ABANDON = "short_abandon"
EXITED = "exited"
DECIDED = frozenset({ANSWERED, ABANDONED, SHORT_ABANDON})
OUTCOMES = (WAITING, ANSWERED, ABANDONED, SHORT_ABANDON, EXITED)

LOGIN = "login"
PAUSE = "pause"
RING_NO_ANSWER = "ring_no_answer"

CACHE_MAX = 100_000  # open calls kept in memory; older ones are read back from SQL when named

CallKey = tuple[str, str]  # queue, uniqueid
SessionKey = tuple[str, str, str]  # queue, interface, kind


@dataclass(slots=True)
class CallRow:
    tenant: str
    epoch: int
    queue: str
    uniqueid: str
    number: str = ""
    name: str = ""
    joined_at: float | None = None
    position: int | None = None
    outcome: str = WAITING
    waited_s: int | None = None
    ended_at: float | None = None
    agent: str | None = None
    agent_name: str | None = None
    talk_s: int | None = None
    wrapup_s: int | None = None
    completed_at: float | None = None
    end_reason: str | None = None
    transfers: int = 0
    anonymised: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def final(self) -> bool:
        """Nothing more can happen to it (a late duplicate is read back from SQL and ignored)."""
        return self.outcome in (ABANDONED, SHORT_ABANDON) or self.completed_at is not None


@dataclass(slots=True)
class SessionRow:
    tenant: str
    epoch: int
    queue: str
    interface: str
    agent_name: str
    kind: str
    started_at: float
    ended_at: float | None = None
    reason: str | None = None
    uniqueid: str | None = None
    ring_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CALL_FIELDS = tuple(CallRow.__dataclass_fields__)
SESSION_FIELDS = tuple(SessionRow.__dataclass_fields__)


class TenantHistory:
    """One tenant (at one bus epoch): ``wants`` → shell loads → ``preload`` → ``fold`` each
    delta → ``take`` the changed rows to write."""

    def __init__(self, tenant: str, epoch: int) -> None:
        self.tenant = tenant
        self.epoch = epoch
        self.calls: dict[CallKey, CallRow] = {}
        self.sessions: dict[SessionKey, SessionRow] = {}  # open logins and pauses
        self.short_abandon_s: dict[str, int] = {}
        self._checked_calls: set[CallKey] = set()  # looked up in SQL, not there: new
        self._checked_sessions: set[SessionKey] = set()
        self._dirty_calls: dict[CallKey, CallRow] = {}
        self._dirty_sessions: dict[tuple[str, str, str, float], SessionRow] = {}

    # ------------------------------------------------------------------ loading

    def wants(self, deltas: list[dict[str, Any]]) -> tuple[set[CallKey], set[SessionKey]]:
        """The rows these deltas name that are neither cached nor known to be new."""
        calls: set[CallKey] = set()
        sessions: set[SessionKey] = set()
        for d in deltas:
            kind, queue, data = d["type"], d["queue"], d["data"]
            if kind.startswith("caller.") and "uniqueid" in data and kind != "caller.ring_no_answer":
                calls.add((queue, data["uniqueid"]))
            elif (
                kind in ("agent.added", "agent.removed", "agent.paused", "agent.unpaused")
                and "interface" in data
            ):
                sessions.add((queue, data["interface"], LOGIN))
                sessions.add((queue, data["interface"], PAUSE))
            elif kind == "queue.resynced":  # (a malformed one fails in ``fold``, named there)
                calls.update((queue, c["uniqueid"]) for c in data.get("waiting", ()) if "uniqueid" in c)
                for m in data.get("members", ()):
                    if "interface" in m:
                        sessions.add((queue, m["interface"], LOGIN))
                        sessions.add((queue, m["interface"], PAUSE))
        return (
            calls - self.calls.keys() - self._checked_calls,
            sessions - self.sessions.keys() - self._checked_sessions,
        )

    def preload(
        self, wanted: tuple[set[CallKey], set[SessionKey]], calls: list[CallRow], sessions: list[SessionRow]
    ) -> None:
        """What SQL holds of the wanted rows (``sessions``: the open ones only)."""
        for row in calls:
            self.calls[(row.queue, row.uniqueid)] = row
        for s in sessions:
            self.sessions[(s.queue, s.interface, s.kind)] = s
        self._checked_calls.update(wanted[0])
        self._checked_sessions.update(wanted[1])

    # ------------------------------------------------------------------ folding

    def fold(self, d: dict[str, Any]) -> None:
        handler = _HANDLERS.get(d["type"])
        if handler is not None:
            handler(self, d["queue"], float(d["ts"]), d["data"])

    def take(self) -> tuple[list[CallRow], list[SessionRow]]:
        """The rows changed since the last ``take``; forgets the calls that are over."""
        calls, sessions = list(self._dirty_calls.values()), list(self._dirty_sessions.values())
        self._dirty_calls.clear()
        self._dirty_sessions.clear()
        self._checked_calls.clear()
        self._checked_sessions.clear()
        for row in calls:
            if row.final:
                self.calls.pop((row.queue, row.uniqueid), None)
        while len(self.calls) > CACHE_MAX:  # read back from SQL if named again
            del self.calls[next(iter(self.calls))]
        return calls, sessions

    def _call(self, queue: str, uniqueid: str) -> CallRow | None:
        return self.calls.get((queue, uniqueid))

    def _new_call(self, queue: str, uniqueid: str) -> CallRow:
        row = self.calls[(queue, uniqueid)] = CallRow(self.tenant, self.epoch, queue, uniqueid)
        return row

    def _touch(self, row: CallRow) -> None:
        self._dirty_calls[(row.queue, row.uniqueid)] = row

    def _touch_session(self, s: SessionRow) -> None:
        self._dirty_sessions[(s.queue, s.interface, s.kind, s.started_at)] = s

    # calls

    def _joined(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        row = self._call(queue, data["uniqueid"])
        if row is None:
            row = self._new_call(queue, data["uniqueid"])
            row.joined_at = float(data.get("joined_at", ts))
            row.number, row.name = data.get("number", ""), data.get("name", "")
            row.position = data.get("position")
        elif row.outcome == EXITED:  # back in line on the same channel: still one call
            row.outcome, row.ended_at = WAITING, None
        else:
            return  # a duplicate
        self._touch(row)

    def _left(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        row = self._call(queue, data["uniqueid"])
        if row is not None and row.outcome == WAITING:
            row.outcome, row.ended_at = EXITED, ts  # until a Connect says it was answered
            self._touch(row)

    def _decided(self, queue: str, ts: float, data: dict[str, Any], wait: int) -> CallRow | None:
        row = self._call(queue, data["uniqueid"])
        if row is not None and (row.outcome in DECIDED or _stale(row, ts)):
            return None  # decided already, or a replay from before it joined
        if row is None:  # first seen now: it joined before we were watching
            row = self._new_call(queue, data["uniqueid"])
        if row.joined_at is None:
            row.joined_at = ts - wait
        row.number = row.number or data.get("number", "")
        row.name = row.name or data.get("name", "")
        row.waited_s, row.ended_at = wait, ts
        self._touch(row)
        return row

    def _abandoned(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        wait = int(data["waited_s"])
        row = self._decided(queue, ts, data, wait)
        if row is not None:
            short = wait < self.short_abandon_s.get(queue, DEFAULT_SHORT_ABANDON_S)
            row.outcome = SHORT_ABANDON if short else ABANDONED
            if row.position is None:
                row.position = data.get("position")

    def _answered(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        row = self._decided(queue, ts, data, int(data["hold_s"]))
        if row is not None:
            row.outcome = ANSWERED
            row.agent, row.agent_name = data.get("interface"), data.get("member_name")

    def _completed(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        row = self._call(queue, data["uniqueid"])
        if row is None:  # answered before we were watching: handled, never offered
            row = self._new_call(queue, data["uniqueid"])
            row.outcome = ANSWERED
            row.waited_s = int(data.get("hold_s", 0))
        elif row.completed_at is not None:
            return
        row.talk_s, row.wrapup_s = int(data["talk_s"]), int(data["wrapup_s"])
        row.completed_at, row.end_reason = ts, data.get("reason") or None
        row.agent = row.agent or data.get("interface")
        row.agent_name = row.agent_name or data.get("member_name")
        if row.end_reason == "transfer":
            row.transfers += 1
        self._touch(row)

    # agents

    def _open(self, queue: str, ts: float, m: dict[str, Any], kind: str, reason: str | None = None) -> None:
        key = (queue, m["interface"], kind)
        if key in self.sessions:
            return
        s = self.sessions[key] = SessionRow(
            self.tenant,
            self.epoch,
            queue,
            m["interface"],
            m.get("name") or m["interface"],
            kind,
            ts,
            reason=reason,
        )
        self._touch_session(s)

    def _close(self, queue: str, ts: float, interface: str, kind: str) -> None:
        s = self.sessions.pop((queue, interface, kind), None)
        if s is not None:
            s.ended_at = max(ts, s.started_at)
            self._touch_session(s)

    def _member_seen(self, queue: str, ts: float, m: dict[str, Any]) -> None:
        self._open(queue, ts, m, LOGIN)
        if m.get("paused"):
            self._open(queue, float(m.get("since") or ts), m, PAUSE, m.get("paused_reason") or None)
        else:
            self._close(queue, ts, m["interface"], PAUSE)

    def _agent_added(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        self._member_seen(queue, ts, data)

    def _agent_removed(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        self._close(queue, ts, data["interface"], PAUSE)
        self._close(queue, ts, data["interface"], LOGIN)

    def _agent_paused(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        self._member_seen(queue, ts, data)

    def _ring_no_answer(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        s = SessionRow(
            self.tenant,
            self.epoch,
            queue,
            data["interface"],
            data.get("member_name") or data["interface"],
            RING_NO_ANSWER,
            ts,
            ts,
            uniqueid=data.get("uniqueid"),
            ring_ms=data.get("ring_ms"),
        )
        self._touch_session(s)

    # queues

    def _stats(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        if "short_abandon_s" in data:
            self.short_abandon_s[queue] = int(data["short_abandon_s"])

    def _resynced(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        """Asterisk's own listing: callers we had waiting and it no longer lists vanished (an
        other exit, as the engine counts them); callers new to us joined; members are logged in."""
        self._stats(queue, ts, data.get("stats", {}))
        listed = {c["uniqueid"] for c in data.get("waiting", ())}
        for (q, uid), row in list(self.calls.items()):
            if q == queue and row.outcome == WAITING and uid not in listed:
                row.outcome, row.ended_at = EXITED, ts
                self._touch(row)
        for c in data.get("waiting", ()):
            if self._call(queue, c["uniqueid"]) is None:  # one we knew keeps its own outcome
                self._joined(queue, ts, c)
        for m in data.get("members", ()):
            self._member_seen(queue, ts, m)

    def _queue_removed(self, queue: str, ts: float, data: dict[str, Any]) -> None:
        for (q, _uid), row in list(self.calls.items()):
            if q == queue and row.outcome == WAITING:
                row.outcome, row.ended_at = EXITED, ts
                self._touch(row)
        for q, interface, kind in list(self.sessions):
            if q == queue:
                self._close(queue, ts, interface, kind)


def _stale(row: CallRow, ts: float) -> bool:
    """An event older than a waiting caller's join is a replay from before it (as the engine)."""
    return row.outcome == WAITING and row.joined_at is not None and ts < row.joined_at


_HANDLERS = {
    "caller.joined": TenantHistory._joined,
    "caller.left": TenantHistory._left,
    "caller.abandoned": TenantHistory._abandoned,
    "caller.answered": TenantHistory._answered,
    "caller.completed": TenantHistory._completed,
    "caller.ring_no_answer": TenantHistory._ring_no_answer,
    "agent.added": TenantHistory._agent_added,
    "agent.removed": TenantHistory._agent_removed,
    "agent.paused": TenantHistory._agent_paused,
    "agent.unpaused": TenantHistory._agent_paused,
    "queue.stats": TenantHistory._stats,
    "queue.resynced": TenantHistory._resynced,
    "queue.removed": TenantHistory._queue_removed,
}
