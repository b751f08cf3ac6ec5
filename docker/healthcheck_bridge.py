#!/usr/bin/env python3
"""Container health check of ``pbx-core bridge``, which has no HTTP port.

Healthy means the bridge holds an established TCP connection to Asterisk's AMI and, when
PBX_REDIS_URL is set, to Redis. The container has its own network namespace, so the sockets in
``/proc/net/tcp{,6}`` are the bridge's own. Stdlib only; exit 0 healthy, 1 not (with the reason).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

ESTABLISHED = "01"


def remote_ports_established(tables: Iterable[str]) -> set[int]:
    """Remote ports of ESTABLISHED sockets in ``/proc/net/tcp``-format tables."""
    ports: set[int] = set()
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != ESTABLISHED:
                continue
            _, _, port_hex = fields[2].rpartition(":")
            ports.add(int(port_hex, 16))
    return ports


def wanted_ports(env: dict[str, str]) -> dict[str, int]:
    """What the bridge must be connected to, from the same variables it reads."""
    wanted: dict[str, int] = {}
    ami = env.get("PBX_AMI_URL", "")
    if ami:
        wanted["Asterisk AMI (PBX_AMI_URL)"] = urlsplit(ami).port or 5038
    redis = env.get("PBX_REDIS_URL", "")
    if redis:
        wanted["Redis (PBX_REDIS_URL)"] = urlsplit(redis).port or 6379
    return wanted


def check(env: dict[str, str], tables: Iterable[str]) -> list[str]:
    """The problems; empty when healthy."""
    wanted = wanted_ports(env)
    if not wanted:
        return ["PBX_AMI_URL is not set: the bridge cannot run"]
    connected = remote_ports_established(tables)
    return [
        f"no connection to {name} (port {port})" for name, port in wanted.items() if port not in connected
    ]


def main() -> int:
    tables = [p.read_text() for p in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")) if p.exists()]
    problems = check(dict(os.environ), tables)
    for problem in problems:
        print(f"unhealthy: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
