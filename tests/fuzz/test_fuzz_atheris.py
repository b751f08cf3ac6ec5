"""The atheris fuzz target, run for a bounded time on every suite run (CI included).

Coverage-guided: libFuzzer mutates the recorded Asterisk streams and keeps inputs that reach
new code in the decoder, the listing assembler, the normaliser and ``apply``. A crash fails
the test with the input saved for reproduction. Skipped where atheris has no wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT

pytest.importorskip("atheris", reason="atheris (libFuzzer for Python) is not installed on this platform")

FUZZ_SECONDS = int(os.environ.get("PBX_TEST_FUZZ_SECONDS", "20"))


def test_the_ami_fuzz_target_survives_a_bounded_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.fuzz_ami",
            f"-max_total_time={FUZZ_SECONDS}",
            "-max_len=4096",
            "-rss_limit_mb=2048",
            "-timeout=20",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
            str(FIXTURES),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 240,  # a hang guard, not a measurement
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    tail = "\n".join(run.stderr.splitlines()[-40:])
    assert run.returncode == 0 and not crashes, f"fuzzer found {crashes} (exit {run.returncode}):\n{tail}"
    assert "Done" in run.stderr and "runs in" in run.stderr, tail  # it really fuzzed
