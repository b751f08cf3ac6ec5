"""Run the installed ``pbx-core`` console script as a user would (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PBX_CORE = Path(sys.executable).with_name("pbx-core")  # .venv/bin/pbx-core next to the test's python


def pbx_core(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env["PBX_DATABASE_URL"] = database_url
    return subprocess.run(
        [str(PBX_CORE), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
