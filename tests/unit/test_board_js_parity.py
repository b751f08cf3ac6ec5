"""The browser's board reducer (wallboard/board.js) against the Python one (board.apply_delta).

Both rebuild a tenant's board from the same real engine deltas: the recorded Asterisk streams and
long synthetic runs from the property tests' builder. The boards must be equal, and equal to the
engine's own ``tenant_board``. Runs board.js in Node (no DOM needed); skips without Node.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from typing import Any

import pytest

from pbx_core.ami.framing import FrameDecoder
from pbx_core.domain.board import Board, apply_delta, delta_dict, empty_board, tenant_board
from pbx_core.domain.events import MemberChange
from pbx_core.domain.queue_state import Delta, LiveState, apply
from pbx_core.ingest import Ingest
from tests.conftest import ROOT, fixture_bytes
from tests.unit.test_apply_properties import build

BOARD_JS = ROOT / "wallboard" / "board.js"
FIXTURES = ("answered", "abandoned", "ringnoanswer", "members", "status_busy")
KINDS = ["join", "join", "join", "leave", "abandon", "called", "connect", "complete", "rna", "dump",
         "member", "hangup", "tick", "snapshot"]  # fmt: skip

# Reads [{tenant, deltas}] on stdin, prints the boards board.js builds from them.
RUNNER = f"""
import {{ applyDelta, emptyBoard }} from {json.dumps(BOARD_JS.as_uri())};
let input = "";
process.stdin.on("data", (c) => {{ input += c; }});
process.stdin.on("end", () => {{
  const out = JSON.parse(input).map(({{ tenant, deltas }}) => {{
    const board = emptyBoard(tenant);
    for (const d of deltas) applyDelta(board, d);
    return board;
  }});
  process.stdout.write(JSON.stringify(out));
}});
"""

Case = tuple[str, list[dict[str, Any]], Board]


def run_js(cases: list[Case]) -> list[Board]:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed; board.js parity needs it")
    payload = json.dumps([{"tenant": t, "deltas": d} for t, d, _ in cases])
    proc = subprocess.run(
        [node, "--input-type=module", "-e", RUNNER],
        input=payload, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def cases_from(state: LiveState, deltas: list[Delta]) -> list[Case]:
    out: list[Case] = []
    for tenant in sorted({d.tenant for d in deltas}):
        ds = [delta_dict(d) for d in deltas if d.tenant == tenant]
        # Serialised first, as a hub must: apply_delta keeps a queue.resynced delta's data as the
        # queue itself, so later deltas mutate it in place.
        wire = json.loads(json.dumps(ds))
        py = empty_board(tenant)
        for d in ds:
            apply_delta(py, d)
        out.append((tenant, wire, json.loads(json.dumps(py))))
        engine = json.loads(json.dumps(tenant_board(state, tenant)))
        assert py == engine, f"the Python reducer disagrees with the engine for {tenant}"
    return out


def fixture_cases() -> list[Case]:
    ingest = Ingest()
    deltas: list[Delta] = []
    for name in FIXTURES:
        # One decoder per file: each recording opens with its own AMI banner.
        for frame in FrameDecoder().feed(fixture_bytes(name)):
            deltas.extend(ingest.frame(frame))
    return cases_from(ingest.state, deltas)


def synthetic_cases(seed: int, n: int) -> list[Case]:
    rnd = random.Random(seed)
    steps = [
        (rnd.choice(KINDS), rnd.randrange(3), rnd.randrange(8), rnd.randrange(4), rnd.uniform(0.001, 40),
         rnd.randrange(91), rnd.choice(list(MemberChange)), rnd.random() < 0.5)
        for _ in range(n)
    ]  # fmt: skip
    state = LiveState()
    deltas: list[Delta] = []
    for event in build(steps):
        deltas.extend(apply(state, event))
    return cases_from(state, deltas)


def test_board_js_matches_python_reducer_on_recordings_and_synthetic_runs() -> None:
    cases = fixture_cases()
    for seed in range(8):
        cases.extend(synthetic_cases(seed, 400))
    assert sum(len(d) for _, d, _ in cases) > 1000, "too few deltas to mean anything"
    js_boards = run_js(cases)
    assert len(js_boards) == len(cases)
    for (tenant, _, py), js in zip(cases, js_boards, strict=True):
        assert js == py, f"board.js and board.apply_delta disagree for tenant {tenant}"


def summary_delta(rnd: random.Random, tenant: str, queue: str, ts: float) -> Delta:
    """A ``callbacks.summary`` as the callbacks worker publishes it (contract: issue 5, Bus)."""
    done = rnd.randrange(12)
    on_time = rnd.randrange(done + 1)
    nxt = [
        {"id": f"cb{rnd.randrange(10**6)}", "number": f"06{rnd.randrange(10**8):08d}",
         "status": rnd.choice(["pending", "overdue", "dialling"]), "due_by": ts + rnd.uniform(-600, 3600),
         "place_at": ts - rnd.uniform(0, 900)}
        for _ in range(rnd.randrange(6))
    ]  # fmt: skip
    data = {
        "pending": rnd.randrange(9), "in_progress": rnd.randrange(3), "overdue": rnd.randrange(4),
        "completed_today": done, "on_time_today": on_time,
        "on_time_pct": round(100 * on_time / done, 1) if done else None, "next": nxt,
    }  # fmt: skip
    return Delta("callbacks.summary", tenant, queue, ts, data)


def test_board_js_matches_python_with_callbacks_summaries_between_engine_deltas() -> None:
    """The callbacks worker's summaries land on the same board as the engine's deltas: before a
    queue exists, between joins and abandons, and across queue.resynced (which keeps them)."""
    cases: list[Case] = []
    for seed in range(6):
        rnd = random.Random(1000 + seed)
        state = LiveState()
        mixed: list[Delta] = []
        steps = [
            (rnd.choice(KINDS), rnd.randrange(3), rnd.randrange(8), rnd.randrange(4), rnd.uniform(0.001, 40),
             rnd.randrange(91), rnd.choice(list(MemberChange)), rnd.random() < 0.5)
            for _ in range(400)
        ]  # fmt: skip
        last: dict[tuple[str, str], dict[str, Any]] = {}
        for event in build(steps):
            deltas = apply(state, event)
            mixed.extend(deltas)
            for d in deltas:
                if d.type == "queue.removed":  # its summary goes with it
                    last.pop((d.tenant, d.queue), None)
            if deltas and rnd.random() < 0.2:
                d = deltas[-1]
                # Sometimes a queue the engine has not seen yet: the summary creates its entry.
                queue = d.queue if rnd.random() < 0.9 else f"{d.tenant}-later{rnd.randrange(2)}"
                if queue not in state.queues and "-later" not in queue:
                    continue  # removed: the callbacks worker does not summarise a deleted queue
                s = summary_delta(rnd, d.tenant, queue, d.ts)
                mixed.append(s)
                last[(s.tenant, s.queue)] = json.loads(json.dumps(s.data))
        assert any(d.type == "queue.resynced" for d in mixed) and last
        for tenant in sorted({d.tenant for d in mixed}):
            wire = json.loads(json.dumps([delta_dict(d) for d in mixed if d.tenant == tenant]))
            py = empty_board(tenant)
            for d in json.loads(json.dumps(wire)):
                apply_delta(py, d)
            py = json.loads(json.dumps(py))
            # Each queue shows its latest summary; without them the board is the engine's own.
            for (t, queue), data in last.items():
                if t == tenant:
                    assert py["queues"][queue]["callbacks"] == data
            engine = json.loads(json.dumps(tenant_board(state, tenant)))
            for name, q in py["queues"].items():
                q.pop("callbacks", None)
                assert name in engine["queues"] or "-later" in name
            assert {n: q for n, q in py["queues"].items() if "-later" not in n} == engine["queues"]
            py = empty_board(tenant)
            for d in json.loads(json.dumps(wire)):
                apply_delta(py, d)
            cases.append((tenant, wire, json.loads(json.dumps(py))))
    js_boards = run_js(cases)
    for (tenant, _, py), js in zip(cases, js_boards, strict=True):
        assert js == py, f"board.js and board.apply_delta disagree on callbacks for tenant {tenant}"


def test_a_caller_who_hung_up_and_got_through_later_is_marked_reached_on_every_board() -> None:
    """Abandon, call again, be answered: the abandoned row gets ``reached_at`` in the engine, the
    Python reducer and board.js alike; another number's row and an anonymous one do not."""
    from pbx_core.domain.events import AgentConnected, CallerAbandoned, CallerJoined

    q, t0 = "t1-support", 1_800_000_000.0
    events: list[Any] = []
    for i, (number, name) in enumerate([("0201234567", "Piet"), ("0612345678", "Kees"), ("", "")]):
        uid = f"1.{i}"
        events += [CallerJoined(t0 + i, q, uid, f"Local/wait@patience-{i};1", number, name, 1),
                   CallerAbandoned(t0 + i + 20, q, uid, number, name, 1, 1, 20)]  # fmt: skip
    for i, number in enumerate(["0201234567", ""]):  # Piet, and an anonymous caller, get through
        uid = f"2.{i}"
        events += [CallerJoined(t0 + 100 + i, q, uid, f"Local/wait@patience-9{i};1", number, "", 1),
                   AgentConnected(t0 + 110 + i, q, uid, number, "", "Local/201@a/n", "A", 10, 3)]  # fmt: skip
    state = LiveState()
    deltas: list[Delta] = []
    for event in events:
        deltas.extend(apply(state, event))
    cases = cases_from(state, deltas)  # also: the Python reducer == the engine's board
    (_, _, py), = cases
    reached = {a["number"]: a.get("reached_at") for a in py["queues"][q]["abandoned_callers"]}
    assert reached == {"0201234567": t0 + 110, "0612345678": None, "": None}
    assert run_js(cases) == [py]
