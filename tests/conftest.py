"""Shared test helpers. The recorded Asterisk 22 streams live in tests/fixtures/asterisk-22/."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("PBX_FIXTURES_DIR", ROOT / "tests" / "fixtures" / "asterisk-22"))


def fixture_bytes(name: str) -> bytes:
    path = FIXTURES / f"{name}.ami"
    if not path.exists():
        pytest.fail(f"recorded fixture {path} is missing (set PBX_FIXTURES_DIR)")
    return path.read_bytes()


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


async def wait_until(
    predicate: Callable[[], bool], what: str, *, limit_s: float = 30.0, poll_s: float = 0.01
) -> None:
    """Poll a condition on state that has no change signal to wait on (simulator worlds, engine
    state, plain counters). ``limit_s`` is a hang guard only: nothing is asserted about time."""
    try:
        async with asyncio.timeout(limit_s):
            while not predicate():  # noqa: ASYNC110 - nothing to await but the condition
                await asyncio.sleep(poll_s)
    except TimeoutError:
        pytest.fail(f"gave up waiting for: {what}")
