#!/usr/bin/env python3
"""Bootstrap and run pbx-core from a fresh checkout, with nothing but Python 3.11+ installed.

    python3 dev.py demo      # live wallboard on simulated traffic at http://127.0.0.1:8000
    python3 dev.py test      # the full test suite (lint, types, unit, integration, browser)

It creates ./.venv on first use and reinstalls only when pyproject.toml changes. Anything after
the command is passed on: `python3 dev.py demo --tenants 3`, `python3 dev.py test -k fixtures`.
Standard library only: this file runs before any dependency exists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
CHROMIUM = Path("/usr/bin/chromium")


def say(message: str) -> None:
    print(f"dev.py: {message}", flush=True)


def run(cmd: list[str], **kwargs: object) -> None:
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 -- dev.py itself may run on an older python3
        sys.exit(f"dev.py: pbx-core needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        say(f"creating virtual environment in {VENV} ...")
        try:
            run([sys.executable, "-m", "venv", str(VENV)])
        except subprocess.CalledProcessError:
            sys.exit("dev.py: `python3 -m venv` failed; on Debian/Ubuntu install python3-venv first")
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    target = f".[{extras}]" if extras else "."
    say(f"installing pbx-core {target} and its dependencies (first run takes a minute) ...")
    # setuptools' notice about editable installs is not news to a developer; real warnings stay.
    env = {**os.environ, "PYTHONWARNINGS": "ignore:Editable installation"}
    run([str(BIN / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], env=env)
    run([str(BIN / "python"), "-m", "pip", "install", "--quiet", "-e", target], cwd=ROOT, env=env)
    stamp.write_text(digest)


# Debian packages the tests use, with what needs them: the package is missing when none of its
# files exists.
SYSTEM_PACKAGES: dict[str, tuple[tuple[Path, ...], str]] = {
    "chromium": ((CHROMIUM,), "the wallboard's browser tests drive a real headless Chromium"),
    "espeak-ng": ((Path("/usr/bin/espeak-ng"),), "the prompts' text-to-speech tests speak Dutch with it"),
    "sox": ((Path("/usr/bin/sox"),), "the text-to-speech prompts are converted to 8 kHz with it"),
}


def ensure_system_packages() -> None:
    """Install the missing ones in one apt-get run; where that is impossible, say which tests
    will skip."""
    missing = {name: why for name, (files, why) in SYSTEM_PACKAGES.items()
               if not any(f.exists() for f in files) and not shutil.which(name)}
    if not missing:
        return
    names = " ".join(missing)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        for name, why in missing.items():
            say(f"{name} is missing and cannot be installed here (needs root + apt-get): {why}, "
                "so those tests will be skipped")
        say(f"install them with: apt-get install -y {names}")
        return
    say(f"installing {names} for the tests (apt-get update + install, a minute or two) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = VENV / "apt-install.log"
    with log.open("w") as out:
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
            if subprocess.call(cmd, env=env, stdout=out, stderr=subprocess.STDOUT) != 0:
                say(f"`{' '.join(cmd)}` failed (output in {log}); the tests that need {names} will skip")
                return
    say(f"installed {names}")


def postgres_reachable(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def cmd_demo(args: list[str]) -> int:
    ensure_venv("")
    os.execv(str(BIN / "pbx-core"), [str(BIN / "pbx-core"), "demo", *args])
    return 0  # not reached


def cmd_test(args: list[str]) -> int:
    ensure_venv("test")
    ensure_system_packages()
    env = dict(os.environ)
    if "PBX_TEST_POSTGRES_URL" not in env and postgres_reachable():
        env["PBX_TEST_POSTGRES_URL"] = "postgresql://postgres@127.0.0.1:5432/test"
        say("PostgreSQL found on 127.0.0.1:5432: the PostgreSQL tests run too")
    say("ruff ...")
    run([str(BIN / "ruff"), "check", "."], cwd=ROOT)
    say("mypy (the functional core) ...")
    run([str(BIN / "mypy")], cwd=ROOT)
    say("pytest ...")
    return subprocess.call([str(BIN / "pytest"), *args], cwd=ROOT, env=env)


COMMANDS = {"demo": cmd_demo, "test": cmd_test}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    try:
        return COMMANDS[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        say(f"failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})")
        return exc.returncode or 1


if __name__ == "__main__":
    raise SystemExit(main())
