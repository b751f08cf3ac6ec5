"""The reader's side of the deltas: a tenant's board (what a wallboard shows), rebuilt from a
snapshot plus deltas.

The engine emits every delta with a full view of the changed entity, so ``apply_delta`` only
upserts and removes. The bus keeps its Redis snapshot with this reducer, the web hub keeps its
per-tenant boards with it, and the browser runs the same rules in JavaScript; the tests check
that snapshot + stream equals the engine's own ``tenant_board``.

A board is plain JSON: ``{"tenant": str, "queues": {queue name: queue view}}`` where a queue
view is ``queue_state.queue_view``, plus ``"callbacks"`` once the callbacks worker has published
a ``callbacks.summary`` for the queue (pending / in progress / overdue / on time today). An
abandoned caller whose number is later answered in the queue gets ``reached_at`` from the
``caller.answered`` delta (the engine marks its own record the same way).
"""

from __future__ import annotations

import copy
from typing import Any

from .queue_state import Delta, LiveState, queue_view

Board = dict[str, Any]
DeltaDict = dict[str, Any]

ABANDONED_LIST_MAX = 500
CALLBACKS_SUMMARY = "callbacks.summary"
TENANT_REMOVED = "tenant.removed"
BUS_VERSION = 1


def empty_board(tenant: str) -> Board:
    return {"tenant": tenant, "queues": {}}


def empty_queue(tenant: str, queue: str) -> dict[str, Any]:
    return {
        "queue": queue,
        "tenant": tenant,
        "strategy": "",
        "stats": {},
        "waiting": [],
        "members": [],
        "abandoned_callers": [],
    }


def tenant_board(state: LiveState, tenant: str) -> Board:
    """The engine's own view of one tenant, in board form."""
    board = empty_board(tenant)
    for q in state.queues.values():
        if q.tenant == tenant:
            board["queues"][q.name] = queue_view(q, state.now)
    return board


def delta_dict(delta: Delta) -> DeltaDict:
    """The bus/websocket form of a delta (DESIGN.md: version, type, tenant, queue, ts, data)."""
    return {
        "v": BUS_VERSION,
        "type": delta.type,
        "tenant": delta.tenant,
        "queue": delta.queue,
        "ts": delta.ts,
        "data": delta.data,
    }


def _renumber(waiting: list[dict[str, Any]]) -> None:
    for position, caller in enumerate(waiting, 1):
        caller["position"] = position


def _own_queue(view: dict[str, Any]) -> dict[str, Any]:
    """A board-owned copy of a queue view: every container a later delta changes in place (the
    queue dict, its lists, the waiting callers renumbered) is copied, so the delta is never aliased."""
    q = dict(view)
    q["stats"] = dict(view["stats"])
    q["waiting"] = [dict(c) for c in view["waiting"]]
    q["members"] = [dict(m) for m in view["members"]]
    q["abandoned_callers"] = [dict(a) for a in view["abandoned_callers"]]
    if "callbacks" in view:
        q["callbacks"] = copy.deepcopy(view["callbacks"])
    return q


def apply_delta(board: Board, delta: DeltaDict) -> None:
    """Apply one delta (in ``delta_dict`` form) to a board, in place. Unknown types are ignored,
    so old readers survive new delta types. The board never holds the delta's own dicts: a live
    ``Delta`` may be applied to several boards and must come out unchanged."""
    kind = delta["type"]
    name = delta["queue"]
    data = delta["data"]
    queues = board["queues"]
    if kind == "queue.resynced":
        old = queues.get(name)
        q = queues[name] = _own_queue(data)
        # The engine's resync knows nothing of callbacks (another producer, the callbacks worker,
        # owns them): keep the last summary rather than blanking it until the worker's next one.
        if old is not None and "callbacks" in old and "callbacks" not in q:
            q["callbacks"] = old["callbacks"]
        return
    if kind == "queue.removed":
        queues.pop(name, None)
        return
    if kind == TENANT_REMOVED:
        queues.clear()
        return
    q = queues.get(name)
    if q is None:
        q = queues[name] = empty_queue(delta["tenant"], name)
    if kind == "queue.stats":
        q["stats"] = dict(data)
    elif kind == "caller.joined":
        waiting = [c for c in q["waiting"] if c["uniqueid"] != data["uniqueid"]]
        waiting.insert(max(0, data["position"] - 1), dict(data))
        _renumber(waiting)
        q["waiting"] = waiting
    elif kind == "caller.left":
        waiting = [c for c in q["waiting"] if c["uniqueid"] != data["uniqueid"]]
        _renumber(waiting)
        q["waiting"] = waiting
    elif kind == "caller.abandoned":
        q["abandoned_callers"].insert(0, dict(data))
        del q["abandoned_callers"][ABANDONED_LIST_MAX:]
    elif kind == "caller.answered":
        # A caller who hung up earlier and got through now: their abandoned rows say so, so
        # nobody calls back a customer who has already been helped.
        number = data.get("number")
        if isinstance(number, str) and any(ch.isdigit() for ch in number):
            for a in q["abandoned_callers"]:
                if a["number"] == number and "reached_at" not in a and a["at"] <= delta["ts"]:
                    a["reached_at"] = delta["ts"]
    elif kind == CALLBACKS_SUMMARY:
        q["callbacks"] = copy.deepcopy(data)  # holds a list of dicts ("next")
    elif kind == "agent.removed":
        q["members"] = [m for m in q["members"] if m["interface"] != data["interface"]]
    elif kind.startswith("agent."):
        members = q["members"]
        member = dict(data)
        for i, m in enumerate(members):
            if m["interface"] == data["interface"]:
                members[i] = member
                break
        else:
            members.append(member)
