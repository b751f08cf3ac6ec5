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
