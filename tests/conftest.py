"""Shared test helpers. The recorded Asterisk 22 streams live in ../shared/fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("PBX_FIXTURES_DIR", ROOT.parent / "shared" / "fixtures" / "asterisk-22"))


def fixture_bytes(name: str) -> bytes:
    path = FIXTURES / f"{name}.ami"
    if not path.exists():
        pytest.fail(f"recorded fixture {path} is missing (set PBX_FIXTURES_DIR)")
    return path.read_bytes()


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
