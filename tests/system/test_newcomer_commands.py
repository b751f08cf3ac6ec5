"""What a newcomer hits first, run as they would: the installed `pbx-core` in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT

PBX_CORE = Path(sys.executable).with_name("pbx-core")


def run(*args: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    clean.update({"TMPDIR": str(tmp_path), "PBX_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"})
    clean.update(env or {})
    # timeout: a hang guard (these used to hang forever), not a measurement
    return subprocess.run([str(PBX_CORE), *args], env=clean, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_demo_on_a_busy_port_fails_at_once_naming_it_and_leaves_nothing_behind(
    busy_port: int, tmp_path: Path
) -> None:
    done = run("demo", "--port", str(busy_port), "--warmup", "0", tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"pbx-core: configuration error: cannot listen on 127.0.0.1:{busy_port}: Address already in use "
        "(choose another with --port or PBX_HTTP_PORT)"
    )
    assert not list(tmp_path.glob("pbx-core-demo-*"))


def test_an_impossible_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    done = run("demo", "--port", "99999", tmp_path=tmp_path)
    assert done.returncode == 2 and "argument --port: a port is 0-65535" in done.stderr
    assert "starting" not in done.stdout


def test_web_on_a_busy_port_fails_before_printing_its_url(busy_port: int, tmp_path: Path) -> None:
    assert run("db", "upgrade", tmp_path=tmp_path).returncode == 0
    done = run("web", "--port", str(busy_port), tmp_path=tmp_path, env={"PBX_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{busy_port}" in done.stderr
    assert "http://" not in done.stdout


def test_replay_refuses_a_file_that_is_not_an_ami_capture(tmp_path: Path) -> None:
    for path in (ROOT / "README.md", Path(sys.executable).resolve()):
        done = run("replay", str(path), tmp_path=tmp_path)
        assert done.returncode == 2, path
        assert f"{path} is not an AMI capture" in done.stderr and done.stdout == ""


def test_replay_prints_a_dash_for_kpis_without_calls(tmp_path: Path) -> None:
    done = run("replay", str(FIXTURES / "members.ami"), tmp_path=tmp_path)
    assert done.returncode == 0
    idle = next(line for line in done.stdout.splitlines() if line.startswith("t1-sales"))
    assert "SL - @60s" in idle and "ASA -," in idle and "ASA -s" not in idle and "None" not in idle


def test_config_checks_what_web_checks_and_shows_every_value(tmp_path: Path) -> None:
    bad = run("config", tmp_path=tmp_path, env={"PBX_WALLBOARD_TOKENS": "garbage"})
    assert bad.returncode == 2 and "PBX_WALLBOARD_TOKENS: expected token=tenant" in bad.stderr
    good = run("config", tmp_path=tmp_path, env={"PBX_HTTP_PROT": "8080", "PBX_SECRET_KEY": "s3cr3t-value"})
    assert good.returncode == 0 and good.stdout.rstrip().endswith("configuration OK")
    assert "PBX_HTTP_PORT" in good.stdout and "s3cr3t-value" not in good.stdout
    assert "PBX_HTTP_PROT (did you mean PBX_HTTP_PORT?) is not a pbx-core setting" in good.stderr
